"""Adapters from the planner to the executor's `Replanner` protocol.

Until the planner has a dedicated repair function, a repair is a fresh `plan()` of the same
goal from the current belief: the planner drops the steps whose outcome already holds, so
the new graph starts where the world now is (e.g. "look for the cup, go to it, pick it up"
again after the cup fell out of the hand).
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
    """Replans `goal` in `scenario` (a Scenario, a built-in name or a file) from the belief."""

    def __init__(self, scenario: Any | str | Path, **plan_kwargs: Any) -> None:
        self.scenario = scenario
        self.plan_kwargs = plan_kwargs

    def __call__(self, goal: str, belief: Belief, graph: TaskGraph, failed: Subtask, reasons: list[str]) -> TaskGraph:
        from planner.planning import plan

        result = plan(goal, self.scenario, belief, **self.plan_kwargs)
        kind = getattr(result, "kind", None)
        if kind == "plan":
            result.graph.attrs["replanned_because"] = reasons[-1] if reasons else ""
            log.debug("behaviors.replan", failed=failed.id, subtasks=len(result.graph))
            return result.graph
        if kind == "clarification":
            raise ReplanRefused(f"the repaired plan needs an answer: {result.question}")
        raise ReplanRefused(getattr(result, "reason", f"the planner returned {result!r}"))
