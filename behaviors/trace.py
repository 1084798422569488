"""The run trace: JSON lines written with structlog's JSONRenderer, and read back for replay.

Events (each line has `event`, `ts` (wall clock, ISO), `tick` and `time` (world seconds)):

    run_started      goal, scenario, seed, graph (TaskGraph.to_dict), config
    tick             status, subtask, visited_path; `snapshot` (py_trees_js shape) only when
                     the tree's statuses or visited path changed (SnapshotVisitor.changed)
    subtask_started / subtask_retry / subtask_succeeded / subtask_failed (reason, reasons)
    actions          summary of the last N actions (count, mean and max norm, the last one)
    belief_changed   predicates whose truth flipped (became_true, became_false)
    grip_guard       at an attempt's end, how many of its actions the grip guard changed (actions)
    regrasp          at a pick's end, if it closed on a ball past its middle and took it again deeper
                     (count, opening_m: the opening it closed to, depth_m: how far the hand went in)
    stalled_lift     at a pick's end, if it closed on its object, did not lift it and the hand lifted it
                     (count, lift_m: how far)
    replanned        reason, graph
    paused           why the debugger paused (breakpoint, forced result)
    run_finished     outcome (RunOutcome)
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import IO, Any

import numpy as np
import py_trees
import structlog
from py_trees.common import Status

from behaviors import blackboard as bbk

# py_trees_js colours by behaviour type
COLOURS = {"sequence": "#FFA500", "selector": "#00FFFF", "parallel": "#FFFF00", "decorator": "#DDDDDD", "behaviour": "#555555"}


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (Path, uuid.UUID)):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return repr(value)


def _dumps(obj: Any, **kw: Any) -> str:
    kw["default"] = _default
    return json.dumps(obj, **kw)


def default_trace_path(run_id: str, root: Path = Path("runs")) -> Path:
    return root / run_id / "trace.jsonl"


class TraceWriter:
    """Appends one JSON object per event to `path` (created with its folder)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = self.path.open("w", encoding="utf-8")
        self._log = structlog.wrap_logger(
            structlog.WriteLogger(self._file),
            processors=[structlog.processors.TimeStamper(fmt="iso", key="ts"), structlog.processors.JSONRenderer(serializer=_dumps)],
            wrapper_class=structlog.BoundLogger,
        )

    def write(self, event: str, **fields: Any) -> None:
        self._log.msg(event, **fields)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


# ------------------------------------------------------------------------------- snapshots
def behaviour_type(b: py_trees.behaviour.Behaviour) -> str:
    if isinstance(b, py_trees.composites.Parallel):
        return "parallel"
    if isinstance(b, py_trees.decorators.Decorator):
        return "decorator"
    if isinstance(b, py_trees.composites.Sequence):
        return "sequence_with_memory" if b.memory else "sequence"
    if isinstance(b, py_trees.composites.Selector):
        return "selector_with_memory" if b.memory else "selector"
    return "behaviour"


def snapshot(root: py_trees.behaviour.Behaviour, visitor: py_trees.visitors.SnapshotVisitor, namespace: str,
             timestamp: float) -> dict[str, Any]:
    """The tree in py_trees_js's JSON shape (plus `root`), from a SnapshotVisitor's last tick."""
    behaviours = {}
    for b in root.iterate():
        kind = behaviour_type(b)
        behaviours[str(b.id)] = {
            "id": str(b.id),
            "status": b.status.value,
            "name": b.name,
            "colour": COLOURS[kind.split("_")[0]],
            "children": [str(c.id) for c in b.children],
            "data": {"type": kind, "feedback": b.feedback_message},
        }
    visited = visitor.visited_blackboard_client_ids
    bb_behaviours: dict[str, dict[str, str]] = {}
    for key in visitor.visited_blackboard_keys:
        meta = py_trees.blackboard.Blackboard.metadata.get(key)
        if meta is None:
            continue
        for access, ids in (("r", meta.read), ("w", meta.write), ("x", meta.exclusive)):
            for cid in ids & visited:
                bb_behaviours.setdefault(str(cid), {})[key] = access
    return {
        "timestamp": timestamp,
        "root": str(root.id),
        "behaviours": behaviours,
        "visited_path": [str(i) for i in visitor.visited],
        "blackboard": {"behaviours": bb_behaviours, "data": bbk.view(namespace)},
        "activity": [],
    }


