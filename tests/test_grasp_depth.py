"""A pick that closes on a ball past its middle takes it again deeper (policy.grasp_depth),
in the simulator: a scripted picker that stops 4 cm short, as learned picks did."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from policy.expert.geometry import to_base
from policy.grasp_depth import GraspDepth, quat_x_axis, sphere_depth, with_grasp_depth
from scenarios.loading import load_scenario
from scenarios.robot import PAD_HALF_LENGTH
from scenarios.world import SimWorld

TOP_DOWN = np.array([0.0, math.pi / 2, 0.0])  # rotvec: the grasp site's approach pointing down
SHORT_M = 0.04  # the picker closes with the grasp site this far above the ball's centre


def test_the_depth_of_a_sphere_held_by_the_pad_edges_follows_from_the_opening():
    assert sphere_depth(0.07, 0.035) == pytest.approx(PAD_HALF_LENGTH)  # on the faces: the diameter
    assert sphere_depth(0.06, 0.035) == pytest.approx(PAD_HALF_LENGTH + math.sqrt(0.035**2 - 0.03**2))
    assert sphere_depth(0.0, 0.035) == pytest.approx(PAD_HALF_LENGTH + 0.035)
    assert quat_x_axis((1, 0, 0, 0)) == pytest.approx([1, 0, 0])
    assert quat_x_axis((math.cos(math.pi / 4), 0, math.sin(math.pi / 4), 0)) == pytest.approx([0, 0, -1])  # +90 deg about y


class ShallowPicker:
    """Above the ball, down to SHORT_M above its centre, close, lift: LeRobot's methods."""

    def __init__(self, world: SimWorld, ball: np.ndarray) -> None:
        self.world, self.ball = world, ball
        self.resets = 0
        self.t = 0.0

    def reset(self) -> None:
        self.resets += 1

    def select_action(self, obs) -> np.ndarray:
        s = self.world.controller.layout.slices
        a = self.world.hold_action().copy()
        a[s["base"]] = 0.0
        self.t += self.world.control_period
        height = 0.15 if self.t < 1.5 else (SHORT_M if self.t < 4.0 else (SHORT_M if self.t < 5.0 else 0.2))
        a[s["right.pos"]] = self.ball + (0.0, 0.0, height)
        a[s["right.rot"]] = TOP_DOWN
        a[s["right.gripper"]] = 0.0 if self.t < 3.5 else 1.0
        return a


def pick(regrasp: bool) -> tuple[np.ndarray, GraspDepth | None, ShallowPicker]:
    sc = load_scenario("tidy_table")
    sc = sc.model_copy(update={"robot": sc.robot.model_copy(update={"start": sc.robot.start.model_copy(update={"x": 0.25})})})
    world = SimWorld(sc)
    try:
        obs, _ = world.reset(seed=0)
        truth = world.privileged_state()
        ball = to_base(truth.robot.base, truth.objects["red_ball"].pos)  # base frame (the base is at the floor)
        picker = ShallowPicker(world, ball)
        factory = with_grasp_depth(lambda subtask: picker, world) if regrasp else (lambda subtask: picker)
        policy = factory(SimpleNamespace(skill="pick", args=("red_ball",)))
        with world.cameras_off():
            for _ in range(int(8.0 / world.control_period)):
                obs, *_ = world.step(policy.select_action(obs))
        truth = world.privileged_state()
        site = np.array(truth.robot.grasp_sites["right"])
        return np.array(truth.objects["red_ball"].pos) - site, policy if regrasp else None, picker
    finally:
        world.close()


def test_a_ball_pinched_past_its_middle_is_taken_again_at_its_centre():
    offset, _, _ = pick(regrasp=False)
    assert np.linalg.norm(offset) > 0.05  # without: the ball slipped out through the pads' tips as the hand lifted
    offset, policy, picker = pick(regrasp=True)
    assert policy.regrasps == 1 and policy.depth_m > 0.02 and policy.opening_m < 0.07 - 0.003 and picker.resets >= 1
    assert np.linalg.norm(offset) < 0.012  # lifted with the ball between the pads' faces


def test_only_picks_of_spheres_are_watched():
    world = SimpleNamespace(controller=None, scenario=load_scenario("tidy_table"))
    plain = object()
    assert with_grasp_depth(lambda subtask: plain, world)(SimpleNamespace(skill="pick", args=("red_ball",))) is plain  # no layout
    sim = SimWorld("tidy_table")
    try:
        factory = with_grasp_depth(lambda subtask: plain, sim)
        assert factory(SimpleNamespace(skill="pick", args=("blue_can",))) is plain
        assert factory(SimpleNamespace(skill="place_in", args=("red_ball", "bin"))) is plain
        assert isinstance(factory(SimpleNamespace(skill="pick", args=("red_ball",))), GraspDepth)
    finally:
        sim.close()
