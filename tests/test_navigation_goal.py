"""navigate_to's goal: hindsight labels in training, the same quantities planned from the belief at run time."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.belief import Belief, ObjectBelief, PersonBelief, RobotBelief
from policy.navigation_goal import (GOAL_DIM, GOAL_KEY, LOOKAHEAD_M, GoalConditioned, NavigationGoal, Route, believed_state,
                                    encode, hindsight_goals, plan_route)
from policy.expert.navigation import OccupancyGrid
from policy.expert.targets import ApproachPose
from policy.vla import ObservationError, VLAPolicy, VLAProcessor
from policy.vla.training import TrainConfig, train
from scenarios.loading import load_scenario
from test_vla_model import TINY, fake_embedder, one_observation

torch.set_num_threads(1)
GOAL_TINY = TINY.model_copy(update={"env_state_dim": GOAL_DIM})


def test_encode_is_in_the_robot_frame():
    # facing +y: a point 1 m along world +y is 1 m straight ahead; world +x is to the robot's right
    g = encode((1.0, 2.0, math.pi / 2), np.array([1.0, 3.0]), (2.0, 2.0, math.pi))
    assert g[0] == 1.0
    np.testing.assert_allclose(g[1:3], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(g[3:5], [0.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(g[5:7], [0.0, 1.0], atol=1e-6)  # the goal heading is a quarter turn left


def test_hindsight_goal_is_where_the_drive_ended_and_the_waypoint_lookahead_ahead():
    xs = np.linspace(0.0, 2.0, 41)  # a straight 2 m drive along x, 5 cm a frame, turning to face +y at the end
    yaw = np.where(xs > 1.9, math.pi / 2, 0.0)
    goals = hindsight_goals(np.stack([xs, np.zeros_like(xs), yaw], 1))
    assert goals.shape == (41, GOAL_DIM) and np.all(goals[:, 0] == 1.0)
    np.testing.assert_allclose(goals[0, 3:5], [2.0, 0.0], atol=1e-6)
    first_far = xs[np.argmax(xs >= LOOKAHEAD_M - 1e-9)]
    np.testing.assert_allclose(goals[0, 1:3], [first_far, 0.0], atol=1e-6)
    np.testing.assert_allclose(goals[-10, 1:3], goals[-10, 3:5], atol=1e-6)  # near the end the waypoint is the goal
    np.testing.assert_allclose(goals[-1], [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0], atol=1e-6)
    assert hindsight_goals(np.zeros((0, 3))).shape == (0, GOAL_DIM)


def test_route_waypoint_follows_the_route_not_the_straight_line():
    route = Route(ApproachPose(1.0, 1.0, 0.0), [np.array([0.0, 0.0]), np.array([1.0, 0.0])])  # an L: along x, then up y
    w = route.waypoint(np.array([0.0, 0.0]), lookahead=0.6)
    assert abs(w[1]) < 1e-9 and 0.6 - 1e-9 <= w[0] <= 0.65
    w = route.waypoint(np.array([0.9, 0.0]), lookahead=0.6)
    assert abs(w[0] - 1.0) < 1e-9 and w[1] > 0.4  # round the corner
    np.testing.assert_allclose(route.waypoint(np.array([1.0, 0.95])), [1.0, 1.0])  # the end: the pose itself


def _belief(pose=(-1.5, 0.0, 0.0)) -> Belief:
    sc = load_scenario("kitchen")
    cup = ObjectBelief(id="red_cup", category="cup", colour="red", position=(0.8, 0.12, 0.8), confidence=0.9, last_seen=0.0, visible=True)
    ball = ObjectBelief(id="orange_ball", category="ball", colour="orange", position=(0.9, 1.95, 0.95), confidence=0.9,
                        last_seen=0.0, visible=False)
    person = sc.person_by_id()["person_1"]
    return Belief(time=1.0, robot=RobotBelief(pose=pose, gripper_closed={"left": True, "right": False}),
                  objects={"red_cup": cup, "orange_ball": ball},
                  people={"person_1": PersonBelief(id="person_1", position=tuple(person.pos), hand=None, confidence=0.8)},
                  predicates={"on(red_cup, table)": 0.9, "holding(orange_ball)": 0.8})


def test_believed_state_takes_furniture_from_the_map_and_the_rest_from_the_belief():
    sc = load_scenario("kitchen")
    state = believed_state(sc, _belief())
    assert set(state.furniture) == {"table", "counter"} and state.furniture["table"].size == tuple(sc.furniture_by_id()["table"].dims)
    assert set(state.objects) == {"red_cup", "orange_ball"}  # yellow_box was never seen: absent
    assert state.objects["red_cup"].rests_on == "table"
    assert state.objects["orange_ball"].held_by == "left" and state.robot.holding == {"left": "orange_ball", "right": None}
    assert state.people["person_1"].hand == tuple(round(v, 2) for v in sc.person_by_id()["person_1"].hand_position())


def test_route_to_a_cup_on_a_table_ends_at_a_free_approach_pose_facing_it():
    sc = load_scenario("kitchen")
    state = believed_state(sc, _belief())
    route = plan_route(sc, state, "red_cup")
    assert route is not None
    np.testing.assert_allclose(route.points[0], [-1.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(route.points[-1], route.pose.xy)
    grid = OccupancyGrid(sc, state)
    assert all(grid.is_free(p) for p in route.points[:-8])  # the last stretch may slide under the table top
    to_cup = np.array([0.8, 0.12]) - route.pose.xy
    facing = np.array([math.cos(route.pose.yaw), math.sin(route.pose.yaw)])
    assert np.dot(to_cup, facing) > 0.2 and np.linalg.norm(to_cup) < 0.75
    assert plan_route(sc, state, "no_such_thing") is None


def test_goal_is_zero_until_the_target_is_believed_then_replanned_only_when_needed():
    sc = load_scenario("kitchen")
    goal = NavigationGoal(sc, "red_cup")
    assert not goal.observation(None).any()
    empty = _belief().model_copy(update={"objects": {}})
    assert not goal.observation(empty).any()
    g = goal.observation(_belief())
    assert g[0] == 1.0 and np.linalg.norm(g[3:5]) > 1.5
    first = goal.route
    goal.observation(_belief(pose=(-1.4, 0.0, 0.1)))
    assert goal.route is first  # on the route: no replanning
    moved = _belief().model_copy(update={"objects": {**_belief().objects, "red_cup": _belief().objects["red_cup"].model_copy(
        update={"position": (0.6, -0.2, 0.8)})}})
    goal.observation(moved)
    assert goal.route is not first


class _Recorder:
    done = True

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def reset(self) -> None:
        self.seen.clear()

    def select_action(self, obs):
        self.seen.append(obs)
        return np.zeros(3)

    def predict_action_chunk(self, obs):
        self.seen.append(obs)
        return np.zeros((2, 3))


def test_goal_conditioned_adds_the_goal_to_navigate_to_only():
    sc = load_scenario("kitchen")
    inner = _Recorder()
    nav = GoalConditioned(inner, sc, "navigate_to", ["red_cup"], _belief)
    nav.select_action({"task": "go to the red cup"})
    nav.predict_action_chunk({"task": "go to the red cup"})
    assert all(o[GOAL_KEY][0] == 1.0 for o in inner.seen)
    assert nav.arrived is False, "metres from the goal pose: not there, whatever the base does"
    assert nav.done is True  # the wrapped policy's own attributes show through
    pose = nav.goal.route.pose
    for offset, expected in ((0.02, True), (0.045, False), (0.1, False)):  # at the pose; a creep short of it is not there
        near = GoalConditioned(inner, sc, "navigate_to", ["red_cup"], lambda: _belief(pose=(pose.x + offset, pose.y, pose.yaw + 0.05)))
        near.select_action({"task": "go to the red cup"})
        assert near.arrived is expected, offset
    pick = GoalConditioned(inner, sc, "pick", ["red_cup"], _belief)
    pick.select_action({"task": "pick up the red cup"})
    assert not inner.seen[-1][GOAL_KEY].any() and pick.arrived is None


def test_a_goal_reading_policy_checks_the_goal_and_treats_a_missing_one_as_none():
    rng = np.random.default_rng(0)
    policy = VLAPolicy(GOAL_TINY, VLAProcessor(GOAL_TINY, text_embedder=fake_embedder))
    obs = one_observation(rng)
    without = policy.predict_action_chunk(obs)
    np.testing.assert_array_equal(without, policy.predict_action_chunk({**obs, GOAL_KEY: np.zeros(GOAL_DIM, np.float32)}))
    with pytest.raises(ObservationError, match=GOAL_KEY):
        policy.predict_action_chunk({**obs, GOAL_KEY: np.zeros(3, np.float32)})


def test_a_policy_given_the_goal_starts_out_acting_as_the_one_it_was_made_from(tmp_path: Path):
    """Fine-tuning adds the goal layers with zero output: same actions whatever the goal, until trained."""
    rng = np.random.default_rng(1)
    base = VLAPolicy(TINY, VLAProcessor(TINY, text_embedder=fake_embedder))
    grown = VLAPolicy(GOAL_TINY, VLAProcessor(GOAL_TINY, text_embedder=fake_embedder))
    missing, unexpected = grown.model.load_state_dict(base.model.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("env.") for k in missing)
    obs = one_observation(rng)
    goal = np.array([1.0, 0.5, 0.2, 2.0, -1.0, 0.0, 1.0], np.float32)
    np.testing.assert_allclose(grown.predict_action_chunk({**obs, GOAL_KEY: goal}), base.predict_action_chunk(obs), atol=1e-6)
    grown.save_pretrained(tmp_path / "p")
    again = VLAPolicy.from_pretrained(tmp_path / "p", text_embedder=fake_embedder)
    assert again.config.env_state_dim == GOAL_DIM
    np.testing.assert_array_equal(again.predict_action_chunk({**obs, GOAL_KEY: goal}), grown.predict_action_chunk({**obs, GOAL_KEY: goal}))


class _GoalData(torch.utils.data.Dataset):
    """Two 'drives' whose action is the goal's direction: only a policy that reads the goal can fit it."""

    def __init__(self) -> None:
        rng = np.random.default_rng(2)
        self.items = []
        for e in range(8):
            img = {k: torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(e)) for k in TINY.image_keys}
            for f in range(8):
                goal = np.zeros(GOAL_DIM, np.float32)
                goal[0], goal[3:5] = 1.0, rng.uniform(-1, 1, 2)
                action = np.zeros((TINY.chunk_size, TINY.action_dim), np.float32)
                action[:, :2] = goal[3:5]
                self.items.append({**img, "observation.state": torch.zeros(TINY.state_dim), GOAL_KEY: torch.from_numpy(goal),
                                   "action": torch.from_numpy(action), "action_is_pad": torch.zeros(TINY.chunk_size, dtype=torch.bool),
                                   "task": "go there", "episode_index": e})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def test_fine_tuning_from_a_policy_without_the_goal_learns_to_follow_it(tmp_path: Path):
    base = VLAPolicy(TINY, VLAProcessor(TINY, text_embedder=fake_embedder))
    data = _GoalData()
    cfg = TrainConfig(steps=150, batch_size=16, lr=3e-3, warmup_steps=10, ema_decay=0.9, val_fraction=0.0, log_every=50, save_every=150,
                      augment_shift=0, augment_brightness=0.0, device="cpu")
    out = train(data, tmp_path / "run", GOAL_TINY, cfg, VLAProcessor(GOAL_TINY, text_embedder=fake_embedder),
                init_weights=base.model.state_dict())
    tuned = VLAPolicy.from_pretrained(out, text_embedder=fake_embedder)
    errors = []
    for item in data.items[:16]:
        obs = {k: (v.permute(1, 2, 0).mul(255).to(torch.uint8).numpy() if k.startswith("observation.images") else v)
               for k, v in item.items() if k.startswith("observation")}
        obs["task"] = "go there"
        errors.append(np.abs(tuned.predict_action_chunk(obs)[0, :2] - item[GOAL_KEY].numpy()[3:5]).max())
    assert np.mean(errors) < 0.25, errors  # the goal's spread is ±1: without reading it the error would be ~0.5
    with pytest.raises(ValueError, match="do not fit"):
        train(data, tmp_path / "bad", GOAL_TINY, cfg, VLAProcessor(GOAL_TINY, text_embedder=fake_embedder),
              init_weights={"not.a.weight": torch.zeros(1)})


def test_the_agent_gives_a_goal_reading_checkpoint_its_goal_and_leaves_others_alone(tmp_path: Path):
    from types import SimpleNamespace

    from agent.session import policy_factory

    world = SimpleNamespace(scenario=load_scenario("kitchen"))
    perception = SimpleNamespace(belief=_belief())
    VLAPolicy(GOAL_TINY, VLAProcessor(GOAL_TINY, text_embedder=fake_embedder)).save_pretrained(tmp_path / "goal")
    VLAPolicy(TINY, VLAProcessor(TINY, text_embedder=fake_embedder)).save_pretrained(tmp_path / "plain")
    make = policy_factory("vla", world, checkpoint=tmp_path / "goal", perception=perception)
    drive = make(SimpleNamespace(skill="navigate_to", args=["red_cup"]))
    assert isinstance(drive, GoalConditioned) and drive.goal is not None and drive.goal.target == "red_cup"
    assert make(SimpleNamespace(skill="pick", args=["red_cup"])).goal is None
    plain = policy_factory("vla", world, checkpoint=tmp_path / "plain", perception=perception)
    assert isinstance(plain(SimpleNamespace(skill="navigate_to", args=["red_cup"])), VLAPolicy)
