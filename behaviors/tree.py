"""TaskGraph → py_trees tree.

Each subtask becomes a postcondition–precondition–action unit:

    Retry  (py_trees Retry: retries + 1 attempts)              SubtaskRetry
    └─ WorldTimeout  (timeout_s simulated seconds per attempt)
       └─ Selector (no memory: re-checks "already done?" every tick and preempts the action)
          ├─ done?  success predicates already believed true (left out for an `always_run` drive)
          └─ Sequence (memory)
             ├─ reset posture: only after a failed attempt (of this or an earlier subtask)
             ├─ pre: one condition per precondition
             ├─ skill leaf (the policy, closed loop), under KeepsHold (an EternalGuard) when
             │  the skill needs an object in hand: dropping it fails the attempt
             └─ confirm: success predicates

Ordering edges become Sequences with memory: the graph's weakly connected components
(chains that do not depend on each other, e.g. one per object to tidy) each become a
Sequence of their subtasks in topological order, and the root Sequence runs the components
one after another in the graph's deterministic order. With more than one robot (or arm) the
root could become a Parallel over the components without touching the units.
"""

from __future__ import annotations

import networkx as nx
import py_trees
from py_trees.common import Status

from behaviors import blackboard as bbk
from behaviors.clock import WorldTimeout
from behaviors.context import RunContext
from behaviors.leaves import PostureLeaf, PredicateCondition, guarded_skill
from planner.taskgraph import Subtask, TaskGraph


class SubtaskRetry(py_trees.decorators.Retry):
    """py_trees' Retry that also marks the subtask's start, attempts and outcome (blackboard
    `subtask`, failure reasons, trace events)."""

    def __init__(self, subtask: Subtask, child: py_trees.behaviour.Behaviour, ctx: RunContext) -> None:
        super().__init__(name=f"{subtask.id}: {subtask.instruction}", child=child, num_failures=subtask.retries + 1)
        self.subtask = subtask
        self.ctx = ctx
        self.bb = bbk.attach(self, ctx.namespace, write=(bbk.SUBTASK, bbk.FAILURES))
        self.reasons: list[str] = []

    def initialise(self) -> None:
        super().initialise()
        self.reasons = []
        self.bb.subtask = self.subtask.id
        self.ctx.emit("subtask_started", subtask=self.subtask.id, skill=self.subtask.skill, args=list(self.subtask.args),
                      instruction=self.subtask.instruction, attempts=self.num_failures)

    def update(self) -> Status:
        status = super().update()
        if self.decorated.status == Status.FAILURE:
            self.ctx.needs_posture_reset = True  # whatever runs next starts from a known posture
            reason = self._last_reason()
            self.reasons.append(reason)
            if status == Status.RUNNING:
                self.ctx.emit("subtask_retry", subtask=self.subtask.id, skill=self.subtask.skill, attempt=self.failures + 1, reason=reason)
            else:
                text = f"failed after {self.failures} attempt(s); last: {reason}"
                self.feedback_message = text
                bbk.record_failure(self.bb, bbk.FailureRecord(subtask=self.subtask.id, node=self.name, reason=text, time=self.ctx.clock()))
                self.ctx.emit("subtask_failed", subtask=self.subtask.id, skill=self.subtask.skill, reason=reason, reasons=self.reasons)
        elif status == Status.SUCCESS:
            self.ctx.emit("subtask_succeeded", subtask=self.subtask.id, skill=self.subtask.skill, attempts=self.failures + 1)
        return status

    def _last_reason(self) -> str:
        for record in reversed(self.bb.failures or []):
            if record.subtask == self.subtask.id and record.node != self.name:
                return record.reason
        return "failed"


def subtask_unit(subtask: Subtask, ctx: RunContext) -> SubtaskRetry:
    """The postcondition–precondition–action unit of one subtask (see module docstring)."""
    sid = subtask.id
    skill = guarded_skill(subtask, ctx)  # a skill that needs an object in hand fails at once when it drops it
    pre = [PredicateCondition(f"{sid} pre {p}", [p], ctx, sid, wait_s=ctx.config.precondition_wait_s) for p in subtask.preconditions]
    run = py_trees.composites.Sequence(
        name=f"{sid} run", memory=True,
        children=[PostureLeaf(subtask, ctx), *pre, skill, PredicateCondition(f"{sid} confirm", subtask.success, ctx, sid)],
    )
    done = PredicateCondition(f"{sid} done? " + ", ".join(str(p) for p in subtask.success), subtask.success, ctx, sid, record=False)
    # a drive planned for a learned skill runs even when near(...) already holds: it ends where the policy stops
    ppa = py_trees.composites.Selector(name=f"{sid} ppa", memory=True, children=[run] if subtask.always_run else [done, run])

    def timed_out(message: str) -> None:
        bbk.record_failure(timeout.bb, bbk.FailureRecord(subtask=sid, node=timeout.name, reason=message, time=ctx.clock()))

    timeout = WorldTimeout(f"{sid} timeout {subtask.timeout_s:g}s", ppa, subtask.timeout_s, ctx.clock, on_timeout=timed_out)
    timeout.bb = bbk.attach(timeout, ctx.namespace, write=(bbk.FAILURES,))
    return SubtaskRetry(subtask, timeout, ctx)


def components(graph: TaskGraph) -> list[list[Subtask]]:
    """Independent chains in a deterministic order, each in topological order (graph.order())."""
    order = graph.order()
    rank = {s.id: i for i, s in enumerate(order)}
    comps = [sorted(c, key=rank.__getitem__) for c in nx.weakly_connected_components(graph.graph)]
    comps.sort(key=lambda c: rank[c[0]])
    return [[graph[n] for n in c] for c in comps]


def build_tree(graph: TaskGraph, ctx: RunContext, name: str | None = None) -> py_trees.composites.Sequence:
    """The root Sequence (memory) of component Sequences (memory) of subtask units."""
    goal = name or str(graph.attrs.get("goal", "plan"))
    chains = []
    for comp in components(graph):
        group = comp[0].group or comp[0].id
        chains.append(py_trees.composites.Sequence(name=f"chain {group}", memory=True, children=[subtask_unit(s, ctx) for s in comp]))
    return py_trees.composites.Sequence(name=f"goal: {goal}", memory=True, children=chains)


class BehaviourTree(py_trees.trees.BehaviourTree):
    """py_trees' BehaviourTree, minus the whole-tree walk its `tick()` makes for "full"
    visitors when none is attached (a third of the tick's cost on a 30-node tree)."""

    def tick(self, pre_tick_handler=None, post_tick_handler=None) -> None:  # type: ignore[no-untyped-def]
        if any(v.full for v in self.visitors):
            return super().tick(pre_tick_handler, post_tick_handler)
        if pre_tick_handler is not None:
            pre_tick_handler(self)
        for handler in self.pre_tick_handlers:
            handler(self)
        visitors = self.visitors
        for visitor in visitors:
            visitor.initialise()
        for node in self.root.tick():
            for visitor in visitors:
                node.visit(visitor)
        for visitor in visitors:
            visitor.finalise()
        for handler in self.post_tick_handlers:
            handler(self)
        if post_tick_handler is not None:
            post_tick_handler(self)
        self.count += 1


def units(root: py_trees.behaviour.Behaviour) -> list[SubtaskRetry]:
    return [n for n in root.iterate() if isinstance(n, SubtaskRetry)]


def release(root: py_trees.behaviour.Behaviour) -> None:
    """Unregister the tree's blackboard clients (a replaced tree must not linger in py_trees' registry)."""
    for node in root.iterate():
        for c in node.blackboards:
            c.unregister(clear=False)
