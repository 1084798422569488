"""The run store: every run the service accepted, in SQLite, surviving restarts.

One table of runs (request, status, outcome, graph, current subtask, failure reasons,
trace location). Writes are short transactions from the service's single event loop
thread; SQLite's WAL mode lets readers (the CLI, a second service) look in meanwhile.
A service that starts finds runs left `queued`, `running` or `paused` by a previous
process and marks them `interrupted`, with the reason, so nothing stored is lost and no
run pretends to still be going.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    goal TEXT NOT NULL,
    scenario TEXT NOT NULL,
    seed INTEGER NOT NULL,
    policy TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    current_subtask TEXT,
    reasons TEXT NOT NULL DEFAULT '[]',
    graph TEXT,
    node_states TEXT NOT NULL DEFAULT '{}',
    outcome TEXT,
    trace_path TEXT
);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
"""


class RunStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the service stopped while the run was going

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED)


class RunRecord(BaseModel):
    id: str
    goal: str
    scenario: str
    seed: int
    policy: str
    status: RunStatus
    created_at: float
    updated_at: float
    current_subtask: str | None = None
    reasons: list[str] = Field(default_factory=list)
    graph: dict[str, Any] | None = None
    node_states: dict[str, str] = Field(default_factory=dict)
    outcome: dict[str, Any] | None = None
    trace_path: str | None = None


_JSON_FIELDS = ("reasons", "graph", "node_states", "outcome")


class RunStore:
    """Runs in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def mark_interrupted(self, reason: str = "the service stopped while this run was going") -> list[str]:
        """Runs a previous process left unfinished become `interrupted`; returns their ids."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, reasons FROM runs WHERE status IN (?, ?, ?)",
                (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.PAUSED.value),
            ).fetchall()
            for row in rows:
                reasons = json.loads(row["reasons"]) + [reason]
                self._db.execute(
                    "UPDATE runs SET status=?, reasons=?, updated_at=? WHERE id=?",
                    (RunStatus.INTERRUPTED.value, json.dumps(reasons), time.time(), row["id"]),
                )
        return [r["id"] for r in rows]

    def create(self, goal: str, scenario: str, seed: int, policy: str) -> RunRecord:
        now = time.time()
        run_id = uuid.uuid4().hex[:12]
        with self._lock:
            self._db.execute(
                "INSERT INTO runs (id, goal, scenario, seed, policy, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                (run_id, goal, scenario, seed, policy, RunStatus.QUEUED.value, now, now),
            )
        return self.get(run_id)  # type: ignore[return-value]

    def update(self, run_id: str, **fields: Any) -> RunRecord:
        if not fields:
            return self.get(run_id)  # type: ignore[return-value]
        allowed = set(RunRecord.model_fields) - {"id", "created_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update run fields {sorted(unknown)}")
        values = []
        for key, value in fields.items():
            if isinstance(value, RunStatus):
                value = value.value
            elif key in _JSON_FIELDS and value is not None:
                value = json.dumps(value)
            values.append(value)
        assignments = ", ".join(f"{k}=?" for k in fields) + ", updated_at=?"
        with self._lock:
            cur = self._db.execute(f"UPDATE runs SET {assignments} WHERE id=?", (*values, time.time(), run_id))
            if cur.rowcount == 0:
                raise KeyError(run_id)
        return self.get(run_id)  # type: ignore[return-value]

    def get(self, run_id: str) -> RunRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return _record(row) if row else None

    def list(self, limit: int = 100, offset: int = 0) -> list[RunRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM runs ORDER BY created_at DESC LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return [_record(r) for r in rows]


def _record(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    for key in _JSON_FIELDS:
        if data.get(key) is not None:
            data[key] = json.loads(data[key])
    return RunRecord.model_validate(data)
