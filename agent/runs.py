"""The run manager: a bounded pool of worker processes, one run each, mirrored into the store.

The API thread never simulates: it submits, asks and reads. Each run's worker process
(agent/worker.py) reports over a queue that a reader thread drains into the store and into
the live subscribers of the run's event stream. A worker that dies without saying how its
run ended marks the run failed with its exit code, so a crash never leaves a run "running".
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing as mp
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agent.store import RunRecord, RunStatus, RunStore
from agent.worker import run_worker

log = structlog.get_logger(__name__)
CONTROL_TIMEOUT_S = 60.0
TERMINAL_KINDS = {"finished", "cancelled", "failed"}


def load_builder(spec: str | None) -> Any:
    """A session builder named 'module:function' (None: the simulator's default)."""
    if not spec:
        return None
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"session builder {spec!r} must be written module:function")
    return getattr(importlib.import_module(module), name)


@dataclass
class LiveRun:
    record_id: str
    spec: dict[str, Any]
    process: Any = None
    control: Any = None
    events: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # history and subscribers
    pipe_lock: threading.Lock = field(default_factory=threading.Lock)  # one request at a time
    history: list[dict[str, Any]] = field(default_factory=list)
    subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    done: bool = False


class RunNotLive(Exception):
    """The run exists but has no live worker to act on (queued, finished or interrupted)."""


