"""A manipulation's target: kept with the expert's episodes, relabelled per frame, planned from the belief at run time."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agent.cli import app
from perception.belief import Belief, ObjectBelief, PersonBelief, RobotBelief
from policy.dataset import DemonstrationDataset
from policy.manipulation_target import TARGET_DIM, ManipulationTarget, believed_point, encode, hindsight_targets
from policy.navigation_goal import ENV_DIM, GOAL_DIM, GOAL_KEY, GoalConditioned
from policy.recording import CollectConfig, collect, read_episode, replay_targets
from policy.vla import VLAConfig, VLAPolicy, VLAProcessor
from policy.vla.training import widen_env_input
from scenarios.loading import load_scenario
from test_vla_model import TINY, fake_embedder, one_observation

torch.set_num_threads(1)
runner = CliRunner()


def test_encode_puts_the_point_in_the_robot_frame():
    t = encode((1.0, 2.0, math.pi / 2), (1.0, 3.0, 0.8))  # facing +y: 1 m along world +y is straight ahead
    np.testing.assert_allclose(t, [1.0, 1.0, 0.0, 0.8], atol=1e-6)
    bases = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.0, math.pi / 2]])
    t = hindsight_targets(bases, (1.0, 0.0, 0.7))
    np.testing.assert_allclose(t[:, 1:3], [[1.0, 0.0], [0.5, 0.0], [0.0, -0.5]], atol=1e-6)  # driving and turning move it
    assert np.all(t[:, 0] == 1.0) and np.all(t[:, 3] == np.float32(0.7))
    assert not hindsight_targets(bases, None).any()


def _belief(pose=(0.2, 0.1, 0.0), hand=(2.4, -0.8, 1.0)) -> Belief:
    cup = ObjectBelief(id="red_cup", category="cup", colour="red", position=(0.8, 0.12, 0.8), confidence=0.9, last_seen=0.0,
                       visible=True)
    return Belief(time=1.0, robot=RobotBelief(pose=pose, gripper_closed={"left": True, "right": False}),
                  objects={"red_cup": cup},
                  people={"person_1": PersonBelief(id="person_1", position=(2.6, -0.8), hand=hand, confidence=0.8)},
                  predicates={"holding(red_cup)": 0.9})


def test_believed_points_come_from_perception_and_the_map():
    kitchen = load_scenario("kitchen")
    np.testing.assert_allclose(believed_point(kitchen, _belief(), "pick", {"object": "red_cup"}), [0.8, 0.12, 0.8])
    np.testing.assert_allclose(believed_point(kitchen, _belief(), "handover", {"object": "red_cup", "person": "person_1"}),
                               [2.4, -0.8, 1.0])
    unseen_hand = believed_point(kitchen, _belief(hand=None), "handover", {"object": "red_cup", "person": "person_1"})
    np.testing.assert_allclose(unseen_hand, kitchen.person_by_id()["person_1"].hand_position())  # the map's person
    assert believed_point(kitchen, _belief(), "pick", {"object": "yellow_box"}) is None  # never seen
    assert believed_point(kitchen, _belief(), "navigate_to", {"target": "red_cup"}) is None
    # place: a free spot on the surface's top, chosen as the expert would from where it would stand
    table = kitchen.furniture_by_id()["table"]
    spot = believed_point(kitchen, _belief(pose=(table.pos[0] - 1.2, table.pos[1], 0.0)), "place",
                          {"object": "red_cup", "surface": "table"})
    assert spot is not None and abs(spot[2] - table.dims[2]) < 1e-6
    assert abs(spot[0] - table.pos[0]) <= table.dims[0] / 2 and abs(spot[1] - table.pos[1]) <= table.dims[1] / 2


def test_the_target_is_fixed_in_the_world_and_follows_the_robot():
    kitchen = load_scenario("kitchen")
    target = ManipulationTarget(kitchen, "pick", {"object": "red_cup"})
    assert not target.observation(None).any()
    np.testing.assert_allclose(target.observation(_belief(pose=(0.2, 0.12, 0.0))), [1.0, 0.6, 0.0, 0.8], atol=1e-6)
    moved = _belief(pose=(0.4, 0.12, 0.0))
    moved.objects["red_cup"] = moved.objects["red_cup"].model_copy(update={"position": (5.0, 5.0, 5.0)})
    np.testing.assert_allclose(target.observation(moved), [1.0, 0.4, 0.0, 0.8], atol=1e-6)  # kept where it was first believed


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[dict] = []

    def select_action(self, obs):
        self.seen.append(obs)
        return np.zeros(3)


def test_goal_conditioned_gives_a_wide_policy_the_target_after_the_goal():
    kitchen = load_scenario("kitchen")
    inner = _Recorder()
    GoalConditioned(inner, kitchen, "pick", ["red_cup"], _belief, env_dim=ENV_DIM).select_action({})
    env = inner.seen[-1][GOAL_KEY]
    assert env.shape == (ENV_DIM,) and not env[:GOAL_DIM].any() and env[GOAL_DIM] == 1.0
    GoalConditioned(inner, kitchen, "navigate_to", ["red_cup"], _belief, env_dim=ENV_DIM).select_action({})
    env = inner.seen[-1][GOAL_KEY]
    assert env[0] == 1.0 and not env[GOAL_DIM:].any()
    GoalConditioned(inner, kitchen, "pick", ["red_cup"], _belief).select_action({})  # a policy from before the target
    assert inner.seen[-1][GOAL_KEY].shape == (GOAL_DIM,) and not inner.seen[-1][GOAL_KEY].any()
    with pytest.raises(ValueError, match="environment-state values"):
        GoalConditioned(inner, kitchen, "pick", ["red_cup"], _belief, env_dim=5)


def test_a_policy_widened_for_the_target_acts_as_before_until_trained():
    goal_tiny = TINY.model_copy(update={"env_state_dim": GOAL_DIM})
    wide_tiny = TINY.model_copy(update={"env_state_dim": ENV_DIM, "target_hand_state": (0, 1, 2, 3, 4, 5)})
    base = VLAPolicy(goal_tiny, VLAProcessor(goal_tiny, text_embedder=fake_embedder))
    with torch.no_grad():
        base.model.env[2].weight.normal_()  # a trained goal layer, not the zero one a new policy starts with
    wide = VLAPolicy(wide_tiny, VLAProcessor(wide_tiny, text_embedder=fake_embedder))
    wide.model.load_state_dict(widen_env_input(base.model.state_dict(), wide_tiny.env_input_dim))
    obs = one_observation(np.random.default_rng(0))
    goal = np.array([1.0, 0.5, 0.2, 2.0, -1.0, 0.0, 1.0], np.float32)
    target = np.array([1.0, 0.4, 0.2, 0.9], np.float32)
    np.testing.assert_allclose(wide.predict_action_chunk({**obs, GOAL_KEY: np.concatenate([goal, target])}),
                               base.predict_action_chunk({**obs, GOAL_KEY: goal}), atol=1e-6)


def test_the_model_also_reads_the_targets_offset_from_each_hand():
    config = TINY.model_copy(update={"env_state_dim": ENV_DIM, "target_hand_state": (3, 4, 5, 0, 1, 2)})
    assert config.env_input_dim == ENV_DIM + 6
    processor = VLAProcessor(config, text_embedder=fake_embedder)
    env = torch.zeros(2, ENV_DIM)
    env[0, GOAL_DIM:] = torch.tensor([1.0, 0.5, 0.2, 1.0])  # a valid target; the second row has none
    raw = torch.arange(2 * TINY.state_dim, dtype=torch.float32).reshape(2, TINY.state_dim) / 100
    features = processor.environment_features(env, raw)
    np.testing.assert_allclose(features[0, ENV_DIM:ENV_DIM + 3], [0.5 - 0.03, 0.2 - 0.04, 1.0 - 0.05], atol=1e-6)
    np.testing.assert_allclose(features[0, ENV_DIM + 3:], [0.5, 0.2 - 0.01, 1.0 - 0.02], atol=1e-6)
    assert not features[1, ENV_DIM:].any() and torch.equal(features[:, :ENV_DIM], env)
    with pytest.raises(ValueError, match="target_hand_state"):
        VLAConfig.model_validate({**TINY.model_dump(), "env_state_dim": 0, "target_hand_state": (0, 1, 2, 3, 4, 5)})


@pytest.fixture(scope="module")
def picks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("targets") / "picks"
    collect(CollectConfig(scenarios=("kitchen",), skills=("pick",), episodes=2, seed=7, image_size=(32, 40),
                          dart_fraction=0.5, perturb_fraction=0.0), out)
    return out


def test_recorded_picks_keep_the_object_and_frames_see_it_in_their_base_frame(picks: Path):
    episodes = [json.loads(x) for x in (picks / "meta" / "episodes.jsonl").read_text().splitlines()]
    cups = load_scenario("kitchen").object_by_id()
    for ep in episodes:
        point = ep["target"]
        assert len(point) == 3 and abs(point[2] - cups[ep["skill_args"]["object"]].height / 2 - 0.75) < 0.1, point
    data = DemonstrationDataset(picks, chunk_size=4)
    item = data[0]
    assert item[GOAL_KEY].shape == (ENV_DIM,) and item[GOAL_KEY][GOAL_DIM] == 1.0
    state = read_episode(picks, 0)["observation.state"][0]
    names = data.info["features"]["observation.state"]["names"]
    base = [state[names.index(n)] for n in ("base.x", "base.y", "base.yaw")]
    np.testing.assert_allclose(item[GOAL_KEY][GOAL_DIM:].numpy(), encode(base, episodes[0]["target"]), atol=1e-5)
    data.env_state_dim = GOAL_DIM
    assert data[0][GOAL_KEY].shape == (GOAL_DIM,)
    with pytest.raises(ValueError, match="env_state_dim"):
        DemonstrationDataset(picks, env_state_dim=9)


def test_replay_restores_the_targets_of_an_older_dataset_and_refuses_a_drifted_one(picks: Path, tmp_path: Path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(picks, old)
    rows = [json.loads(x) for x in (old / "meta" / "episodes.jsonl").read_text().splitlines()]
    kept = [r.pop("target") for r in rows]
    (old / "meta" / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["train", "--dataset", str(old), "--out", str(tmp_path / "run"), "--manipulation-target"])
    assert result.exit_code == 2 and "collect-targets" in " ".join(result.output.split())
    result = runner.invoke(app, ["train", "--dataset", str(old), "--out", str(tmp_path / "run"), "--image-dropout", "0.5"])
    assert result.exit_code == 2 and "needs --manipulation-target" in " ".join(result.output.split())
    result = runner.invoke(app, ["collect-targets", "--dataset", str(old)])
    assert result.exit_code == 0, result.output
    assert "target added to 2 episodes" in " ".join(result.output.split())
    again = [json.loads(x)["target"] for x in (old / "meta" / "episodes.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(again, kept)
    # a recording the replay does not reproduce (the seed changed under it) keeps no target
    rows = [json.loads(x) for x in (old / "meta" / "episodes.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("target")
    rows[0]["seed"] += 1
    (old / "meta" / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = replay_targets(old)
    assert counts["added"] == 1 and counts["mismatched"] == 1
    assert "target" not in json.loads((old / "meta" / "episodes.jsonl").read_text().splitlines()[0])
    bad = runner.invoke(app, ["collect-targets", "--dataset", str(tmp_path / "none")])
    assert bad.exit_code == 2 and "no dataset" in bad.output


@pytest.mark.slow
def test_fine_tuning_a_goal_only_policy_adds_the_target(picks: Path, tmp_path: Path):
    common = ["--dataset", str(picks), "--steps", "2", "--batch-size", "8", "--image-size", "32x40", "--chunk-size", "5",
              "--threads", "1"]
    result = runner.invoke(app, ["train", *common, "--out", str(tmp_path / "goal"), "--no-manipulation-target"])
    assert result.exit_code == 0, result.output
    assert VLAPolicy.from_pretrained(tmp_path / "goal" / "pretrained").config.env_state_dim == GOAL_DIM
    result = runner.invoke(app, ["train", *common, "--out", str(tmp_path / "wide"), "--init-from", str(tmp_path / "goal" / "pretrained")])
    assert result.exit_code == 0, result.output
    assert "manipulation target and the target's offsets from the hands added" in " ".join(result.output.split())
    wide = VLAPolicy.from_pretrained(tmp_path / "wide" / "pretrained")
    assert wide.config.env_state_dim == ENV_DIM and wide.processor.config.env_state_dim == ENV_DIM
    assert len(wide.config.target_hand_state) == 6 and wide.model.env[0].in_features == ENV_DIM + 6
    narrow = runner.invoke(app, ["train", *common, "--out", str(tmp_path / "x"), "--init-from", str(tmp_path / "wide" / "pretrained"),
                                 "--no-manipulation-target"])
    assert narrow.exit_code == 2 and "cannot remove" in " ".join(narrow.output.split())


def test_image_dropout_blanks_only_samples_with_a_target():
    from test_vla_model import batch

    config = TINY.model_copy(update={"env_state_dim": ENV_DIM, "target_hand_state": (0, 1, 2, 3, 4, 5)})
    policy = VLAPolicy(config, VLAProcessor(config, text_embedder=fake_embedder))
    rng = np.random.default_rng(3)
    data = batch(4, rng, "pick up the red cup")
    data["action"] = torch.as_tensor(rng.normal(size=(4, config.chunk_size, config.action_dim)), dtype=torch.float32)
    env = torch.zeros(4, ENV_DIM)
    env[:2, GOAL_DIM:] = torch.tensor([1.0, 0.5, 0.1, 0.9])  # the first two samples have a target
    data[GOAL_KEY] = env
    other = {**data, **{k: torch.as_tensor(rng.integers(0, 255, data[k].shape, dtype=np.uint8)) for k in config.image_keys}}

    def loss(b: dict, keep: slice, p: float) -> float:
        part = {k: (v[keep] if isinstance(v, torch.Tensor) else v[keep]) for k, v in b.items()}
        return policy(part, image_dropout=p, generator=torch.Generator().manual_seed(0))[0].item()

    # with a target and (almost) every sample dropped, the cameras no longer matter ...
    assert loss(data, slice(0, 2), 0.95) == pytest.approx(loss(other, slice(0, 2), 0.95), abs=1e-6)
    assert loss(data, slice(0, 2), 0.0) != pytest.approx(loss(other, slice(0, 2), 0.0), abs=1e-6)
    # ... without one they always do
    assert loss(data, slice(2, 4), 0.95) != pytest.approx(loss(other, slice(2, 4), 0.95), abs=1e-6)
    with pytest.raises(ValueError, match="image_dropout"):
        VLAPolicy(TINY, VLAProcessor(TINY, text_embedder=fake_embedder))(batch(2, rng, "x") | {"action": data["action"][:2]},
                                                                          image_dropout=0.5)


def test_env_lr_scale_speeds_up_the_environment_input_layer_alone(tmp_path: Path):
    from test_navigation_goal import GOAL_TINY, _GoalData

    from policy.vla.training import TrainConfig, train

    base = VLAPolicy(GOAL_TINY, VLAProcessor(GOAL_TINY, text_embedder=fake_embedder))
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    moved = {}
    for scale in (1.0, 50.0):
        cfg = TrainConfig(steps=4, batch_size=8, lr=1e-4, warmup_steps=0, ema_decay=0.0, val_fraction=0.0, log_every=4,
                          save_every=4, augment_shift=0, augment_brightness=0.0, device="cpu", env_lr_scale=scale)
        out = train(_GoalData(), tmp_path / str(scale), GOAL_TINY, cfg, VLAProcessor(GOAL_TINY, text_embedder=fake_embedder),
                    init_weights=before)
        after = VLAPolicy.from_pretrained(out, text_embedder=fake_embedder).model.state_dict()
        moved[scale] = {k: float((after[k] - before[k]).abs().max()) for k in ("env.0.weight", "text.weight")}
    assert moved[50.0]["env.0.weight"] > 10 * moved[1.0]["env.0.weight"]
    assert moved[50.0]["text.weight"] == pytest.approx(moved[1.0]["text.weight"], rel=0.3)


# -- target-anchored hand actions (VLAConfig.target_anchor) ----------------------------------------------------------

# Two hands (state 0-2 left, 3-5 right), their position targets (actions 0-2, 3-5) and two grippers (6, 7).
ANCHORED = VLAConfig.model_validate({
    **TINY.model_dump(), "action_dim": 8, "env_state_dim": ENV_DIM, "target_hand_state": (0, 1, 2, 3, 4, 5),
    "relative_actions": tuple((i, i) for i in range(6)), "target_anchor": True})


def _anchored_env(point: tuple[float, float, float] | None, rows: int = 1) -> torch.Tensor:
    env = torch.zeros(rows, ENV_DIM)
    if point is not None:
        env[:, GOAL_DIM:] = torch.tensor([1.0, *point])
    return env


def _reaches(n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Episodes of a left hand closing in on a point 10 cm above a random target, the right hand still."""
    states, actions, targets = [], [], []
    for _ in range(n):
        point = rng.uniform([0.3, 0.0, 0.7], [0.6, 0.3, 1.1])
        left = np.linspace([0.2, 0.25, 0.9], point + [0, 0, 0.1], 12)
        right = np.tile([0.2, -0.25, 0.9], (12, 1))
        states.append(np.hstack([left, right]))
        actions.append(np.hstack([np.vstack([left[1:], left[-1:]]), right, np.zeros((12, 2))]))
        targets.append(np.tile(np.r_[1.0, point], (12, 1)))
    return states, actions, targets


