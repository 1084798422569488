"""The reset reflex between attempts (policy.posture): from where a failed skill left the robot
back to the posture learned skills start from, reading only the belief and its own targets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perception.belief import Belief, ObjectBelief, PersonBelief, RobotBelief
from policy.expert.motion import CARRY_POS, DRIVE_POS, HEAD_CAMERA
from policy.posture import PostureReset, held_sides, look_point
from scenarios.loading import load_scenario
from tests.behaviors_fakes import Odometry, run_reflex

# The world's EE_POSE layout (scenarios/controllers.py).
SLICES = {"base": slice(0, 3), "left.pos": slice(3, 6), "left.rot": slice(6, 9), "left.gripper": slice(9, 10),
          "right.pos": slice(10, 13), "right.rot": slice(13, 16), "right.gripper": slice(16, 17), "head": slice(17, 19)}
DT = 0.05


def after_failed_pick() -> np.ndarray:
    """Left hand out over the table, closed on nothing; right hand carrying the box; head turned away."""
    a = np.zeros(19)
    a[3:6], a[9] = (0.52, 0.19, 0.88), 1.0
    a[10:13], a[13:16], a[16] = (0.40, -0.30, 1.02), (0.0, 0.3, 0.0), 1.0
    a[17:19] = (1.2, -0.1)
    return a


def belief(holding_box: bool = True) -> Belief:
    objects = {
        "red_cup": ObjectBelief(id="red_cup", category="cup", colour="red", position=(0.8, 0.3, 0.8), confidence=0.9,
                                last_seen=1.0, visible=False),
        "yellow_box": ObjectBelief(id="yellow_box", category="box", colour="yellow", position=(0.4, -0.3, 1.0), confidence=0.9,
                                   last_seen=1.0, visible=True, at_hand="right" if holding_box else None),
    }
    return Belief(time=1.0, robot=RobotBelief(pose=(0.0, 0.0, 0.0)), objects=objects,
                  people={"person_1": PersonBelief(id="person_1", position=(2.0, -1.0), hand=(1.6, -0.8, 1.0), confidence=0.9)},
                  predicates={"holding(yellow_box)": 0.95 if holding_box else 0.05})


def reflex(start: np.ndarray, b: Belief, skill: str = "pick", args: tuple[str, ...] = ("red_cup",), max_s: float = 5.0) -> PostureReset:
    r = PostureReset(SLICES, 19, DT, lambda: start.astype(np.float32), lambda: b, load_scenario("kitchen"), skill, args, max_s=max_s)
    r.reset()
    return r


def run(r: PostureReset, limit: int = 400) -> list[np.ndarray]:
    out = []
    while not r.done and len(out) < limit:
        out.append(r.select_action({}))
    return out


def test_an_empty_hand_opens_then_rises_clear_then_goes_home_and_a_held_object_goes_to_carry() -> None:
    start = after_failed_pick()
    actions = np.array(run(reflex(start, belief())))
    assert 0 < len(actions) * DT < 5.0  # finished, not cut off
    assert np.all(actions[:, 0:3] == 0)  # the base stands still
    left, grip = actions[:, 3:6], actions[:, 9]
    opened = int(np.argmax(grip <= 1e-6))
    assert opened > 0 and np.allclose(left[:opened], start[3:6])  # fingers open before the hand moves
    moved = left[opened:]
    rising = moved[:, 2] < 0.88 + 0.06 - 1e-6
    assert np.allclose(moved[rising][:, :2], start[3:5]) and np.all(np.diff(moved[rising][:, 2]) >= 0)  # straight up first
    assert np.allclose(left[-1], DRIVE_POS["left"], atol=1e-6) and grip[-1] == 0.0
    assert np.allclose(actions[-1, 10:13], CARRY_POS["right"], atol=1e-6)
    assert np.all(actions[:, 16] == 1.0)  # the box stays gripped
    steps = np.linalg.norm(np.diff(left, axis=0), axis=1)
    assert steps.max() <= 0.35 * DT + 1e-6  # bounded speed (float32 actions): nothing is swept off the table


def test_the_head_turns_to_what_the_next_subtask_acts_on() -> None:
    actions = run(reflex(after_failed_pick(), belief()))
    pan, tilt = actions[-1][17:19]
    dx, dy = 0.8 - HEAD_CAMERA[0], 0.3 - HEAD_CAMERA[1]
    assert pan == pytest.approx(math.atan2(dy, dx), abs=0.03)
    assert tilt == pytest.approx(math.atan2(HEAD_CAMERA[2] - 0.8, math.hypot(dx, dy)), abs=0.03)
    b = belief()
    assert np.allclose(look_point(load_scenario("kitchen"), b, "handover", ("yellow_box", "person_1")), (1.6, -0.8, 1.0))
    assert np.allclose(look_point(load_scenario("kitchen"), b, "place", ("yellow_box", "table"))[:2], (1.0, 0.0))
    counter = load_scenario("kitchen").furniture_by_id()["counter"]  # no size in the file: its kind's
    assert counter.size is None
    assert np.allclose(look_point(load_scenario("kitchen"), b, "place", ("yellow_box", "counter")), (*counter.pos, counter.dims[2]))


def test_holding_is_read_from_the_belief() -> None:
    assert held_sides(belief(holding_box=True)) == {"right"}
    assert held_sides(belief(holding_box=False)) == set()
    actions = np.array(run(reflex(after_failed_pick(), belief(holding_box=False))))
    assert actions[-1, 16] == 0.0 and np.allclose(actions[-1, 10:13], DRIVE_POS["right"], atol=1e-6)


def test_it_gives_up_after_its_time_limit() -> None:
    start = after_failed_pick()
    start[3:6] = (0.2, 0.9, 0.3)  # far from home: more than 0.5 s of motion
    r = reflex(start, belief(), max_s=0.5)
    assert len(run(r)) == 10 and r.done


def test_a_joint_space_layout_is_refused_by_name() -> None:
    joint = {"base": slice(0, 3), "left.joints": slice(3, 10), "left.gripper": slice(10, 11), "head": slice(19, 21)}
    with pytest.raises(ValueError, match="left.pos"):
        PostureReset(joint, 21, DT, lambda: np.zeros(21), lambda: None, load_scenario("kitchen"), "pick", ("red_cup",))


def test_the_session_gives_the_tree_a_reset_for_an_end_effector_world_only() -> None:
    """Wired to the simulator: its actions fit the world's action space and move the arms home;
    a joint-space world gets none (the tree then runs every attempt from where it is)."""
    from types import SimpleNamespace

    from agent.session import posture_factory
    from planner.taskgraph import Subtask
    from scenarios.controllers import ArmMode
    from scenarios.world import SimWorld, WorldConfig

    sub = Subtask(id="t2", skill="pick", args=("red_cup",), instruction="pick up the red cup", success=("holding(red_cup)",),
                  timeout_s=30.0, retries=1)
    world = SimWorld("kitchen", WorldConfig(cameras=(), head_depth=False))
    try:
        world.reset(seed=0)
        make = posture_factory(world, SimpleNamespace(belief=None))
        r = make(sub)
        r.reset()
        for _ in range(200):
            a = r.select_action({})
            assert world.action_space.contains(a)
            world.step(a)
            if r.done:
                break
        assert r.done
        pos, _ = world.controller.ee_pose("left")
        assert np.linalg.norm(pos - DRIVE_POS["left"]) < 0.03
    finally:
        world.close()
    joint = SimWorld("kitchen", WorldConfig(cameras=(), head_depth=False, arm_mode=ArmMode.JOINT))
    try:
        assert posture_factory(joint, SimpleNamespace(belief=None)) is None
    finally:
        joint.close()


def drive(skill: str, drifted: tuple[float, float, float], start=(0.0, 0.0, 0.0)) -> tuple[PostureReset, Odometry, np.ndarray]:
    odo = Odometry(drifted, belief(), DT)
    r = PostureReset(SLICES, 19, DT, lambda: after_failed_pick().astype(np.float32), odo, load_scenario("kitchen"), skill,
                     ("red_cup",) if skill == "pick" else ("yellow_box", "person_1"), max_s=8.0)
    r.start_pose = start
    r.reset()
    return r, odo, run_reflex(r, odo)


def test_a_manipulation_drives_back_to_where_its_first_attempt_began_once_the_arms_are_home() -> None:
    r, odo, actions = drive("pick", (0.12, -0.15, 0.2))
    assert r.done and len(actions) * DT < 8.0
    assert np.hypot(*odo.pose[:2]) < 0.015 and abs(odo.pose[2]) < 0.03
    moving = np.flatnonzero(np.abs(actions[:, 0:3]).max(axis=1) > 0)
    assert np.allclose(actions[moving[0], 3:6], DRIVE_POS["left"], atol=1e-6)  # arms home when the base first moves
    assert not np.allclose(actions[moving[0] - 1, 3:6], DRIVE_POS["left"], atol=1e-6)  # ... and not before
    assert np.hypot(actions[:, 0], actions[:, 1]).max() <= 0.15 + 1e-6 and np.abs(actions[:, 2]).max() <= 0.5 + 1e-6


def test_a_drive_or_a_far_start_is_not_returned_to() -> None:
    _, odo, actions = drive("navigate_to", (0.12, -0.15, 0.2))
    assert np.all(actions[:, 0:3] == 0) and np.allclose(odo.pose, (0.12, -0.15, 0.2))
    _, odo, actions = drive("handover", (0.5, 0.3, 0.0))  # 0.58 m away: a replan's drive is the way back
    assert np.all(actions[:, 0:3] == 0)