class RunManager:
    def __init__(self, store: RunStore, max_workers: int = 2, builder: str | None = None, runs_dir: Path = Path("runs")) -> None:
        self.store = store
        self.max_workers = max(1, max_workers)
        self.builder_spec = builder
        self._builder = load_builder(builder)  # validated now, imported again in each worker
        self.runs_dir = runs_dir
        self._ctx = mp.get_context("spawn")
        self._live: dict[str, LiveRun] = {}
        self._queued: list[str] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ submit
    def submit(self, goal: str, scenario: str, seed: int, policy: str, start_paused: bool = False) -> RunRecord:
        record = self.store.create(goal, scenario, seed, policy)
        trace = self.runs_dir / record.id / "trace.jsonl"
        self.store.update(record.id, trace_path=str(trace))
        spec = {"run_id": record.id, "goal": goal, "scenario": scenario, "seed": seed, "policy": policy,
                "trace_path": str(trace), "start_paused": start_paused}
        with self._lock:
            self._live[record.id] = LiveRun(record.id, spec)
            self._queued.append(record.id)
        self._start_queued()
        return self.store.get(record.id)  # type: ignore[return-value]

    def _running(self) -> int:
        return sum(1 for r in self._live.values() if r.process is not None and not r.done)

    def _start_queued(self) -> None:
        with self._lock:
            while self._queued and self._running() < self.max_workers:
                run = self._live[self._queued.pop(0)]
                parent, child = self._ctx.Pipe()
                run.control, run.events = parent, self._ctx.Queue()
                run.process = self._ctx.Process(
                    target=run_worker, args=(run.spec, child, run.events, self._builder), daemon=True,
                    name=f"run-{run.record_id}",
                )
                run.process.start()
                self.store.update(run.record_id, status=RunStatus.RUNNING)
                threading.Thread(target=self._read, args=(run,), daemon=True, name=f"reader-{run.record_id}").start()

    # ------------------------------------------------------------------------------ events
    def _read(self, run: LiveRun) -> None:
        terminal = False
        while True:
            try:
                event = run.events.get(timeout=0.5)
            except queue.Empty:
                if not run.process.is_alive():
                    while True:  # whatever it managed to say before it went
                        try:
                            event = run.events.get_nowait()
                        except queue.Empty:
                            break
                        terminal |= self._handle(run, event)
                    if not terminal:
                        code = run.process.exitcode
                        self._handle(run, {"kind": "failed", "reason": f"the worker process died (exit code {code})"})
                    break
                continue
            terminal |= self._handle(run, event)
            if terminal:
                run.process.join(timeout=10)
                break
        run.done = True
        self._start_queued()

    def _handle(self, run: LiveRun, event: dict[str, Any]) -> bool:
        kind = event["kind"]
        rid = run.record_id
        if kind == "started":
            self.store.update(rid, graph=event["graph"], status=RunStatus(event["status"]))
        elif kind == "state":
            run.state = {k: v for k, v in event.items() if k != "kind"}
            self.store.update(rid, current_subtask=event.get("subtask"), node_states=event.get("node_states", {}),
                              status=RunStatus.PAUSED if event.get("paused") else RunStatus.RUNNING)
        elif kind == "finished":
            outcome = event.get("outcome") or {}
            status = RunStatus.SUCCEEDED if outcome.get("status") == "succeeded" else RunStatus.FAILED
            final = event.get("state") or {}
            self.store.update(rid, status=status, outcome=outcome, reasons=outcome.get("reasons", []),
                              node_states=final.get("node_states", {}), current_subtask=final.get("subtask"))
        elif kind in ("cancelled", "failed"):  # status and reason in one write: readers never see half
            record = self.store.get(rid)
            reason = "cancelled on request" if kind == "cancelled" else event["reason"]
            self.store.update(rid, status=RunStatus.CANCELLED if kind == "cancelled" else RunStatus.FAILED,
                              reasons=[*(record.reasons if record else []), reason])
        with run.lock:
            run.history.append(event)
            for loop, q in list(run.subscribers):
                loop.call_soon_threadsafe(q.put_nowait, event)
        return kind in TERMINAL_KINDS

    def subscribe(self, run_id: str) -> tuple[list[dict[str, Any]], asyncio.Queue | None]:
        """(events so far, a queue of those to come — None if the run is over)."""
        run = self._live.get(run_id)
        if run is None:
            return [], None
        q: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        with run.lock:
            past = list(run.history)
            if run.done or (past and past[-1]["kind"] in TERMINAL_KINDS):
                return past, None
            run.subscribers.append((loop, q))
        return past, q

    def unsubscribe(self, run_id: str, q: asyncio.Queue) -> None:
        run = self._live.get(run_id)
        if run is not None:
            with run.lock:
                run.subscribers = [(lp, x) for lp, x in run.subscribers if x is not q]

    # ----------------------------------------------------------------------------- control
    def is_live(self, run_id: str) -> bool:
        run = self._live.get(run_id)
        return run is not None and run.process is not None and not run.done and run.process.is_alive()

    def control(self, run_id: str, op: str, **fields: Any) -> dict[str, Any]:
        """Send one operation to the run's worker and wait for its answer."""
        run = self._live.get(run_id)
        if run is not None and run.process is None and op == "cancel":
            with self._lock:
                if run_id in self._queued:
                    self._queued.remove(run_id)
            run.done = True
            self._handle(run, {"kind": "cancelled"})
            return {"ok": True, "state": {}}
        record = self.store.get(run_id)
        if not self.is_live(run_id) or record is None or record.status.finished:
            raise RunNotLive(run_id)
        try:
            with run.pipe_lock:  # type: ignore[union-attr]
                run.control.send({"op": op, **fields})  # type: ignore[union-attr]
                if not run.control.poll(CONTROL_TIMEOUT_S):  # type: ignore[union-attr]
                    raise TimeoutError(f"the run's worker did not answer {op!r} within {CONTROL_TIMEOUT_S:.0f} s")
                return run.control.recv()  # type: ignore[union-attr]
        except (EOFError, BrokenPipeError, ConnectionResetError):  # it finished while we asked
            raise RunNotLive(run_id) from None

    def live_state(self, run_id: str) -> dict[str, Any]:
        run = self._live.get(run_id)
        return dict(run.state) if run is not None else {}

    def shutdown(self) -> None:
        for run in self._live.values():
            if run.process is not None and run.process.is_alive():
                run.process.terminate()
                run.process.join(timeout=5)
