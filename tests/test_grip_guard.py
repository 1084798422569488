"""The grip guard: a hand that holds what the subtask does not release stays closed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from perception.belief import Belief, ObjectBelief, PersonBelief, RobotBelief
from planner import plan
from policy.grip_guard import CLOSED, GripGuard, ReleaseSite, with_grip_guard
from scenarios.loading import load_scenario

SLICES = {"left": slice(9, 10), "right": slice(16, 17)}  # the end-effector layout's grippers


PALM = (2.0, 1.0, 1.0)  # where person_1's hand is believed to be (world)
STATE_NAMES = ("base.x", "base.y", "base.yaw", "left.ee.x", "left.ee.y", "right.ee.x", "right.ee.y")


def belief(holding: float = 0.9, at_hand: str | None = "right", palm: tuple[float, float, float] | None = PALM) -> Belief:
    cup = ObjectBelief(id="red_cup", category="cup", colour="red", position=(0.5, -0.2, 1.0), confidence=0.9,
                       last_seen=1.0, visible=True, at_hand=at_hand)
    person = PersonBelief(id="person_1", position=(2.3, 1.0), hand=palm, confidence=0.9)
    return Belief(time=1.0, robot=RobotBelief(pose=(0.0, 0.0, 0.0)), objects={"red_cup": cup},
                  people={"person_1": person}, predicates={"holding(red_cup)": holding})


def state(base=(1.5, 1.0, 0.0), right=(0.5, 0.0), left=(0.5, 0.5)) -> np.ndarray:
    """Odometry and the grasp sites (base frame): by default the right hand is over PALM."""
    return np.array([*base, *left, *right], np.float32)


class Opens:
    """A learned policy that opens both hands (as a learned drive did, dropping the cup)."""

    def __init__(self) -> None:
        self.resets = 0
        self.failure = None

    def reset(self) -> None:
        self.resets += 1

    def select_action(self, obs) -> np.ndarray:
        return np.full(19, 0.1, np.float32)

    def predict_action_chunk(self, obs) -> np.ndarray:
        return np.full((20, 19), 0.1, np.float32)


@pytest.fixture(scope="module")
def serve_subtasks():
    out = plan("serve a drink to the person", "kitchen")
    assert out.kind == "plan", out
    return {s.skill: s for s in out.graph.order()}


def test_only_release_skills_release_what_they_hold(serve_subtasks):
    assert serve_subtasks["handover"].releases == ("red_cup",)
    assert serve_subtasks["pick"].releases == ()
    assert serve_subtasks["navigate_to"].releases == ()


def test_a_drive_cannot_open_the_hand_that_holds_the_cup():
    guard = GripGuard(Opens(), SLICES, lambda: belief())
    a = guard.select_action({})
    assert a[16] == CLOSED, "the holding hand stays closed"
    assert a[9] == pytest.approx(0.1), "the empty hand is the policy's"
    assert np.all(a[:9] == pytest.approx(0.1)) and np.all(a[17:] == pytest.approx(0.1)), "nothing else is touched"
    chunk = guard.predict_action_chunk({})
    assert chunk.shape == (20, 19) and np.all(chunk[:, 16] == CLOSED) and np.all(chunk[:, 9] == pytest.approx(0.1))
    assert guard.closed_steps == 2


@pytest.mark.parametrize("b", [belief(holding=0.3), belief(at_hand=None), None], ids=["not-held", "not-at-a-hand", "no-belief"])
def test_nothing_believed_held_leaves_the_policy_alone(b):
    guard = GripGuard(Opens(), SLICES, lambda: b)
    assert np.all(guard.select_action({}) == pytest.approx(0.1))
    assert guard.closed_steps == 0


def test_a_handover_may_let_go_and_the_guard_speaks_for_the_policy(serve_subtasks):
    class Perception:
        belief = belief()

    inner = Opens()
    world = SimpleNamespace(controller=SimpleNamespace(layout=SimpleNamespace(
        slices={"left.gripper": SLICES["left"], "right.gripper": SLICES["right"]})))
    make = with_grip_guard(lambda subtask: inner, world, Perception())
    handover, drive = make(serve_subtasks["handover"]), make(serve_subtasks["navigate_to"])
    assert handover.select_action({})[16] == pytest.approx(0.1), "a release opens the hand"
    assert drive.select_action({})[16] == CLOSED
    drive.reset()
    assert inner.resets == 1 and drive.failure is None, "reset and attributes reach the wrapped policy"


def test_without_perception_or_grippers_nothing_is_wrapped():
    factory = lambda subtask: Opens()  # noqa: E731
    layout = lambda slices: SimpleNamespace(controller=SimpleNamespace(layout=SimpleNamespace(slices=slices)))  # noqa: E731
    assert with_grip_guard(factory, layout({"right.gripper": slice(16, 17)}), None) is factory
    assert with_grip_guard(factory, layout({"base": slice(0, 3)}), object()) is factory
    assert with_grip_guard(factory, SimpleNamespace(scenario=None), object()) is factory, "no action layout"


def test_the_session_guards_the_learned_policy_in_the_simulator():
    """Through the session: the VLA's drive, with the cup believed in the right hand, keeps it closed."""
    from agent.session import policy_factory, vla_available
    from scenarios.world import SimWorld

    if not vla_available():
        pytest.skip("no shipped checkpoint")

    class Perception:
        belief = belief()

    world = SimWorld("kitchen")
    try:
        out = plan("serve a drink to the person", "kitchen")
        drive = next(s for s in out.graph.order() if s.skill == "navigate_to")
        policy = policy_factory("vla", world, perception=Perception())(drive)
        obs, _ = world.reset(seed=0)
        policy.reset()
        action = policy.select_action({**obs, "task": drive.instruction})
        assert action[world.controller.layout.slices["right.gripper"]][0] == CLOSED
    finally:
        world.close()


