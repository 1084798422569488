"""The executor: runs a task graph as a behaviour tree against a world, one control period per
tick, and repairs the plan through the planner when a subtask fails for good.

One tick: fold a new observation into the belief (perception, once per tick, here and not in
the leaves) → write it to the blackboard → tick the tree (a skill leaf sends at most one
action) → if nothing was sent, hold the robot for the period, so world time always advances
by one control period per tick → on the root's FAILURE ask the replanner for a repaired
graph from the current belief, up to `max_replans` times, keeping the chain of reasons.
"""

from __future__ import annotations

import time as _time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import py_trees
import structlog
from py_trees.common import Status
from pydantic import BaseModel, Field

from behaviors import blackboard as bbk
from behaviors.context import BehaviorConfig, RunContext
from behaviors.protocols import PerceptionLike, PolicyFactory, ReplanRefused, Replanner, WorldLike
from behaviors.trace import TraceWriter, snapshot
from behaviors.tree import BehaviourTree, SubtaskRetry, build_tree, release, units
from perception.belief import Belief
from planner.taskgraph import TaskGraph

log = structlog.get_logger(__name__)


class RunOutcome(BaseModel):
    """How a run ended: the failed subtask and the chain of reasons when it failed."""

    status: Literal["succeeded", "failed"]
    goal: str
    failed_subtask: str | None = None
    reasons: list[str] = Field(default_factory=list, description="oldest first: each failure and each refused repair")
    replans: int = 0
    ticks: int = 0
    time_s: float = Field(0.0, description="world seconds")
    trace: str | None = None


class TickReport(BaseModel):
    tick: int
    time: float
    status: str
    subtask: str | None
    paused: str | None = None
    finished: bool = False


PauseCheck = Callable[["Executor"], str | None]


