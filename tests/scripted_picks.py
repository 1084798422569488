"""Scripted pickers in the simulator, for the pick reflexes' tests (policy.grasp_depth,
policy.stalled_lift): they close where learned picks were measured to close, and lift, or not."""

from __future__ import annotations

import math

import mujoco
import numpy as np

from perception.belief import Belief, ObjectBelief, RobotBelief
from scenarios.loading import load_scenario
from scenarios.world import SimWorld

TOP_DOWN = np.array([0.0, math.pi / 2, 0.0])  # rotvec: the grasp site's approach pointing down
SHORT_M = 0.04  # the picker closes with the grasp site this far above the ball's centre


def picking_world() -> SimWorld:
    """The tidy room with the robot started 0.25 m from the table's near edge, the ball and the box
    within reach of its right hand."""
    sc = load_scenario("tidy_table")
    return SimWorld(sc.model_copy(update={"robot": sc.robot.model_copy(update={"start": sc.robot.start.model_copy(update={"x": 0.25})})}))


class ShortPicker:
    """Above `target` (base frame), down until the grasp site is `short` above it, close, and from
    `lift_at` s on lift (never, if infinite), the hand held at `rot` (rotvec, base frame):
    LeRobot's methods."""

    def __init__(self, world: SimWorld, target: np.ndarray, rot: np.ndarray = TOP_DOWN, short: float = SHORT_M,
                 lift_at: float = 5.0) -> None:
        self.world, self.target, self.rot = world, target, rot
        self.short, self.lift_at = short, lift_at
        self.resets = 0
        self.t = 0.0

    def reset(self) -> None:
        self.resets += 1

    def select_action(self, obs) -> np.ndarray:
        s = self.world.controller.layout.slices
        a = self.world.hold_action().copy()
        a[s["base"]] = 0.0
        self.t += self.world.control_period
        height = 0.15 if self.t < 1.5 else (self.short if self.t < self.lift_at else 0.2)
        a[s["right.pos"]] = self.target + (0.0, 0.0, height)
        a[s["right.rot"]] = self.rot
        a[s["right.gripper"]] = 0.0 if self.t < 3.5 else 1.0
        return a


def top_down_across(yaw: float) -> np.ndarray:
    """Rotvec (base frame) of a grasp site pointing down, its fingers closing across a box
    turned `yaw` (base frame): Rz(yaw) @ Ry(pi/2) as an axis-angle vector."""
    q_yaw = np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
    q_down = np.array([math.cos(math.pi / 4), 0.0, math.sin(math.pi / 4), 0.0])
    q = np.empty(4)
    mujoco.mju_mulQuat(q, q_yaw, q_down)
    v = np.empty(3)
    mujoco.mju_quat2Vel(v, q, 1.0)
    return v


class SeeingPerception:
    """What camera perception would believe of `obj` and the base at this moment: the truth, as
    perception had the green box within 3 mm at the learned picks probed (session 22); `static`
    the room as the robot knows it (the static map), when given."""

    def __init__(self, world: SimWorld, obj: str = "green_box", static=None) -> None:
        self.world, self.obj, self.static = world, obj, static

    @property
    def belief(self) -> Belief:
        truth = self.world.privileged_state()
        o = next(o for o in self.world.scenario.objects if o.id == self.obj)
        seen = ObjectBelief(id=o.id, category=o.category, colour=o.colour, position=tuple(truth.objects[o.id].pos),
                            confidence=0.9, last_seen=truth.time, visible=True)
        return Belief(time=truth.time, robot=RobotBelief(pose=tuple(truth.robot.base)), objects={o.id: seen})
