"""Step-through debugging of a running plan, as a Python API (the console and the HTTP service
sit on top of it).

Hooks work the way Groot2's do: a hook sits before a node. A *breakpoint* hook pauses the
run when the node is about to be entered; the paused tick sends nothing to the world, so
world time stands still while paused and resuming gives exactly the run that would have
happened without the pause. A *force* hook makes the node return SUCCESS or FAILURE without
running it (or cancels it if it is running) — fault injection. Hooks are attached by
wrapping the node instance's `tick`, so the tree's shape (and its snapshots) never change.

Breakpoint specs: a subtask id (`t3`), a skill name (`pick`) — pause before the subtask
starts — or a predicate (`holding(red_cup)`) — pause before the tick in which perception's
truth value of it flips.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import py_trees
from py_trees.common import Status

from behaviors import blackboard as bbk
from behaviors.executor import Executor, RunOutcome, TickReport
from behaviors.leaves import SkillLeaf, unmet
from behaviors.tree import SubtaskRetry, units
from perception.belief import Belief
from scenarios.predicates import Predicate


class DebugError(ValueError):
    """A command the debugger cannot carry out (unknown breakpoint, bad spec); the message says why."""


@dataclass
class Breakpoint:
    id: int
    spec: str
    kind: Literal["subtask", "skill", "predicate"]
    predicate: Predicate | None = None
    hits: int = 0
    last_truth: bool | None = None

    def describe(self) -> str:
        return f"#{self.id} {self.kind} {self.spec} (hits: {self.hits})"


@dataclass
class Force:
    id: int
    target: str
    status: Status
    once: bool = True
    hits: int = 0

    def describe(self) -> str:
        return f"#{self.id} force {self.target} -> {self.status.name}{' once' if self.once else ''} (hits: {self.hits})"


class DebugState(TickReport):
    """Where the run stands, as a tick report plus the outcome once it has ended."""

    outcome: RunOutcome | None = None


class Debugger:
    """Drives an Executor tick by tick; see the module docstring."""

    def __init__(self, executor: Executor) -> None:
        self.ex = executor
        self.breakpoints: dict[int, Breakpoint] = {}
        self.forces: dict[int, Force] = {}
        self._ids = itertools.count(1)
        self._stop_at_unit = False
        self._resume: set[Any] = set()  # nodes paused before entry: let through on the next tick
        self._patched: dict[Any, Any] = {}
        self.paused: str | None = None
        self.bb = bbk.client("debugger", executor.namespace, write=(bbk.FAILURES,))
        executor.tree_listeners.append(lambda ex: self._rehook())
        executor.pause_checks.append(self._check_predicates)
        if executor.tree is None:
            executor.start()
        self._rehook()

    def close(self) -> None:
        """Remove every hook and the debugger's blackboard client."""
        self.breakpoints.clear()
        self.forces.clear()
        self._resume.clear()
        self._rehook()
        self.bb.unregister(clear=False)

    # ------------------------------------------------------------------------------- running
    @property
    def status(self) -> DebugState:
        ex = self.ex
        return DebugState(tick=ex.ticks, time=round(ex.world.time, 4), status=ex.root.status.value, subtask=ex.current_subtask,
                          paused=self.paused, finished=ex.finished, outcome=ex.outcome)

    def step(self, n: int = 1) -> DebugState:
        """Tick up to `n` times; stops early at a breakpoint or when the run finishes."""
        if n < 1:
            raise DebugError(f"step takes a positive number of ticks, got {n}")
        self.paused = None
        for _ in range(n):
            if self.ex.finished:
                break
            report = self.ex.tick()
            if report.paused:
                self.paused = report.paused
                break
        return self.status

    def cont(self, max_ticks: int | None = None) -> DebugState:
        """Run until a breakpoint, the end of the run, or `max_ticks`."""
        self.paused = None
        n = 0
        while not self.ex.finished and (max_ticks is None or n < max_ticks):
            report = self.ex.tick()
            n += 1
            if report.paused:
                self.paused = report.paused
                break
        return self.status

    def next_subtask(self, max_ticks: int | None = None) -> DebugState:
        """Run until the next subtask is about to start (or a breakpoint, or the end)."""
        self._stop_at_unit = True
        self._rehook()
        try:
            return self.cont(max_ticks)
        finally:
            self._stop_at_unit = False
            self._rehook()

    # --------------------------------------------------------------------------- breakpoints
    def add_breakpoint(self, spec: str) -> Breakpoint:
        spec = spec.strip()
        if not spec:
            raise DebugError("break needs a subtask id, a skill name or a predicate, e.g. `break t3`, `break pick`, `break holding(red_cup)`")
        bid = next(self._ids)
        if "(" in spec:
            try:
                pred = Predicate.parse(spec)
            except ValueError as exc:
                raise DebugError(f"{spec!r} is not a predicate: {exc}") from None
            bp = Breakpoint(bid, str(pred), "predicate", predicate=pred, last_truth=self._truth(pred))
        else:
            subtasks = {s.id: s for s in self.ex.graph.subtasks()}
            skills = {s.skill for s in self.ex.graph.subtasks()}
            if spec in subtasks:
                bp = Breakpoint(bid, spec, "subtask")
            elif spec in skills or spec in _known_skills():
                bp = Breakpoint(bid, spec, "skill")
            else:
                raise DebugError(f"{spec!r} is neither a subtask id ({', '.join(subtasks) or 'none'}) nor a skill "
                                 f"({', '.join(sorted(skills | _known_skills()))}) nor a predicate like holding(red_cup)")
        self.breakpoints[bid] = bp
        self._rehook()
        return bp

    def remove_breakpoint(self, which: int | str) -> Breakpoint:
        """Remove by number (`1`, `#1`) or by spec (`t3`); forces are removed the same way."""
        key = str(which).lstrip("#")
        for table in (self.breakpoints, self.forces):
            for bid, item in list(table.items()):
                if str(bid) == key or getattr(item, "spec", getattr(item, "target", None)) == key:
                    del table[bid]
                    self._rehook()
                    return item  # type: ignore[return-value]
        raise DebugError(f"no breakpoint or force {which!r}; set: " + (", ".join(h.describe() for h in self.hooks()) or "none"))

    def force(self, target: str, status: Status | str, once: bool = True) -> Force:
        """Make a node return `status` without running: `target` is a subtask id (its whole unit),
        `<id>.skill` (its skill leaf: an attempt fails, the Retry tries again) or a node name."""
        st = status if isinstance(status, Status) else _status(status)
        if st not in (Status.SUCCESS, Status.FAILURE):
            raise DebugError("a forced result is SUCCESS or FAILURE")
        if not any(self._force_matches(target, n) for n in self.ex.root.iterate()):
            raise DebugError(f"no node {target!r} in the tree (use a subtask id, <id>.skill or a node name from `tree`)")
        f = Force(next(self._ids), target, st, once)
        self.forces[f.id] = f
        self._rehook()
        return f

    def hooks(self) -> list[Breakpoint | Force]:
        return sorted([*self.breakpoints.values(), *self.forces.values()], key=lambda h: h.id)

    # ------------------------------------------------------------------------------- looking
    def tree_text(self, unicode: bool = True) -> str:
        draw = py_trees.display.unicode_tree if unicode else py_trees.display.ascii_tree
        return draw(self.ex.root, show_status=True)

    def blackboard(self) -> dict[str, Any]:
        return bbk.view(self.ex.namespace)

    def belief(self) -> Belief | None:
        return self.ex.belief

    def plan(self) -> dict[str, Any]:
        return self.ex.graph.to_dict()

    def plan_text(self) -> str:
        lines = []
        for s in self.ex.graph.order():
            after = self.ex.graph.predecessors(s.id)
            mark = "*" if s.id == self.ex.current_subtask else " "
            lines.append(f"{mark} {s.id:<4} {s.label:<34} \"{s.instruction}\"  success: {', '.join(map(str, s.success))}"
                         + (f"  after: {', '.join(after)}" if after else ""))
        return "\n".join(lines)

    def frame(self, path: Path | str) -> list[Path]:
        """Save the current camera images of the observation as PNGs in folder `path`."""
        from PIL import Image

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        obs = self.ex.ctx.obs or {}
        written = []
        for key, img in obs.items():
            if key.startswith("observation.images.") and isinstance(img, np.ndarray) and img.ndim == 3:
                p = out / f"tick{self.ex.ticks:05d}_{key.rsplit('.', 1)[-1]}.png"
                Image.fromarray(np.ascontiguousarray(img.astype(np.uint8))).save(p)
                written.append(p)
        if not written:
            raise DebugError("the observation has no camera images")
        return written

    # --------------------------------------------------------------------------------- hooks
    def _truth(self, pred: Predicate) -> bool | None:
        belief = self.ex.belief
        return None if belief is None else not unmet(belief, [pred], self.ex.config.confidence)

    def _check_predicates(self, ex: Executor) -> str | None:
        for bp in self.breakpoints.values():
            if bp.kind != "predicate" or bp.predicate is None:
                continue
            truth = self._truth(bp.predicate)
            if truth is None:
                continue
            flipped = bp.last_truth is not None and truth != bp.last_truth
            bp.last_truth = truth
            if flipped:
                bp.hits += 1
                return f"breakpoint #{bp.id}: {bp.spec} became {'true' if truth else 'false'}"
        return None

    def _force_matches(self, target: str, node: py_trees.behaviour.Behaviour) -> bool:
        if isinstance(node, SubtaskRetry) and node.subtask.id == target:
            return True
        if isinstance(node, SkillLeaf) and f"{node.subtask.id}.skill" == target:
            return True
        return node.name == target

    def _break_matches(self, node: py_trees.behaviour.Behaviour) -> Breakpoint | None:
        if not isinstance(node, SubtaskRetry):
            return None
        for bp in self.breakpoints.values():
            if (bp.kind == "subtask" and node.subtask.id == bp.spec) or (bp.kind == "skill" and node.subtask.skill == bp.spec):
                return bp
        return None

    def _rehook(self) -> None:
        """Wrap `tick` on exactly the nodes some hook applies to; unwrap the rest."""
        wanted = []
        for node in self.ex.root.iterate():
            if (self._break_matches(node) or (self._stop_at_unit and isinstance(node, SubtaskRetry))
                    or any(self._force_matches(f.target, node) for f in self.forces.values()) or node.id in self._resume):
                wanted.append(node)
        keep = {n.id for n in wanted}
        for nid, node in list(self._patched.items()):
            if nid not in keep:
                node.__dict__.pop("tick", None)
                del self._patched[nid]
        for node in wanted:
            if node.id not in self._patched:
                node.tick = self._hooked_tick(node)  # instance attribute: parents call child.tick()
                self._patched[node.id] = node

    def _hooked_tick(self, node: py_trees.behaviour.Behaviour):
        original = type(node).tick.__get__(node)

        def tick() -> Iterator[py_trees.behaviour.Behaviour]:
            if node.id in self._resume:  # paused before entry last tick: now enter for real
                self._resume.discard(node.id)
                node.status = Status.INVALID
                yield from original()
                return
            force = next((f for f in self.forces.values() if self._force_matches(f.target, node)), None)
            if force is not None:
                yield from self._apply_force(node, force)
                return
            if node.status != Status.RUNNING:
                bp = self._break_matches(node)
                if bp is not None or (self._stop_at_unit and isinstance(node, SubtaskRetry)):
                    if bp is not None:
                        bp.hits += 1
                    what = f"breakpoint #{bp.id} ({bp.spec})" if bp is not None else "next subtask"
                    node.status = Status.RUNNING  # holds its parent here without running anything
                    node.feedback_message = f"paused before entry: {what}"
                    self._resume.add(node.id)
                    self.ex.request_pause(f"{what}: before {node.name}")
                    yield node
                    return
            yield from original()

        return tick

    def _apply_force(self, node: py_trees.behaviour.Behaviour, force: Force) -> Iterator[py_trees.behaviour.Behaviour]:
        force.hits += 1
        if force.once:
            del self.forces[force.id]
        if node.status == Status.RUNNING:
            node.stop(force.status)
        node.status = force.status
        node.feedback_message = f"forced {force.status.name} by the debugger"
        sid = _subtask_of(node)
        if force.status == Status.FAILURE:
            bbk.record_failure(self.bb, bbk.FailureRecord(subtask=sid, node=node.name, reason=f"forced FAILURE by the debugger ({force.target})",
                                                           time=self.ex.world.time))
        self.ex._emit("forced", node=node.name, subtask=sid, status=force.status.name)
        if force.once:
            self._rehook()
        yield node


def _subtask_of(node: py_trees.behaviour.Behaviour) -> str | None:
    n: py_trees.behaviour.Behaviour | None = node
    while n is not None:
        if isinstance(n, (SubtaskRetry, SkillLeaf)):
            return n.subtask.id
        n = n.parent
    return None


def _status(text: str) -> Status:
    try:
        return {"success": Status.SUCCESS, "failure": Status.FAILURE, "s": Status.SUCCESS, "f": Status.FAILURE}[text.strip().lower()]
    except KeyError:
        raise DebugError(f"{text!r} is not a result: use success or failure") from None


def _known_skills() -> set[str]:
    try:
        from planner.library import default_library

        return set(default_library().skills)
    except Exception:
        return set()
