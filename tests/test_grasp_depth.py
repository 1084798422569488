"""A pick that closes on a ball past its middle, or on a box short of its centre, takes it again
deeper (policy.grasp_depth), in the simulator: scripted pickers that stop 4 cm short, as learned
picks did."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from perception.belief import Belief, ObjectBelief, RobotBelief
from policy.expert.geometry import quat_yaw, to_base
from policy.grasp_depth import BelievedDepth, GraspDepth, quat_x_axis, sphere_depth, with_grasp_depth
from scenarios.loading import load_scenario
from scenarios.robot import PAD_HALF_LENGTH
from scenarios.world import SimWorld
from scripted_picks import SHORT_M, TOP_DOWN, SeeingPerception, ShortPicker, picking_world, top_down_across


def test_the_depth_of_a_sphere_held_by_the_pad_edges_follows_from_the_opening():
    assert sphere_depth(0.07, 0.035) == pytest.approx(PAD_HALF_LENGTH)  # on the faces: the diameter
    assert sphere_depth(0.06, 0.035) == pytest.approx(PAD_HALF_LENGTH + math.sqrt(0.035**2 - 0.03**2))
    assert sphere_depth(0.0, 0.035) == pytest.approx(PAD_HALF_LENGTH + 0.035)
    assert quat_x_axis((1, 0, 0, 0)) == pytest.approx([1, 0, 0])
    assert quat_x_axis((math.cos(math.pi / 4), 0, math.sin(math.pi / 4), 0)) == pytest.approx([0, 0, -1])  # +90 deg about y


def scripted_pick(obj: str, regrasp: bool, across_box: bool = False) -> tuple[np.ndarray, GraspDepth | None, ShortPicker]:
    """A `ShortPicker` run on `obj` in the tidy room for 8 s, wrapped by `with_grasp_depth` (with
    a perception that sees) when `regrasp`; the object's offset from the grasp site at the end,
    the wrapper and the picker. `across_box` turns the hand so its fingers close across the box."""
    world = picking_world()
    try:
        obs, _ = world.reset(seed=0)
        truth = world.privileged_state()
        target = to_base(truth.robot.base, truth.objects[obj].pos)  # base frame (the base is at the floor)
        rot = top_down_across(quat_yaw(truth.objects[obj].quat) - truth.robot.base[2]) if across_box else TOP_DOWN
        picker = ShortPicker(world, target, rot)
        factory = with_grasp_depth(lambda subtask: picker, world, SeeingPerception(world)) if regrasp else (lambda subtask: picker)
        policy = factory(SimpleNamespace(skill="pick", args=(obj,)))
        with world.cameras_off():
            for _ in range(int(8.0 / world.control_period)):
                obs, *_ = world.step(policy.select_action(obs))
        truth = world.privileged_state()
        site = np.array(truth.robot.grasp_sites["right"])
        return np.array(truth.objects[obj].pos) - site, policy if regrasp else None, picker
    finally:
        world.close()


def test_a_ball_pinched_past_its_middle_is_taken_again_at_its_centre():
    offset, _, _ = scripted_pick("red_ball", regrasp=False)
    assert np.linalg.norm(offset) > 0.05  # without: the ball slipped out through the pads' tips as the hand lifted
    offset, policy, picker = scripted_pick("red_ball", regrasp=True)
    assert policy.regrasps == 1 and policy.depth_m > 0.02 and policy.opening_m < 0.07 - 0.003 and picker.resets >= 1
    assert np.linalg.norm(offset) < 0.012  # lifted with the ball between the pads' faces


def test_only_picks_of_spheres_and_seen_boxes_are_watched():
    world = SimpleNamespace(controller=None, scenario=load_scenario("tidy_table"))
    plain = object()
    assert with_grasp_depth(lambda subtask: plain, world)(SimpleNamespace(skill="pick", args=("red_ball",))) is plain  # no layout
    sim = SimWorld("tidy_table")
    try:
        factory = with_grasp_depth(lambda subtask: plain, sim)
        assert factory(SimpleNamespace(skill="pick", args=("blue_can",))) is plain
        assert factory(SimpleNamespace(skill="place_in", args=("red_ball", "bin"))) is plain
        assert isinstance(factory(SimpleNamespace(skill="pick", args=("red_ball",))), GraspDepth)
        assert factory(SimpleNamespace(skill="pick", args=("green_box",))) is plain  # no perception to see it by
        seeing = with_grasp_depth(lambda subtask: plain, sim, SeeingPerception(sim))
        assert isinstance(seeing(SimpleNamespace(skill="pick", args=("green_box",))), GraspDepth)
    finally:
        sim.close()


def test_a_box_held_short_of_its_centre_is_taken_again_by_its_believed_centre():
    offset, _, _ = scripted_pick("green_box", regrasp=False, across_box=True)
    assert np.linalg.norm(offset) > 0.03  # without: lifted by the pads' tips, its centre 4 cm beyond the site
    offset, policy, picker = scripted_pick("green_box", regrasp=True, across_box=True)
    assert policy.regrasps == 1 and policy.depth_m == pytest.approx(SHORT_M - 0.003, abs=0.01) and picker.resets >= 1
    assert np.linalg.norm(offset) < 0.015  # lifted with its centre between the pads


def test_a_believed_depth_needs_the_centre_between_the_pads_and_short_of_the_site():
    frame = np.eye(3)  # approach x, closing y
    def belief_at(x: float, y: float) -> Belief:
        box = ObjectBelief(id="green_box", category="box", colour="green", position=(x, y, 0.8), confidence=0.9,
                           last_seen=1.0, visible=True)
        return Belief(time=1.0, robot=RobotBelief(pose=(0.0, 0.0, 0.0)), objects={"green_box": box})
    site = np.array([0.5, 0.0, 0.8])
    assert BelievedDepth(lambda: belief_at(0.54, 0.0), "green_box")(0.06, site, frame) == pytest.approx((0.037, 0.08))
    assert BelievedDepth(lambda: belief_at(0.51, 0.0), "green_box")(0.06, site, frame) is None  # deep enough
    assert BelievedDepth(lambda: belief_at(0.54, 0.05), "green_box")(0.06, site, frame) is None  # not between the pads
    assert BelievedDepth(lambda: belief_at(0.54, 0.0), "red_ball")(0.06, site, frame) is None  # not believed at all