def test_the_hand_nearer_the_target_is_predicted_from_the_target():
    """The same model output puts the nearer hand where the target moves it, one for one; the
    other hand, and every row without a target, stay relative to the hands as before."""
    rng = np.random.default_rng(3)
    states, actions, targets = _reaches(4, rng)
    processor = VLAProcessor.fit(ANCHORED, states, actions, text_embedder=fake_embedder, targets=targets)
    assert float(processor.stats["anchor_std"][2]) > 0 and processor.stats["anchor_mean"].shape == (3,)
    raw = torch.tensor([[0.2, 0.25, 0.9, 0.2, -0.25, 0.9]] * 3)
    env = processor.environment_features(torch.cat([_anchored_env((0.5, 0.2, 0.8)), _anchored_env((0.5, -0.2, 0.8)),
                                                    _anchored_env(None)]), raw)
    moved = processor.environment_features(torch.cat([_anchored_env((0.6, 0.2, 0.8)), _anchored_env((0.6, -0.2, 0.8)),
                                                      _anchored_env(None)]), raw)
    zero = torch.zeros(3, ANCHORED.chunk_size, 8)
    out, shifted = processor.unnormalise_action(zero, raw, env), processor.unnormalise_action(zero, raw, moved)
    torch.testing.assert_close(shifted[0, :, 0] - out[0, :, 0], torch.full((ANCHORED.chunk_size,), 0.1))  # left, nearer
    torch.testing.assert_close(shifted[1, :, 3] - out[1, :, 3], torch.full((ANCHORED.chunk_size,), 0.1))  # right, nearer
    torch.testing.assert_close(shifted[0, :, 3:], out[0, :, 3:])
    torch.testing.assert_close(shifted[1, :, :3], out[1, :, :3])
    torch.testing.assert_close(out[2], VLAProcessor(ANCHORED.model_copy(update={"target_anchor": False}), processor.stats)
                               .unnormalise_action(zero[2:], raw[2:])[0])  # no target: anchored at the hands
    chunk = torch.as_tensor(rng.normal(size=(3, ANCHORED.chunk_size, 8)), dtype=torch.float32)
    torch.testing.assert_close(processor.unnormalise_action(processor.normalise_action(chunk, raw, env), raw, env), chunk)
    with pytest.raises(ValueError, match="environment features"):
        processor.normalise_action(chunk, raw)


