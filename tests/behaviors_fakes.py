"""A fast fake world, perception and policy for the behaviour-tree tests.

The world keeps a set of true facts (predicate texts) and a progress counter per subtask.
A subtask's fake policy sends `[index, speed]`; the world advances that subtask's progress
by speed × dt and, once it reaches the script's duration, makes the script's effects true.
Perception reads the facts out of the observation (confidence 1), so the tree sees the world
only through a Belief, as it would in the simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception.belief import Belief, ObjectBelief, RobotBelief
from planner.taskgraph import Subtask, TaskGraph


OBJECT_FACTS = ("seen(", "at_hand(")


@dataclass
class Script:
    duration: float = 0.5  # simulated seconds of work
    effects: tuple[str, ...] = ()
    removes: tuple[str, ...] = ()
    stall_attempts: int = 0  # attempts in which the policy holds still
    give_up_attempts: int = 0  # attempts in which the policy reports a failure
    never: bool = False  # keeps moving, never finishes (a timeout)
    rests: bool = False  # once the effects hold the robot stands still (a learned manipulation's arm at rest)


class FakeWorld:
    def __init__(self, scripts: dict[str, Script], order: list[str], facts: set[str] | None = None, dt: float = 0.05) -> None:
        self.scripts = scripts
        self.order = order
        self.initial = set(facts or ())
        self.facts = set(self.initial)
        self.dt = dt
        self.t = 0.0
        self.steps = 0
        self.progress = np.zeros(len(order))
        self.actions: list[np.ndarray] = []

    @property
    def time(self) -> float:
        return self.t

    @property
    def control_period(self) -> float:
        return self.dt

    def hold_action(self) -> np.ndarray:
        return np.array([-1.0, 0.0])

    def _obs(self) -> dict[str, Any]:
        return {"observation.state": self.progress.astype(np.float32).copy(), "facts": frozenset(self.facts),
                "observation.images.head": np.full((8, 8, 3), self.steps % 255, dtype=np.uint8)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        self.facts = set(self.initial)
        self.t, self.steps = 0.0, 0
        self.progress[:] = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=float)
        self.actions.append(action)
        idx, speed = int(action[0]), float(action[1])
        if idx >= 0 and speed:
            sid = self.order[idx]
            script = self.scripts[sid]
            before = self.progress[idx]
            if script.rests and not script.never and before >= script.duration:
                speed = 0.0
            self.progress[idx] += speed * self.dt
            if not script.never and before < script.duration <= self.progress[idx] + 1e-9:
                self.facts |= set(script.effects)
                self.facts -= set(script.removes)
        self.t = round(self.t + self.dt, 9)
        self.steps += 1
        return self._obs(), 0.0, False, False, {}


class FakePerception:
    def __init__(self) -> None:
        self.updates = 0

    def reset(self) -> None:
        self.updates = 0

    def update(self, obs: dict[str, Any]) -> Belief:
        self.updates += 1
        # Object facts: "seen(cup)" an object the camera sees now, "at_hand(cup)" one the left
        # hand's fingers are at (let go, not withdrawn, not seen since).
        objects = {}
        for f in obs["facts"]:
            if f.startswith(OBJECT_FACTS):
                oid, seen = f[f.index("(") + 1:-1], f.startswith("seen(")
                objects[oid] = ObjectBelief(id=oid, category="cup", colour="red", position=(0.0, 0.0, 1.0), confidence=1.0,
                                            last_seen=self.updates if seen else 0.0, visible=seen,
                                            at_hand=None if seen else "left")
        return Belief(time=self.updates, robot=RobotBelief(pose=(0.0, 0.0, 0.0)), objects=objects,
                      predicates={f: 1.0 for f in obs["facts"] if not f.startswith(OBJECT_FACTS)})


@dataclass
class FakePolicy:
    index: int
    speed: float = 1.0
    failure: str | None = None
    resets: int = 0
    calls: int = 0

    def reset(self) -> None:
        self.resets += 1

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        self.calls += 1
        assert obs["task"], "the instruction must reach the policy"
        return np.array([float(self.index), self.speed])

    def predict_action_chunk(self, obs: dict[str, Any]) -> np.ndarray:
        return np.stack([self.select_action(obs)] * 5)


@dataclass
class FakeFactory:
    world: FakeWorld
    attempts: dict[str, int] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)

    def __call__(self, subtask: Subtask) -> FakePolicy:
        n = self.attempts.get(subtask.id, 0) + 1
        self.attempts[subtask.id] = n
        self.made.append(subtask.id)
        script = self.world.scripts[subtask.id]
        index = self.world.order.index(subtask.id)
        if n <= script.stall_attempts:
            return FakePolicy(index, speed=0.0)
        if n <= script.give_up_attempts:
            return FakePolicy(index, failure="could not grasp")
        return FakePolicy(index)


def subtask(sid: str, success: str, pre: tuple[str, ...] = (), timeout: float = 5.0, retries: int = 1, group: str | None = None) -> Subtask:
    return Subtask(id=sid, skill=sid.rstrip("0123456789") or "do", args=("thing",), instruction=f"do {sid}",
                   preconditions=pre, success=(success,), timeout_s=timeout, retries=retries, group=group)


def chain(ids: list[str], **kw: Any) -> TaskGraph:
    """A linear graph: each subtask makes `done_<id>` true."""
    g = TaskGraph(goal="fake goal")
    prev: list[str] = []
    for sid in ids:
        g.add(subtask(sid, f"visible({sid})", **kw), after=prev)
        prev = [sid]
    return g


def approx(a: float, b: float) -> bool:
    return math.isclose(a, b, abs_tol=1e-6)


class Odometry:
    """A belief (`b`) whose base pose integrates the robot-frame base commands sent (`move`),
    every `dt`: the reset reflex's own driving, with no simulator."""

    def __init__(self, pose: tuple[float, float, float], b: Belief, dt: float = 0.05) -> None:
        self.pose = np.array(pose, float)
        self.b = b
        self.dt = dt

    def __call__(self) -> Belief:
        return self.b.model_copy(update={"robot": RobotBelief(pose=tuple(self.pose))})

    def move(self, base_cmd: np.ndarray) -> None:
        c, s = math.cos(self.pose[2]), math.sin(self.pose[2])
        vx, vy, wz = base_cmd
        self.pose += self.dt * np.array([c * vx - s * vy, s * vx + c * vy, wz])


def run_reflex(reflex: Any, odometry: Odometry, limit: int = 400) -> np.ndarray:
    """Step a reset reflex (already `reset()`) until `done`, its base commands moving
    `odometry`; the actions it sent."""
    actions = []
    while not reflex.done and len(actions) < limit:
        a = reflex.select_action({})
        odometry.move(a[0:3])
        actions.append(a)
    return np.array(actions)
