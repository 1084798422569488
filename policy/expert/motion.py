"""The expert's running command: smooth, bounded-speed targets for arms, grippers, head and base.

Every skill edits this command and emits it as one action of the world's EE_POSE layout.
End-effector targets move towards their goals at most `EE_SPEED` m/s and `EE_TURN`
rad/s, the gripper at `GRIPPER_RATE` per second, the head at `HEAD_RATE` rad/s, so the
recorded actions are smooth whatever the phase logic asks for.
"""

from __future__ import annotations

import math

import numpy as np

from policy.expert.geometry import rotvec_distance, rotvec_step, to_base
from scenarios.robot import SIDES

EE_SPEED = 0.25  # m/s
EE_TURN = 1.2  # rad/s
GRIPPER_RATE = 2.5  # full range per second
HEAD_RATE = 1.5  # rad/s
HEAD_CAMERA = (0.03, 0.0, 1.49)  # head camera in the base frame at pan = tilt = 0 (approx.)
PAN_LIMIT = math.radians(80)
TILT_RANGE = (math.radians(-25), math.radians(65))

# Posture while driving: hands tucked in front of the chest, clear of counters and shelves.
DRIVE_POS = {"left": np.array([0.30, 0.27, 1.08]), "right": np.array([0.30, -0.27, 1.08])}
DRIVE_ROT = np.array([0.0, 0.5, 0.0])
# A held object is carried with the hand level, close in and high.
CARRY_POS = {"left": np.array([0.36, 0.25, 1.10]), "right": np.array([0.36, -0.25, 1.10])}


class Command:
    """Current targets, and the action they make."""

    def __init__(self, layout_slices: dict[str, slice], dim: int, dt: float, action: np.ndarray) -> None:
        self.s = layout_slices
        self.dim = dim
        self.dt = dt
        a = np.asarray(action, dtype=np.float64)
        self.pos = {side: a[self.s[f"{side}.pos"]].copy() for side in SIDES}
        self.rot = {side: a[self.s[f"{side}.rot"]].copy() for side in SIDES}
        self.grip = {side: float(a[self.s[f"{side}.gripper"]][0]) for side in SIDES}
        self.head = a[self.s["head"]].copy()
        self.base = np.zeros(3)

    def move(self, side: str, pos: np.ndarray, rot: np.ndarray | None = None, speed: float = EE_SPEED) -> bool:
        """Step the target of `side` towards (pos, rot); True once it is there."""
        delta = np.asarray(pos, float) - self.pos[side]
        dist = float(np.linalg.norm(delta))
        cap = speed * self.dt
        self.pos[side] = self.pos[side] + (delta if dist <= cap else delta * cap / dist)
        done = dist <= cap
        if rot is not None:
            self.rot[side] = rotvec_step(self.rot[side], np.asarray(rot, float), EE_TURN * self.dt)
            done = done and rotvec_distance(self.rot[side], rot) < 1e-3
        return done

    def gripper(self, side: str, value: float) -> bool:
        cap = GRIPPER_RATE * self.dt
        d = value - self.grip[side]
        self.grip[side] += float(np.clip(d, -cap, cap))
        return abs(value - self.grip[side]) < 1e-6

    def look_at(self, base: tuple[float, float, float], point: np.ndarray) -> tuple[float, float]:
        """Turn the head towards a world point; returns the desired (pan, tilt) before limits."""
        p = to_base(base, point)
        dx, dy = p[0] - HEAD_CAMERA[0], p[1] - HEAD_CAMERA[1]
        pan = math.atan2(dy, dx)
        z = point[2] if len(point) > 2 else 0.8
        tilt = math.atan2(HEAD_CAMERA[2] - z, math.hypot(dx, dy))
        self.set_head(pan, tilt)
        return pan, tilt

    def set_head(self, pan: float, tilt: float) -> None:
        goal = np.array([np.clip(pan, -PAN_LIMIT, PAN_LIMIT), np.clip(tilt, *TILT_RANGE)])
        cap = HEAD_RATE * self.dt
        self.head = self.head + np.clip(goal - self.head, -cap, cap)

    def action(self) -> np.ndarray:
        a = np.zeros(self.dim, dtype=np.float32)
        a[self.s["base"]] = self.base
        for side in SIDES:
            a[self.s[f"{side}.pos"]] = self.pos[side]
            a[self.s[f"{side}.rot"]] = self.rot[side]
            a[self.s[f"{side}.gripper"]] = self.grip[side]
        a[self.s["head"]] = self.head
        return a
