"""The interfaces the behaviour tree depends on, so fakes, the simulator or a real robot fit.

Nothing here imports the simulator, the planner or a policy: behaviors/ sees the world,
perception, policies and the planner only through these Protocols, and `agent/` wires the
real ones in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from perception.belief import Belief
from planner.taskgraph import Subtask, TaskGraph


@runtime_checkable
class WorldLike(Protocol):
    """A gymnasium-style world whose `time` is simulated (or real robot) seconds."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]: ...

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]: ...

    def hold_action(self) -> np.ndarray: ...

    @property
    def time(self) -> float: ...

    @property
    def control_period(self) -> float: ...


@runtime_checkable
class PolicyLike(Protocol):
    """LeRobot-style policy. Optionally a policy may expose `failure: str | None` (it gave up,
    and why) — the scripted expert does — which the skill leaf reports as a failure reason."""

    def reset(self) -> None: ...

    def select_action(self, obs: dict[str, Any]) -> np.ndarray: ...

    def predict_action_chunk(self, obs: dict[str, Any]) -> np.ndarray: ...


PolicyFactory = Callable[[Subtask], PolicyLike]
"""Builds the policy that runs one subtask (the expert per skill and args, or the VLA)."""


@runtime_checkable
class PerceptionLike(Protocol):
    def update(self, obs: dict[str, Any]) -> Belief: ...

    def reset(self) -> None: ...


class ReplanRefused(Exception):
    """The planner could not repair the plan; the message says why."""


@runtime_checkable
class Replanner(Protocol):
    """Returns a repaired graph for `goal` from the current belief, or raises ReplanRefused.

    One may also have `remaining(goal, belief) -> TaskGraph | None` (what is left of the goal
    once a plan has finished; `behaviors.recovery.PlannerReplanner`): the executor checks a
    finished plan with it before the run succeeds."""

    def __call__(self, goal: str, belief: Belief, graph: TaskGraph, failed: Subtask, reasons: list[str]) -> TaskGraph: ...
