"""A drive whose base is commanded to move and does not: the attempt ends, the reflex backs out.

A learned drive that wedges its base against furniture (between the tidy table's corner and the
bin, into a leg of the kitchen table) keeps commanding a few centimetres a second into it, and
its arms keep swaying, so the tree's stall detector, which counts any change of the robot's own
state as progress, never fires: each such attempt ran its whole 60 s budget and the next one
started from the same wedge (session 19: serve seeds 10 and 34, tidy seed 0, 3 x 60 s each).
`BlockedBase` watches what the wrapped policy commands the base to do (the action layout's
`base` entries: forward, sideways, turn) against the believed base pose (odometry): commanded
for `blocked_s` while the pose stays put, the policy reports `failure`, which the tree's skill
leaf turns into a failed attempt; the reset reflex before the retry then backs the base out to
open floor (`policy.posture`, `escape_path`). It reads the belief and its own actions only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from perception.belief import Belief
from policy.expert.geometry import wrap

BLOCKED_S = 2.0  # s commanded without moving
MIN_SPEED = 0.03  # m/s: a commanded translation at least this fast (wedged drives pushed at 0.05-0.1)
MIN_TURN = 0.15  # rad/s: ... or a commanded turn at least this fast
MOVED_M = 0.01  # m: base movement that counts as moving
MOVED_RAD = 0.03  # rad: ... and the same for its heading
BLOCKED_SKILLS = ("navigate_to",)


class BlockedBase:
    """Wraps a policy (LeRobot's methods); `failure` says why once its base has been commanded
    for `blocked_s` simulated seconds without the believed pose moving. `base` is the action's
    slice of robot-frame (vx, vy, wz); `belief` returns perception's latest belief."""

    def __init__(self, policy: Any, base: slice, belief: Callable[[], Belief | None], blocked_s: float = BLOCKED_S) -> None:
        self.policy = policy
        self.base = base
        self.belief = belief
        self.blocked_s = blocked_s
        self.failure: str | None = None
        self._since: float | None = None  # when the base was first commanded without moving
        self._anchor: np.ndarray | None = None  # the believed pose then
        self._pushed = 0.0  # the largest commanded speed since then (m/s), for the reason

    def __getattr__(self, name: str) -> Any:  # `done`, `closed_steps`, ... of the wrapped policy
        return getattr(self.__dict__["policy"], name)

    def reset(self) -> None:
        self.policy.reset()
        self.failure = None
        self._since = self._anchor = None
        self._pushed = 0.0

    def _watch(self, action: np.ndarray) -> None:
        belief = self.belief()
        if belief is None or self.failure is not None:
            return
        vx, vy, wz = (float(v) for v in np.asarray(action, dtype=np.float64)[self.base][:3])
        speed = math.hypot(vx, vy)
        pose = np.asarray(belief.robot.pose, dtype=np.float64)
        commanded = speed >= MIN_SPEED or abs(wz) >= MIN_TURN
        moved = self._anchor is not None and (
            math.hypot(*(pose[:2] - self._anchor[:2])) > MOVED_M
            or abs(wrap(pose[2] - self._anchor[2])) > MOVED_RAD)
        if not commanded or moved or self._since is None:
            self._since, self._anchor, self._pushed = (belief.time, pose, speed) if commanded else (None, None, 0.0)
            return
        self._pushed = max(self._pushed, speed)
        if belief.time - self._since >= self.blocked_s - 1e-9:
            self.failure = (f"blocked: the base was commanded (up to {self._pushed:.2f} m/s) for "
                            f"{belief.time - self._since:.1f} s and stayed within {MOVED_M * 100:.0f} cm")

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        action = self.policy.select_action(obs)
        self._watch(action)
        return action

    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        chunk = self.policy.predict_action_chunk(obs)
        self._watch(np.asarray(chunk)[0])
        return chunk


def with_blocked_base(factory: Callable[[Any], Any], world: Any, perception: Any) -> Callable[[Any], Any]:
    """`factory` (subtask -> policy) with every drive it makes (BLOCKED_SKILLS) watched by a
    `BlockedBase` on the world's action layout (`world.controller.layout`, `"base"`); `factory`
    itself for a world without a base in its layout, or without a perception to read from."""
    controller = getattr(world, "controller", None)
    base = getattr(getattr(controller, "layout", None), "slices", {}).get("base")
    if perception is None or base is None:
        return factory

    def make(subtask: Any) -> Any:
        policy = factory(subtask)
        return BlockedBase(policy, base, lambda: perception.belief) if subtask.skill in BLOCKED_SKILLS else policy

    return make