class Executor:
    """Runs `graph` for `goal`; see the module docstring. Construct, `start()`, then `tick()` or `run()`."""

    def __init__(self, world: WorldLike, perception: PerceptionLike, policy_factory: PolicyFactory, graph: TaskGraph, *,
                 goal: str, replanner: Replanner | None = None, config: BehaviorConfig | None = None,
                 trace: TraceWriter | Path | str | None = None, seed: int | None = None, scenario: str | None = None,
                 run_id: str | None = None, posture_factory: PolicyFactory | None = None) -> None:
        self.world = world
        self.perception = perception
        self.goal = goal
        self.replanner = replanner
        self.config = config or BehaviorConfig()
        self.seed, self.scenario = seed, scenario
        self.run_id = run_id or _time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.trace = TraceWriter(trace) if isinstance(trace, (str, Path)) else trace
        self.namespace = bbk.new_namespace()
        self.ctx = RunContext(world, policy_factory, self.namespace, self.config, emit=self._emit, posture_factory=posture_factory)
        self.bb = bbk.initialise(self.namespace)
        self.graph = graph
        self.tree: BehaviourTree | None = None
        self.visitor = py_trees.visitors.SnapshotVisitor()
        self.events: list[dict[str, Any]] = []
        self.reasons: list[str] = []
        self.replans = 0
        self.goal_checks = 0
        self.ticks = 0
        self.outcome: RunOutcome | None = None
        self.pause_checks: list[PauseCheck] = []
        self.tree_listeners: list[Callable[[Executor], None]] = []
        self._pause: str | None = None
        self._perceived = -1
        self._truth: dict[str, bool] = {}
        self._action_ticks = 0

    # ------------------------------------------------------------------------------ lifecycle
    def start(self, obs: dict[str, Any] | None = None, reset_perception: bool = True) -> None:
        """Reset the world (unless `obs` is given: the world is already where the run starts),
        perception (unless told it has already been following this world) and the tree, and
        write `run_started`."""
        if obs is None:
            obs, _ = self.world.reset(seed=self.seed, options={"task": self.goal})
        if reset_perception:
            self.perception.reset()
        self.ctx.obs = obs
        self.ctx.obs_version += 1
        self._emit("run_started", goal=self.goal, scenario=self.scenario, seed=self.seed, run_id=self.run_id,
                   graph=self.graph.to_dict(), config=self.config.model_dump())
        self._install(self.graph)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def belief(self) -> Belief | None:
        return self.bb.belief

    @property
    def current_subtask(self) -> str | None:
        return self.bb.subtask

    @property
    def root(self) -> py_trees.behaviour.Behaviour:
        assert self.tree is not None, "start() the executor first"
        return self.tree.root

    def request_pause(self, reason: str) -> None:
        """Called by debugger hooks during a tick: the tick ends without moving the world."""
        self._pause = reason

    def tick(self) -> TickReport:
        """One control period (see module docstring)."""
        if self.tree is None:
            self.start()
        if self.finished:
            return self._report()
        self.ctx.stepped = False
        self._pause = None
        self._perceive()
        for check in self.pause_checks:
            reason = check(self)
            if reason:
                self._emit("paused", reason=reason)
                return self._report(paused=reason)
        assert self.tree is not None
        self.tree.tick()
        self.ticks += 1
        if self._pause is not None:
            self._emit("paused", reason=self._pause)
            return self._report(paused=self._pause)
        status = self.tree.root.status
        if status == Status.SUCCESS:
            left = self._goal_left()
            if left is None:
                self._finish("succeeded")
            else:
                self._emit("goal_not_done", checks=self.goal_checks, graph=left.to_dict(), subtasks=[s.id for s in left.order()])
                self._install(left)
        elif status == Status.FAILURE:
            self._recover()
        if not self.finished and not self.ctx.stepped:
            self.ctx.step(self.world.hold_action())
        self._summarise_actions()
        if not self.finished and self.world.time >= self.config.max_seconds:
            self.reasons.append(f"the run's budget of {self.config.max_seconds:g} s ran out")
            self._finish("failed", failed=self.current_subtask)
        return self._report()

    def run(self, max_ticks: int | None = None, on_tick: Callable[[TickReport], None] | None = None) -> RunOutcome | None:
        """Tick until the run finishes (or `max_ticks`, or a pause); returns the outcome if finished."""
        n = 0
        while not self.finished and (max_ticks is None or n < max_ticks):
            report = self.tick()
            n += 1
            if on_tick is not None:
                on_tick(report)
            if report.paused:
                break
        return self.outcome

    def close(self) -> None:
        """Release the blackboard keys and clients and close the trace."""
        if self.tree is not None:
            release(self.tree.root)
        self.bb.unregister(clear=True)
        bbk.clear(self.namespace)
        if self.trace is not None:
            self.trace.close()

    # -------------------------------------------------------------------------------- inside
    def _report(self, paused: str | None = None) -> TickReport:
        status = self.tree.root.status.value if self.tree is not None else Status.INVALID.value
        return TickReport(tick=self.ticks, time=round(self.world.time, 6), status=status, subtask=self.current_subtask,
                          paused=paused, finished=self.finished)

    def _emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "tick": self.ticks, "time": round(float(self.world.time), 4), **fields}
        if event != "tick":
            self.events.append(record)
            log.debug(f"behaviors.{event}", **{k: v for k, v in fields.items() if k not in ("graph", "config", "snapshot")})
        if self.trace is not None:
            self.trace.write(event, **{k: v for k, v in record.items() if k != "event"})

    def _install(self, graph: TaskGraph) -> None:
        if self.tree is not None:
            release(self.tree.root)
        self.graph = graph
        self.tree = BehaviourTree(build_tree(graph, self.ctx, name=self.goal))
        self.visitor = py_trees.visitors.SnapshotVisitor()
        self.tree.add_visitor(self.visitor)
        self._names = {b.id: b.name for b in self.tree.root.iterate()}
        self.tree.add_post_tick_handler(self._trace_tick)
        for listener in self.tree_listeners:
            listener(self)

    def _trace_tick(self, tree: py_trees.trees.BehaviourTree) -> None:
        if self.trace is None:
            return
        names = self._names
        fields: dict[str, Any] = {"status": tree.root.status.value, "subtask": self.current_subtask,
                                  "visited_path": [names.get(i, str(i)) for i in self.visitor.visited]}
        if self.visitor.changed:
            fields["snapshot"] = snapshot(tree.root, self.visitor, self.namespace, float(self.world.time))
        record = {"tick": self.ticks + 1, "time": round(float(self.world.time), 4), **fields}
        self.trace.write("tick", **record)

    def _perceive(self) -> None:
        if self.ctx.obs_version == self._perceived or self.ctx.obs is None:
            return
        belief = self.perception.update(self.ctx.obs)
        self._perceived = self.ctx.obs_version
        self.bb.belief = belief
        truth = {k: v >= 0.5 for k, v in belief.predicates.items()}
        up = sorted(k for k, v in truth.items() if v and not self._truth.get(k, False))
        down = sorted(k for k, v in self._truth.items() if v and not truth.get(k, False))
        self._truth = truth
        if up or down:
            self._emit("belief_changed", became_true=up, became_false=down)

    def _summarise_actions(self, force: bool = False) -> None:
        self._action_ticks += 0 if force else 1
        acts = self.ctx.actions
        if acts and (self._action_ticks >= self.config.action_summary_every or force):
            norms = [float(np.linalg.norm(a)) for a in acts]
            self._emit("actions", count=len(acts), mean_norm=round(float(np.mean(norms)), 4), max_norm=round(max(norms), 4),
                       last=[round(float(v), 4) for v in acts[-1]], subtask=self.current_subtask)
            self.ctx.actions.clear()
            self._action_ticks = 0

    def _failed_unit(self) -> SubtaskRetry | None:
        return next((u for u in units(self.tree.root) if u.status == Status.FAILURE), None) if self.tree else None

    def _last_reason(self, sid: str | None) -> str:
        for record in reversed(self.bb.failures or []):
            if record.subtask == sid:
                return record.reason
        return "failed"

    def _recover(self) -> None:
        unit = self._failed_unit()
        sid = unit.subtask.id if unit else self.current_subtask
        reason = unit.reasons[-1] if unit and unit.reasons else self._last_reason(sid)
        self.reasons.append(f"{sid} {unit.subtask.label if unit else ''}: {reason}".replace("  ", " "))
        if self.replanner is None or unit is None:
            self._finish("failed", failed=sid)
            return
        if self.replans >= self.config.max_replans:
            self.reasons.append(f"gave up after {self.replans} replan(s)")
            self._finish("failed", failed=sid)
            return
        belief = self.belief
        try:
            if belief is None:
                raise ReplanRefused("no belief to plan from")
            graph = self.replanner(self.goal, belief, self.graph, unit.subtask, list(self.reasons))
        except ReplanRefused as exc:
            self.reasons.append(f"replanning refused: {exc}")
            self._finish("failed", failed=sid)
            return
        self.replans += 1
        self._emit("replanned", reason=self.reasons[-1], replans=self.replans, graph=graph.to_dict(),
                   subtasks=[s.id for s in graph.order()])
        self._install(graph)

    def _goal_left(self) -> TaskGraph | None:
        """Before a finished plan counts as success: what the planner still finds to do for the
        goal from the belief now (`remaining` on the replanner, which grounds "every object on
        the table" again: one hidden when the goal was planned may have been seen since), at most
        `max_goal_checks` times; None when nothing is left."""
        check = getattr(self.replanner, "remaining", None)
        if check is None or self.belief is None or self.goal_checks >= self.config.max_goal_checks:
            return None
        self.goal_checks += 1
        return check(self.goal, self.belief)

    def _finish(self, status: Literal["succeeded", "failed"], failed: str | None = None) -> None:
        self._summarise_actions(force=True)
        self.outcome = RunOutcome(status=status, goal=self.goal, failed_subtask=failed, reasons=list(self.reasons),
                                  replans=self.replans, ticks=self.ticks, time_s=round(float(self.world.time), 4),
                                  trace=str(self.trace.path) if self.trace is not None else None)
        self._emit("run_finished", outcome=self.outcome.model_dump(mode="json"))
        if self.trace is not None:
            self.trace.flush()