@pytest.fixture(scope="module")
def kitchen():
    return load_scenario("kitchen")


def test_a_release_site_is_reached_only_with_the_hand_over_it(kitchen):
    site = ReleaseSite(kitchen, "handover", ["red_cup", "person_1"], STATE_NAMES)
    assert site.reached(belief(), state(), "right"), "the right hand is over the palm"
    assert not site.reached(belief(), state(), "left"), "the left hand is 0.5 m from it"
    assert not site.reached(belief(), state(right=(0.3, 0.0)), "right"), "0.2 m short"
    assert site.reached(belief(), state(base=(1.0, 0.5, np.pi / 2), right=(0.5, -1.0)), "right"), "turned 90°, odometry"
    assert site.point is not None and tuple(site.point) == PALM, "the point is the believed palm, fixed once known"


def test_a_release_site_needs_the_hands_in_the_state(kitchen):
    with pytest.raises(ValueError, match="left.ee.x"):
        ReleaseSite(kitchen, "handover", ["red_cup", "person_1"], ("base.x", "base.y", "base.yaw"))


def test_a_handover_opens_the_hand_that_holds_the_cup_only_over_the_palm(kitchen):
    """A learned handover that opens the holding hand far from the palm (it reached with the other
    one): the hand stays closed; over the palm it opens."""
    site = ReleaseSite(kitchen, "handover", ["red_cup", "person_1"], STATE_NAMES)
    guard = GripGuard(Opens(), SLICES, lambda: belief(), releases=("red_cup",), site=site)
    assert guard.select_action({"observation.state": state()})[16] == pytest.approx(0.1), "over the palm: let go"
    far = {"observation.state": state(right=(0.5, 0.6))}
    assert guard.select_action(far)[16] == CLOSED, "0.6 m from the palm: held"
    assert np.all(guard.predict_action_chunk(far)[:, 16] == CLOSED)
    assert guard.select_action(far)[9] == pytest.approx(0.1), "the empty hand is the policy's"


def test_an_unseen_palm_is_where_the_scenario_puts_it(kitchen):
    person = kitchen.person_by_id()["person_1"]
    site = ReleaseSite(kitchen, "handover", ["red_cup", "person_1"], STATE_NAMES)
    assert not site.reached(belief(palm=None), state(), "right")
    assert np.allclose(site.point, person.hand_position())
