"""A drive commanded against furniture: the attempt ends, and the reflex backs the base out."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from perception.belief import Belief, ObjectBelief, RobotBelief
from policy.blocked_base import BLOCKED_S, BlockedBase, with_blocked_base
from policy.expert.navigation import grid_for
from policy.navigation_goal import believed_state
from policy.expert.clearance import segment_clear
from policy.expert.motion import CARRY_POS, DRIVE_POS, DRIVE_ROT
from policy.posture import (DOCK_MAX_M, ESCAPE_SPEED, PostureReset, backtrack_route, dock_route, escape_route,
                            route_heading)
from scenarios.loading import load_scenario
from tests.behaviors_fakes import Odometry, run_reflex

DT = 0.05
BASE = slice(0, 3)
SLICES = {"base": slice(0, 3), "left.pos": slice(3, 6), "left.rot": slice(6, 9), "left.gripper": slice(9, 10),
          "right.pos": slice(10, 13), "right.rot": slice(13, 16), "right.gripper": slice(16, 17), "head": slice(17, 19)}
WEDGED = (0.21, -0.59, 1.15)  # tidy_table seed 0 (session 19): base between the bin and the table's corner


class Pushes:
    """A drive that commands the same base velocity every step."""

    def __init__(self, base=(0.06, 0.0, 0.0)) -> None:
        self.base = np.asarray(base, np.float32)
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def select_action(self, obs) -> np.ndarray:
        a = np.zeros(19, np.float32)
        a[BASE] = self.base
        return a

    def predict_action_chunk(self, obs) -> np.ndarray:
        return np.stack([self.select_action(obs)] * 10)


class Clock:
    """Beliefs over simulated time with the base at `pose(t)`."""

    def __init__(self, pose=lambda t: (0.0, 0.0, 0.0)) -> None:
        self.t = 0.0
        self.pose = pose

    def __call__(self) -> Belief:
        return Belief(time=self.t, robot=RobotBelief(pose=tuple(self.pose(self.t))))


def run(guard: BlockedBase, clock: Clock, seconds: float) -> float | None:
    """Step for `seconds`; the time the guard first reported a failure, or None."""
    for _ in range(int(round(seconds / DT))):
        guard.select_action({})
        if guard.failure:
            return clock.t
        clock.t += DT
    return None


def test_a_base_commanded_but_still_fails_after_blocked_s_and_says_so() -> None:
    clock = Clock()
    guard = BlockedBase(Pushes(), BASE, clock)
    failed_at = run(guard, clock, 5.0)
    assert failed_at == pytest.approx(BLOCKED_S, abs=DT + 1e-9)
    assert guard.failure.startswith("blocked:") and "0.06 m/s" in guard.failure
    guard.reset()
    assert guard.failure is None and guard.policy.resets == 1


def test_a_moving_base_or_one_not_commanded_is_not_blocked() -> None:
    clock = Clock(lambda t: (0.05 * t, 0.0, 0.0))  # driving at the commanded speed
    assert run(BlockedBase(Pushes(), BASE, clock), clock, 5.0) is None
    clock = Clock()  # standing still while the arms tuck: nothing commanded
    assert run(BlockedBase(Pushes(base=(0.0, 0.01, 0.05)), BASE, clock), clock, 5.0) is None


def test_a_turn_commanded_in_place_without_turning_is_blocked() -> None:
    clock = Clock()
    assert run(BlockedBase(Pushes(base=(0.0, 0.0, 0.4)), BASE, clock), clock, 5.0) is not None
    clock = Clock(lambda t: (0.0, 0.0, 0.4 * t))
    assert run(BlockedBase(Pushes(base=(0.0, 0.0, 0.4)), BASE, clock), clock, 5.0) is None


def test_chunks_are_watched_by_their_first_action_and_passed_through() -> None:
    clock = Clock()
    guard = BlockedBase(Pushes(), BASE, clock)
    for _ in range(int(BLOCKED_S / DT) + 2):
        chunk = guard.predict_action_chunk({})
        clock.t += DT
    assert chunk.shape == (10, 19) and guard.failure is not None


def test_only_drives_are_watched_and_a_world_without_a_base_gets_nothing() -> None:
    world = SimpleNamespace(controller=SimpleNamespace(layout=SimpleNamespace(slices=SLICES)))
    perception = SimpleNamespace(belief=None)
    make = with_blocked_base(lambda subtask: Pushes(), world, perception)
    assert isinstance(make(SimpleNamespace(skill="navigate_to")), BlockedBase)
    assert isinstance(make(SimpleNamespace(skill="pick")), Pushes)
    factory = lambda subtask: Pushes()  # noqa: E731
    assert with_blocked_base(factory, SimpleNamespace(), perception) is factory
    assert with_blocked_base(factory, world, None) is factory


def tidy_belief() -> Belief:
    box = ObjectBelief(id="green_box", category="box", colour="green", position=(0.8, 0.0, 0.8), confidence=0.9,
                       last_seen=1.0, visible=True)
    return Belief(time=1.0, robot=RobotBelief(pose=WEDGED), objects={"green_box": box},
                  predicates={"on(green_box, table)": 0.95})


def reflex_from(pose, skill: str = "navigate_to") -> tuple[PostureReset, Odometry, np.ndarray]:
    """The drive reflex in the tidy room from `pose`, until done."""
    scenario = load_scenario("tidy_table")
    odo = Odometry(pose, tidy_belief(), DT)
    r = PostureReset(SLICES, 19, DT, lambda: np.zeros(19, np.float32), odo, scenario, skill, ("green_box",), max_s=8.0)
    r.reset()
    return r, odo, run_reflex(r, odo)


def test_a_drive_retry_backs_out_of_a_wedge_heading_held_then_faces_its_route() -> None:
    scenario = load_scenario("tidy_table")
    state = believed_state(scenario, tidy_belief())
    grid = grid_for(scenario, state)
    assert not grid.is_free(np.array(WEDGED[:2]))
    route = escape_route(scenario, tidy_belief())
    assert route and grid.is_free(route[-1])
    r, odo, actions = reflex_from(WEDGED)
    assert r.done and len(actions) * DT < 8.0
    assert grid.is_free(odo.pose[:2]), f"still where the robot does not fit: {np.round(odo.pose, 3)}"
    assert np.linalg.norm(odo.pose[:2] - route[-1]) < 0.02  # out, and turned on the spot there
    out = tidy_belief().model_copy(update={"robot": RobotBelief(pose=(*route[-1], WEDGED[2]))})
    facing = route_heading(scenario, out, "green_box")
    assert facing is not None and r.facing == pytest.approx(facing, abs=0.05)
    assert abs((odo.pose[2] - facing + math.pi) % (2 * math.pi) - math.pi) < 0.03
    turning = np.flatnonzero(np.abs(actions[:, 2]) > 1e-9)
    sliding = np.flatnonzero(np.hypot(actions[:, 0], actions[:, 1]) > 1e-3)
    assert sliding.max() < turning.min() + 2, "the way out holds the heading; the turn comes after it"
    assert r.escaped_m == pytest.approx(sum(np.linalg.norm(b - a) for a, b in zip([np.array(WEDGED[:2])] + route, route)))
    assert np.hypot(actions[:, 0], actions[:, 1]).max() <= ESCAPE_SPEED + 1e-6


def test_on_open_floor_or_for_a_manipulation_the_drive_reflex_leaves_the_base_where_it_is() -> None:
    r, odo, actions = reflex_from((-0.5, 0.8, 0.0))  # open floor: nothing to back out of, only the turn to the route
    assert r.escaped_m == 0.0 and np.allclose(odo.pose[:2], (-0.5, 0.8), atol=0.015)
    assert r.facing is not None and abs((odo.pose[2] - r.facing + math.pi) % (2 * math.pi) - math.pi) < 0.03
    r, odo, actions = reflex_from((0.8, 1.0, -1.57))  # open floor within FACE_MIN_M of the box's approach pose: no turn either
    assert r.facing is None and np.all(actions[:, 0:3] == 0)
    r, odo, actions = reflex_from(WEDGED, skill="pick")  # a pick's base returns to its start pose, not out
    assert np.all(actions[:, 0:3] == 0)


def test_a_drive_retry_backs_out_along_the_way_its_attempt_came() -> None:
    """The way the failed drive came is free by construction: the reflex retraces its believed
    poses (heading included) to the last one on open floor, rather than sliding out sideways."""
    scenario = load_scenario("tidy_table")
    grid = grid_for(scenario, believed_state(scenario, tidy_belief()))
    # from open floor west of the corridor, forward and turning left into the wedge
    trail = [(-0.1 + 0.36 * t, -0.94 + 0.28 * t, 0.45 + 0.7 * t) for t in np.linspace(0, 1, 120)] + [WEDGED] * 40
    way = backtrack_route(scenario, tidy_belief(), trail)
    assert way and grid.is_free(way[-1][:2]) and not any(grid.is_free(p[:2]) for p in way[:-1])
    on_trail = [min(np.linalg.norm(np.asarray(t) - p) for t in trail) for p in way]
    assert max(on_trail) < 1e-9, "every waypoint is a pose the drive stood at"
    odo = Odometry(WEDGED, tidy_belief(), DT)
    r = PostureReset(SLICES, 19, DT, lambda: np.zeros(19, np.float32), odo, scenario, "navigate_to", ("green_box",), max_s=8.0)
    r.trail = trail
    r.reset()
    run_reflex(r, odo)
    assert r.done and grid.is_free(odo.pose[:2]) and np.linalg.norm(odo.pose[:2] - way[-1][:2]) < 0.02
    assert r.escaped_m == pytest.approx(sum(np.linalg.norm(b[:2] - a[:2]) for a, b in zip([np.array(WEDGED)] + way, way)))
    assert backtrack_route(scenario, tidy_belief(), trail[-60:]) is None, "a trail that never left the wedge is no way out"
    out = tidy_belief().model_copy(update={"robot": RobotBelief(pose=(-0.5, 0.8, 0.0))})
    assert backtrack_route(scenario, out, trail) == []


def ball_belief(pose) -> Belief:
    ball = ObjectBelief(id="red_ball", category="ball", colour="red", position=(0.615, -0.213, 0.785), confidence=0.9,
                        last_seen=1.0, visible=True)
    return Belief(time=1.0, robot=RobotBelief(pose=pose), objects={"red_ball": ball}, predicates={"on(red_ball, table)": 0.95})


def pick_reflex(pose, dock: bool, start_pose=None) -> tuple[PostureReset, Odometry, np.ndarray]:
    odo = Odometry(pose, ball_belief(pose), DT)
    r = PostureReset(SLICES, 19, DT, lambda: np.zeros(19, np.float32), odo, load_scenario("tidy_table"), "pick", ("red_ball",),
                     max_s=8.0, dock=dock)
    r.start_pose = start_pose
    r.reset()
    return r, odo, run_reflex(r, odo)


SHORT = (-0.10, -0.03, 0.41)  # tidy seed 2 (session 20): where the learned drive to the red ball was ended, 25 cm short


def test_a_learned_pick_first_docks_onto_the_approach_pose_its_drive_was_given() -> None:
    goal = (dock_route(load_scenario("tidy_table"), ball_belief(SHORT), "pick", ("red_ball",)) or [None])[-1]
    assert goal is not None and 0.2 < math.hypot(goal[0] - SHORT[0], goal[1] - SHORT[1]) < DOCK_MAX_M
    r, odo, actions = pick_reflex(SHORT, dock=True)
    assert r.done and r.docked == goal and r.dock_m == pytest.approx(math.hypot(goal[0] - SHORT[0], goal[1] - SHORT[1]))
    assert np.linalg.norm(odo.pose[:2] - goal[:2]) < 0.015 and abs(odo.pose[2] - goal[2]) < 0.03
    assert np.hypot(actions[:, 0], actions[:, 1]).max() <= 0.15 + 1e-6


def test_no_docking_for_the_expert_a_retry_or_a_pose_too_far() -> None:
    r, odo, actions = pick_reflex(SHORT, dock=False)
    assert r.docked is None and np.all(actions[:, 0:3] == 0)
    r, odo, actions = pick_reflex(SHORT, dock=True, start_pose=SHORT)  # a retry goes back where its first attempt began
    assert r.docked is None and np.all(actions[:, 0:3] == 0)
    far = (-0.6, 0.5, 0.0)
    assert dock_route(load_scenario("tidy_table"), ball_belief(far), "pick", ("red_ball",)) is None
    r, odo, actions = pick_reflex(far, dock=True)
    assert np.all(actions[:, 0:3] == 0)


OFF_BIN = (-0.12, -1.19, -0.68)  # tidy seed 1 (session 22): where the learned drive to the bin ended, box in hand


def carrying() -> np.ndarray:
    """The action that holds the arms where a carrying drive leaves them: the left in the driving
    posture, the right (holding) in the carry posture, closed."""
    a = np.zeros(19, np.float32)
    a[SLICES["left.pos"]], a[SLICES["left.rot"]] = DRIVE_POS["left"], DRIVE_ROT
    a[SLICES["right.pos"]], a[SLICES["right.gripper"]] = CARRY_POS["right"], 1.0
    return a


def held_belief(pose, obj: str = "red_ball") -> Belief:
    held = ball_belief(pose).model_copy(update={"predicates": {f"holding({obj})": 0.95}})
    held.objects["red_ball"] = held.objects["red_ball"].model_copy(update={"at_hand": "right"})
    return held


def test_a_learned_place_in_docks_with_its_object_in_hand_turning_first_where_a_slide_would_sweep_the_bin() -> None:
    """Before a place_in the ball is in hand and the learned drive stopped 23 cm off the bin's
    approach pose, facing 0.7 rad away: slid at that heading the body would sweep the bin, so
    the reflex turns on the spot first, then slides."""
    scenario = load_scenario("tidy_table")
    way = dock_route(scenario, held_belief(OFF_BIN), "place_in", ("red_ball", "bin"))
    assert way is not None and len(way) == 2 and way[0][:2] == pytest.approx(OFF_BIN[:2]) and way[0][2] == way[1][2]
    state = believed_state(scenario, held_belief(OFF_BIN))
    assert not segment_clear(scenario, state, np.array(OFF_BIN[:2]), np.array(way[1][:2]), OFF_BIN[2], margin=0.0)
    odo = Odometry(OFF_BIN, held_belief(OFF_BIN), DT)
    r = PostureReset(SLICES, 19, DT, carrying, odo, scenario, "place_in", ("red_ball", "bin"), max_s=8.0, dock=True)
    r.reset()
    actions = run_reflex(r, odo)
    assert r.done and r.held == {"right"} and r.docked == way[-1]
    assert np.linalg.norm(odo.pose[:2] - way[-1][:2]) < 0.015 and abs(odo.pose[2] - way[-1][2]) < 0.03
    turning = np.nonzero(np.abs(actions[:, 2]) > 1e-6)[0]
    sliding = np.nonzero(np.hypot(actions[:, 0], actions[:, 1]) > 1e-6)[0]
    assert len(turning) and len(sliding) and turning[0] < sliding[0], "turned on the spot before it slid"
    assert np.all(np.hypot(actions[turning[0]:sliding[0], 0], actions[turning[0]:sliding[0], 1]) < 1e-6)
    assert np.all(actions[:, SLICES["right.gripper"]] == 1.0), "the holding hand stays closed"


def test_no_docking_with_something_in_hand_for_a_handover() -> None:
    """A handover's site is a person, who moves: with the object in hand the base stays."""
    odo = Odometry(SHORT, held_belief(SHORT), DT)
    r = PostureReset(SLICES, 19, DT, carrying, odo, load_scenario("tidy_table"), "handover",
                     ("red_ball", "person_1"), max_s=8.0, dock=True)
    r.reset()
    actions = run_reflex(r, odo)
    assert r.held == {"right"} and r.docked is None and np.all(actions[:, 0:3] == 0)