def tree_from_snapshot(snap: dict[str, Any]) -> py_trees.behaviour.Behaviour:
    """Stand-in behaviours with the snapshot's names, types and statuses, so py_trees' own
    display functions can draw a recorded tree."""
    nodes = snap["behaviours"]

    def build(bid: str) -> py_trees.behaviour.Behaviour:
        d = nodes[bid]
        kids = [build(c) for c in d["children"]]
        kind = d.get("data", {}).get("type", "behaviour")
        if kind.startswith("sequence"):
            b: py_trees.behaviour.Behaviour = py_trees.composites.Sequence(d["name"], memory=kind.endswith("memory"), children=kids)
        elif kind.startswith("selector"):
            b = py_trees.composites.Selector(d["name"], memory=kind.endswith("memory"), children=kids)
        elif kind == "parallel":
            b = py_trees.composites.Parallel(d["name"], policy=py_trees.common.ParallelPolicy.SuccessOnAll(), children=kids)
        elif kind == "decorator" and kids:
            b = py_trees.decorators.PassThrough(d["name"], child=kids[0])
        else:
            b = py_trees.behaviours.Dummy(d["name"])
        b.status = Status(d["status"])
        b.feedback_message = d.get("data", {}).get("feedback", "")
        return b

    root_id = snap.get("root") or next(i for i in nodes if not any(i in n["children"] for n in nodes.values()))
    return build(root_id)


def render_snapshot(snap: dict[str, Any], unicode: bool = True) -> str:
    root = tree_from_snapshot(snap)
    draw = py_trees.display.unicode_tree if unicode else py_trees.display.ascii_tree
    return draw(root, show_status=True)


# ---------------------------------------------------------------------------------- reading
class TraceError(ValueError):
    """The file is not a readable trace."""


def read_trace(path: Path | str) -> list[dict[str, Any]]:
    """Every event of a trace file, in order; a truncated last line (a killed run) is skipped."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TraceError(f"cannot read {p}: {exc.strerror or exc}") from None
    events = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines):
                break
            raise TraceError(f"{p}:{i}: not a JSON line") from None
        if not isinstance(ev, dict) or "event" not in ev:
            raise TraceError(f"{p}:{i}: not a trace event (no 'event' field)")
        events.append(ev)
    if not events or events[0]["event"] != "run_started":
        raise TraceError(f"{p}: not a run trace (it does not start with a run_started event)")
    return events


class Replay:
    """A recorded run: its timeline and its tree at any tick."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.started = events[0]
        self.finished = next((e for e in reversed(events) if e["event"] == "run_finished"), None)
        self.ticks = [e for e in events if e["event"] == "tick"]

    @classmethod
    def load(cls, path: Path | str) -> Replay:
        return cls(read_trace(path))

    @property
    def last_tick(self) -> int:
        return self.ticks[-1]["tick"] if self.ticks else 0

    def timeline(self) -> list[dict[str, Any]]:
        """Everything but the per-tick records, in order."""
        return [e for e in self.events if e["event"] not in ("tick",)]

    def snapshot_at(self, tick: int) -> dict[str, Any] | None:
        """The tree as it stood after `tick` (the latest snapshot written at or before it)."""
        best = None
        for e in self.ticks:
            if e["tick"] > tick:
                break
            if "snapshot" in e:
                best = e["snapshot"]
        return best

    def tree_at(self, tick: int, unicode: bool = True) -> str | None:
        snap = self.snapshot_at(tick)
        return None if snap is None else render_snapshot(snap, unicode=unicode)
