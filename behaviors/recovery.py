"""The adapter from the planner to the executor's `Replanner` protocol.

With the PlanResult the run started from, a repair goes through `planner.replan.replan`:
same method and grounded slots, re-expanded from the belief now, keeping only the tail of
each chain that still has to happen (the cup fell: look for it again; the cup is in hand:
drive to the person). Without it (or before planner.replan existed) a repair is a fresh
`plan()` of the goal from the belief, which also skips what already holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from behaviors.protocols import ReplanRefused
from perception.belief import Belief
from planner.taskgraph import Subtask, TaskGraph

log = structlog.get_logger(__name__)


class PlannerReplanner:
    """Repairs the plan for `goal` in `scenario` (a Scenario, a built-in name or a file).

    Pass `previous=` the PlanResult the run started from to use the planner's `replan`
    (it keeps the goal's grounding and counts repeated failures); each repair becomes the
    previous plan of the next one.
    """

    def __init__(self, scenario: Any | str | Path, previous: Any = None, **plan_kwargs: Any) -> None:
        self.scenario = scenario
        self.previous = previous
        self.plan_kwargs = plan_kwargs

    def __call__(self, goal: str, belief: Belief, graph: TaskGraph, failed: Subtask, reasons: list[str]) -> TaskGraph:
        reason = reasons[-1] if reasons else ""
        if self.previous is not None and self.previous.graph is graph:
            from planner.replan import replan

            result = replan(self.previous, belief, self.scenario, failed=failed.id, reason=reason)
        else:
            from planner.planning import plan

            result = plan(goal, self.scenario, belief, **self.plan_kwargs)
        kind = getattr(result, "kind", None)
        if kind == "plan":
            self.previous = result
            log.debug("behaviors.replan", failed=failed.id, subtasks=len(result.graph))
            return result.graph
        if kind == "clarification":
            raise ReplanRefused(f"the repaired plan needs an answer: {result.question}")
        raise ReplanRefused(getattr(result, "reason", f"the planner returned {result!r}"))

    def remaining(self, goal: str, belief: Belief) -> TaskGraph | None:
        """What is left of `goal` by the belief now, with objects seen since planning grounded
        again (`replan(..., reground=True)`): a graph with subtasks, or None when nothing is left
        or there is no plan to check against."""
        from planner.replan import replan

        if self.previous is None:
            return None
        result = replan(self.previous, belief, self.scenario, failed=None, reason="checked the goal before finishing",
                        reground=True)
        if getattr(result, "kind", None) != "plan" or not len(result.graph):
            return None
        self.previous = result
        log.debug("behaviors.goal_left", subtasks=len(result.graph))
        return result.graph
