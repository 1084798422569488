"""A pick that has closed on its object and does not lift it has it lifted (policy.stalled_lift): in
the simulator with a scripted picker that closes and then holds still, as learned picks of the
kitchen's yellow box did; the headroom under a shelf's board; and what is not a stalled grasp."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from perception.belief import Belief, ObjectBelief, RobotBelief
from perception.static_map import StaticMap
from perception.tracking import grip_range
from policy.expert.geometry import quat_yaw, to_base
from policy.stalled_lift import HEADROOM_M, LIFT_M, StalledLift, believed_headroom, with_stalled_lift
from scenarios.catalog import CATEGORIES
from scenarios.loading import load_scenario
from scenarios.world import SimWorld
from scripted_picks import SeeingPerception, ShortPicker, picking_world, top_down_across


def stalled_pick(lift_at: float, reflex: bool) -> tuple[float, StalledLift | None, ShortPicker]:
    """A `ShortPicker` closing across the tidy room's green box at its centre at 3.5 s, lifting from
    `lift_at` s, run 8 s, wrapped by `with_stalled_lift` when `reflex`; the highest the box rose (the
    tree ends a pick once perception sees it held; the picker then takes the hand back down), the
    wrapper and the picker."""
    world = picking_world()
    try:
        obs, _ = world.reset(seed=0)
        truth = world.privileged_state()
        box = truth.objects["green_box"]
        target = to_base(truth.robot.base, box.pos)
        picker = ShortPicker(world, target, top_down_across(quat_yaw(box.quat) - truth.robot.base[2]), short=0.0, lift_at=lift_at)
        seeing = SeeingPerception(world, "green_box", StaticMap.from_scenario(world.scenario))
        factory = with_stalled_lift(lambda subtask: picker, world, seeing) if reflex else (lambda subtask: picker)
        policy = factory(SimpleNamespace(skill="pick", args=("green_box",)))
        rose = 0.0
        with world.cameras_off():
            for _ in range(int(8.0 / world.control_period)):
                obs, *_ = world.step(policy.select_action(obs))
                rose = max(rose, world.privileged_state().objects["green_box"].pos[2] - box.pos[2])
        return float(rose), policy if reflex else None, picker
    finally:
        world.close()


def test_a_closed_grasp_that_does_not_rise_is_lifted():
    rose, _, _ = stalled_pick(lift_at=math.inf, reflex=False)
    assert rose < 0.01  # without: closed on the box, which stays on the table
    rose, policy, picker = stalled_pick(lift_at=math.inf, reflex=True)
    assert policy.lifts == 1 and policy.lift_m == pytest.approx(LIFT_M) and picker.resets >= 1
    assert rose > 0.05  # lifted clear of the table (perception's holding needs 2.5 cm)


def test_a_pick_that_lifts_by_itself_is_left_alone():
    rose, policy, _ = stalled_pick(lift_at=4.5, reflex=True)  # lifts 1 s after closing, as the expert does
    assert policy.lifts == 0 and rose > 0.1


class HoldStill:
    """Commands the right gripper closed, the left open, and nothing moves: LeRobot's methods."""

    def __init__(self, action: np.ndarray, slices: dict[str, slice]) -> None:
        self.action = action.copy()
        self.action[slices["right.gripper"]] = 1.0
        self.action[slices["left.gripper"]] = 0.0
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def select_action(self, obs) -> np.ndarray:
        return self.action


def test_a_hand_closed_on_nothing_on_a_box_s_edges_or_already_rising_is_not_lifted():
    world = SimWorld("tidy_table")
    try:
        layout, names = world.controller.layout, world.controller.proprioception_names()
        state = np.zeros(len(names), dtype=np.float32)
        state[names.index("left.gripper_opening")] = 0.1
        inner = HoldStill(world.hold_action(), layout.slices)
        z = names.index("right.ee.z")
        widest = grip_range("box")[1]  # 8.6 cm: a box's wider faces and the pads' give
        for opening, rise_per_s, lifted in ((0.002, 0.0, False), (0.092, 0.0, False), (0.06, 0.03, False), (0.06, 0.0, True)):
            policy = StalledLift(inner, layout.slices, layout.dim, names, world.control_period, widest=widest)
            state[names.index("right.gripper_opening")] = opening
            state[z] = 0.8
            for _ in range(int(3.0 / world.control_period)):  # 3 s: the fingers settle, then WAIT_S passes
                state[z] += rise_per_s * world.control_period
                action = policy.select_action({"observation.state": state})
            assert policy.lifts == int(lifted), (opening, rise_per_s)
            if lifted:  # the hand is taken up from where it is, the gripper kept closed
                assert action[layout.slices["right.pos"]][2] > 0.8 and action[layout.slices["right.gripper"]][0] == pytest.approx(1.0)
    finally:
        world.close()


def test_under_a_shelf_board_the_lift_keeps_the_expert_s_headroom():
    sc = load_scenario("living_room")
    static = StaticMap.from_scenario(sc)
    can = next(o for o in sc.objects if o.id == "blue_can")
    shelf = next(f for f in sc.furniture if f.id == "shelf")
    level = shelf.surface_heights()[can.level]
    centre = (shelf.pos[0], shelf.pos[1], level + CATEGORIES["can"].height() / 2)

    def believed(position):
        seen = ObjectBelief(id="blue_can", category="can", colour="blue", position=position, confidence=0.9, last_seen=0.0,
                            visible=True)
        return SimpleNamespace(static=static, belief=Belief(time=0.0, robot=RobotBelief(pose=(0.0, 0.0, 0.0)),
                                                             objects={"blue_can": seen}))

    board = min(h for h in shelf.surface_heights() if h > level + 0.01)
    headroom = believed_headroom(believed(centre), "blue_can", "can")()
    assert headroom == pytest.approx(board - HEADROOM_M - (centre[2] + CATEGORIES["can"].height() / 2)) and headroom < LIFT_M
    on_top = (shelf.pos[0], shelf.pos[1], max(shelf.surface_heights()) + CATEGORIES["can"].height() / 2)
    assert believed_headroom(believed(on_top), "blue_can", "can")() == LIFT_M  # nothing above the top board
    assert believed_headroom(SimpleNamespace(static=static, belief=None), "blue_can", "can")() == LIFT_M  # not believed