def test_a_target_anchored_model_reaches_a_target_it_never_saw(tmp_path: Path):
    """Trained on a few hands sent to 10 cm above their targets, the model sends a hand it never
    saw there to 10 cm above a target it never saw: the offset is the same in every sample, the
    reach itself is not. Saved and loaded, it acts the same."""
    torch.manual_seed(0)
    rng = np.random.default_rng(4)
    states, actions, targets = _reaches(6, rng)
    processor = VLAProcessor.fit(ANCHORED, states, actions, text_embedder=fake_embedder, targets=targets)
    policy = VLAPolicy(ANCHORED, processor)
    frames = {k: torch.as_tensor(rng.integers(0, 255, (1, 24, 32, 3), dtype=np.uint8)) for k in ANCHORED.image_keys}
    points = rng.uniform([0.3, 0.0, 0.7], [0.6, 0.3, 1.1], size=(16, 3))
    hands = points + rng.uniform(-0.1, 0.1, size=(16, 3))
    train = {k: v.expand(len(points), -1, -1, -1) for k, v in frames.items()}
    goal = np.hstack([points + [0, 0, 0.1], np.tile([0.2, -0.25, 0.9, 0.0, 0.0], (len(points), 1))])
    train.update({"observation.state": torch.as_tensor(np.hstack([hands, np.tile([0.2, -0.25, 0.9], (len(points), 1))]),
                                                       dtype=torch.float32),
                  "task": ["reach"] * len(points), GOAL_KEY: torch.cat([_anchored_env(tuple(p)) for p in points]),
                  "action": torch.as_tensor(np.repeat(goal[:, None], ANCHORED.chunk_size, axis=1), dtype=torch.float32)})
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    for _ in range(150):
        loss, _ = policy(train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    point = np.array([0.45, 0.35, 1.15])  # beyond the training targets, the hand 15 cm off it
    obs = {k: v[0].numpy() for k, v in frames.items()}
    obs.update({"observation.state": np.r_[point + [-0.15, 0, 0], 0.2, -0.25, 0.9].astype(np.float32), "task": "reach",
                GOAL_KEY: _anchored_env(tuple(point))[0].numpy()})
    chunk = policy.eval().predict_action_chunk(obs)
    np.testing.assert_allclose(chunk[:, :3], np.tile(point + [0, 0, 0.1], (ANCHORED.chunk_size, 1)), atol=0.02)
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = VLAPolicy.from_pretrained(tmp_path / "ckpt", text_embedder=fake_embedder)
    assert loaded.config.target_anchor
    np.testing.assert_array_equal(loaded.predict_action_chunk(obs), chunk)


def test_target_anchor_needs_the_hands_among_the_relative_actions():
    with pytest.raises(ValueError, match="target_anchor"):
        VLAConfig.model_validate({**ANCHORED.model_dump(), "relative_actions": ()})
    with pytest.raises(ValueError, match="target_anchor"):
        VLAConfig.model_validate({**ANCHORED.model_dump(), "target_hand_state": ()})


def test_train_target_anchor_from_the_command_line(picks: Path, tmp_path: Path):
    result = runner.invoke(app, ["train", "--dataset", str(picks), "--out", str(tmp_path / "bad"), "--target-anchor",
                                 "--no-manipulation-target", "--steps", "1"])
    assert result.exit_code == 2 and "needs --manipulation-target" in " ".join(result.output.split())
    result = runner.invoke(app, ["train", "--dataset", str(picks), "--out", str(tmp_path / "run"), "--target-anchor",
                                 "--steps", "2", "--batch-size", "4", "--image-size", "32x40", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    policy = VLAPolicy.from_pretrained(tmp_path / "run" / "pretrained", text_embedder=lambda t: torch.zeros(len(t), 384))
    assert policy.config.target_anchor and float(policy.processor.stats["anchor_std"].min()) > 1e-3
