"""Demonstration datasets: LeRobot v2.1 layout, round trip, determinism, errors before writing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from agent.commands_expert import register
from policy.dataset import DemonstrationDataset, load_meta, make_dataloader
from policy.expert import SkillError
from policy.recording import CollectConfig, EpisodeData, collect, plan_episodes, read_episode, write_episode

SMALL = CollectConfig(scenarios=("kitchen",), skills=("pick",), episodes=2, seed=5, image_size=(32, 40),
                      dart_fraction=0.5, perturb_fraction=0.0)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "small"
    collect(SMALL, out)
    return out


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        pass

    register(app)
    return app


def test_layout_is_lerobot_v21(small: Path):
    info, episodes, tasks = load_meta(small)
    assert info["codebase_version"] == "v2.1" and info["fps"] == 20.0
    assert info["total_episodes"] == 2 == len(episodes)
    assert info["total_frames"] == sum(e["length"] for e in episodes)
    assert info["features"]["observation.images.head"]["shape"] == [32, 40, 3]
    assert info["features"]["action"]["shape"] == [19] and len(info["features"]["action"]["names"]) == 19
    for e in episodes:
        assert {"episode_index", "tasks", "length", "skill", "skill_args", "success", "dart_noise", "perturbed"} <= set(e)
        cols = read_episode(small, e["episode_index"])
        assert cols["action"].shape == (e["length"], 19)
        assert (small / "images/observation.images.right_wrist" / f"episode_{e['episode_index']:06d}" / "frame_000000.png").exists()
        assert tasks[int(cols["task_index"][0])] == e["tasks"][0]
    first = read_episode(small, 0)
    second = read_episode(small, 1)
    assert second["index"][0] == first["index"][-1] + 1


def test_episode_round_trips(tmp_path: Path):
    rng = np.random.default_rng(0)
    ep = EpisodeData(3, rng.normal(size=(7, 52)).astype(np.float32), rng.normal(size=(7, 19)).astype(np.float32),
                     {"skill": "pick", "skill_args": {"object": "red_cup"}, "success": False})
    write_episode(tmp_path, ep, task_index=2, first_index=10, fps=20.0)
    back = read_episode(tmp_path, 3)
    np.testing.assert_array_equal(back["observation.state"], ep.state)
    np.testing.assert_array_equal(back["action"], ep.action)
    np.testing.assert_array_equal(back["index"], np.arange(10, 17))
    assert set(back["task_index"]) == {2} and not back["success"].any()
    assert json.loads(back["skill_args"][0]) == {"object": "red_cup"} and back["skill"][0] == "pick"


def test_loader_yields_action_chunks_with_padding(small: Path):
    ds = DemonstrationDataset(small, chunk_size=16, include_failed=True)
    assert len(ds) == ds.total_frames
    last = ds[len(ds) - 1]
    assert last["action"].shape == (16, 19) and last["action_is_pad"][1:].all() and not last["action_is_pad"][0]
    first = ds[0]
    cols = read_episode(small, 0)
    np.testing.assert_array_equal(first["action"].numpy(), cols["action"][:16])
    np.testing.assert_array_equal(first["observation.state"].numpy(), cols["observation.state"][0])
    from PIL import Image

    png = np.asarray(Image.open(small / "images/observation.images.head/episode_000000/frame_000000.png"))
    np.testing.assert_array_equal((first["observation.images.head"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), png)
    env = first["observation.environment_state"].numpy()
    assert env.shape == (11,) and not env[:7].any(), "a pick has no navigation goal"
    assert env[7] == 1.0, "... but the object it picks, kept with the episode, as its target"
    batch = next(iter(make_dataloader(ds, batch_size=5)))
    assert batch["action"].shape == (5, 16, 19) and len(batch["task"]) == 5
    again = DemonstrationDataset(small, chunk_size=16, include_failed=True)  # reads the frame cache
    np.testing.assert_array_equal(again.frames["head"], ds.frames["head"])


def test_frames_cached_at_the_model_size_match_the_run_time_resize(small: Path):
    from PIL import Image

    from policy.vla import VLAConfig, VLAProcessor

    ds = DemonstrationDataset(small, chunk_size=16, include_failed=True, image_size=(24, 30))
    img = ds[0]["observation.images.head"]
    assert img.shape == (3, 24, 30)
    png = np.asarray(Image.open(small / "images/observation.images.head/episode_000000/frame_000000.png"))
    config = VLAConfig(image_keys=("observation.images.head",), image_size=(24, 30))
    at_run_time = VLAProcessor(config, text_embedder=lambda texts: None).images({"observation.images.head": png})[0, 0]
    np.testing.assert_allclose(img.numpy(), at_run_time.numpy(), atol=1 / 255 + 1e-6)
    assert (small / "cache" / "observation.images.head.24x30.npy").exists()


@pytest.mark.slow
def test_same_seeds_give_the_same_data(small: Path, tmp_path: Path):
    other = tmp_path / "again"
    collect(SMALL, other, workers=2)
    for e in range(2):
        a, b = read_episode(small, e), read_episode(other, e)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert (small / "meta/episodes.jsonl").read_text() == (other / "meta/episodes.jsonl").read_text()
    f = "images/observation.images.head/episode_000001/frame_000010.png"
    assert (small / f).read_bytes() == (other / f).read_bytes()


@pytest.mark.parametrize("argv,message", [
    (["--skills", "pik"], "did you mean 'pick'"),
    (["--skills", "pick", "--arg", "object=red_cpu"], "did you mean 'red_cup'"),
    (["--skills", "place_in"], "no container"),
    (["--skills", "pick", "--image-size", "big"], "HEIGHTxWIDTH"),
])
def test_bad_collect_input_fails_before_writing(tmp_path: Path, argv: list[str], message: str):
    out = tmp_path / "never"
    result = CliRunner().invoke(_app(), ["collect", "--scenario", "kitchen", "--out", str(out), "-n", "1", *argv])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not out.exists()


def test_plan_is_deterministic_and_varies_instructions():
    config = CollectConfig(scenarios=("distractors", "kitchen"), skills=("pick", "handover"), episodes=12, seed=1)
    a, b = plan_episodes(config), plan_episodes(config)
    assert [(j.args, j.task, j.noise) for j in a] == [(j.args, j.task, j.noise) for j in b]
    assert len({j.task for j in a}) >= 6
    with pytest.raises(SkillError):
        plan_episodes(CollectConfig(scenarios=("kitchen",), skills=("pick",), episodes=0))


def test_set_up_steps_skip_rendering_but_the_first_recorded_frame_is_rendered():
    from policy.episodes import prepare, with_images
    from scenarios.world import SimWorld, WorldConfig

    world = SimWorld("kitchen", WorldConfig(cameras=("head", "left_wrist"), image_size=(32, 40), head_depth=False))
    try:
        reference, _ = world.reset(seed=3)
        with world.cameras_off():
            bare, _ = world.reset(seed=3)
        assert "observation.images.head" not in bare
        filled = with_images(world, bare)
        for cam in ("head", "left_wrist"):
            np.testing.assert_array_equal(filled[f"observation.images.{cam}"], reference[f"observation.images.{cam}"])
        obs, setup = prepare(world, "navigate_to", {"target": "red_cup"}, seed=3)
        assert setup == [] and obs["observation.images.head"].shape == (32, 40, 3)
    finally:
        world.close()


def test_append_adds_a_pick_from_where_the_robot_stands(small: Path, tmp_path: Path):
    """`--append` grows a dataset (numbering, frame indices, tasks and totals continue) and
    `--from-start` records a pick with no navigate_to first when the object is in reach, as the
    planner plans it: the episode's first frame is the scenario's start pose."""
    import shutil

    grown = tmp_path / "grown"
    shutil.copytree(small, grown, ignore=shutil.ignore_patterns("cache"))
    before, _, _ = load_meta(grown)
    DemonstrationDataset(grown, chunk_size=8, include_failed=True)  # a frame cache of the two first episodes
    result = CliRunner().invoke(_app(), ["collect", "--scenario", "kitchen", "--out", str(grown), "-n", "1", "--seed", "900",
                                         "--arg", "object=red_cup", "--image-size", "32x40", "--dart", "0",
                                         "--perturb", "0", "--from-start", "1", "--append"])
    assert result.exit_code == 0, result.output
    info, episodes, tasks = load_meta(grown)
    assert info["total_episodes"] == 3 and [e["episode_index"] for e in episodes] == [0, 1, 2]
    assert info["total_frames"] == before["total_frames"] + episodes[2]["length"]
    assert info["collection"] == before["collection"] and info["appended"][0]["from_start_fraction"] == 1.0
    new = read_episode(grown, 2)
    assert new["index"][0] == before["total_frames"] and tasks[int(new["task_index"][0])] == episodes[2]["tasks"][0]
    assert episodes[2]["from_start"] and episodes[2]["skill"] == "pick"
    from scenarios.world import SimWorld, WorldConfig

    world = SimWorld("kitchen", WorldConfig(cameras=(), head_depth=False))
    world.reset(seed=900)
    start = world.controller.proprioception()[:3]
    world.close()
    np.testing.assert_allclose(new["observation.state"][0][:3], start, atol=1e-3)
    ds = DemonstrationDataset(grown, chunk_size=8, include_failed=True)  # extends the cache
    assert len(ds.episodes) == 3 and ds.total_frames == info["total_frames"]
    fresh = tmp_path / "fresh"
    shutil.copytree(grown, fresh, ignore=shutil.ignore_patterns("cache"))
    np.testing.assert_array_equal(ds.frames["head"], DemonstrationDataset(fresh, chunk_size=8, include_failed=True).frames["head"])
    # appending needs a dataset of the same image size, and a dataset to append to
    bad = CliRunner().invoke(_app(), ["collect", "--scenario", "kitchen", "--out", str(grown), "-n", "1", "--append"])
    assert bad.exit_code == 2 and "32x40" in " ".join(bad.output.split())
    none = CliRunner().invoke(_app(), ["collect", "--scenario", "kitchen", "--out", str(tmp_path / "x"), "-n", "1", "--append"])
    assert none.exit_code == 2 and "no dataset" in none.output


def test_supersede_retires_a_skills_earlier_episodes_from_training(small: Path, tmp_path: Path):
    """After a change to how the expert performs a skill, `--append --supersede` re-records it:
    the old episodes of that skill stay on disk but are marked, and no training item comes from them."""
    import shutil

    grown = tmp_path / "grown"
    shutil.copytree(small, grown, ignore=shutil.ignore_patterns("cache"))
    args = ["collect", "--scenario", "kitchen", "--out", str(grown), "-n", "1", "--seed", "901", "--arg", "object=red_cup",
            "--image-size", "32x40", "--dart", "0", "--perturb", "0"]
    alone = CliRunner().invoke(_app(), args + ["--supersede"])
    assert alone.exit_code == 2 and "--append" in alone.output
    result = CliRunner().invoke(_app(), args + ["--append", "--supersede"])
    assert result.exit_code == 0, result.output
    assert "2 earlier episodes" in " ".join(result.output.split())
    info, episodes, _ = load_meta(grown)
    assert [bool(e.get("superseded")) for e in episodes] == [True, True, False]
    assert info["appended"][-1]["superseded_episodes"] == 2 and info["total_episodes"] == 3
    ds = DemonstrationDataset(grown, chunk_size=8, include_failed=True)
    assert {ds.episodes[e]["episode_index"] for e, _ in ds.items} == {2}
    assert len(ds) == episodes[2]["length"]


def test_carrying_records_a_drive_made_holding_an_object(tmp_path: Path):
    """`--carrying` records navigate_to the way a goal drives to a surface, a bin or a person:
    holding what it carries (the drives recorded from the start were all empty-handed, and a
    policy trained on them alone opened its hand on the way to the bin). The first recorded
    frame already has the object in the closed hand."""
    from policy.recording import CollectConfig, plan_episodes

    jobs = plan_episodes(CollectConfig(scenarios=("kitchen",), skills=("navigate_to",), episodes=4, seed=70, carry_fraction=1.0))
    assert all(j.carry and j.carry != j.args["target"] for j in jobs)
    plain = plan_episodes(CollectConfig(scenarios=("kitchen",), skills=("navigate_to",), episodes=4, seed=70))
    assert [(j.args, j.task, j.noise) for j in plain] == [(j.args, j.task, j.noise) for j in jobs], "drawn last: nothing else moves"
    out = tmp_path / "carry"
    result = CliRunner().invoke(_app(), ["collect", "--scenario", "kitchen", "--out", str(out), "-n", "1", "--seed", "71",
                                         "--skills", "navigate_to", "--arg", "target=person_1", "--image-size", "32x40",
                                         "--dart", "0", "--perturb", "0", "--carrying", "1"])
    assert result.exit_code == 0, result.output
    _, episodes, _ = load_meta(out)
    carried = episodes[0]["carrying"]
    assert carried and episodes[0]["success"], episodes[0]
    from scenarios.world import SimWorld, WorldConfig

    world = SimWorld("kitchen", WorldConfig(cameras=(), head_depth=False))
    try:
        from policy.episodes import EpisodeConfig, prepare

        prepare(world, "navigate_to", {"target": "person_1"}, seed=71, config=EpisodeConfig(carry=carried))
        assert world.holds(f"holding({carried})"), "the recorded drive starts holding the object"
    finally:
        world.close()
    # the drive's goal is relabelled in hindsight: where the episode stopped, seen from each frame
    from policy.navigation_goal import GOAL_KEY

    data = DemonstrationDataset(out, chunk_size=5)
    base = data.state[0][:, :3]
    first, last = data[0][GOAL_KEY].numpy(), data[len(data) - 1][GOAL_KEY].numpy()
    assert first[0] == 1.0 and np.hypot(*first[3:5]) == pytest.approx(np.hypot(*(base[-1, :2] - base[0, :2])), abs=1e-4)
    np.testing.assert_allclose(last, [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0], atol=1e-6)  # a drive has no manipulation target
    bad = CliRunner().invoke(_app(), ["collect", "--scenario", "kitchen", "--out", str(tmp_path / "b"), "--carrying", "2"])
    assert bad.exit_code == 2 and "--carrying 2" in " ".join(bad.output.split())


def test_offset_starts_drives_and_picks_off_the_approach_pose():
    """`--offset` starts navigate_to and pick off the approach pose the expert drove to: a whole
    goal's first drive is often a few centimetres, and a learned drive stops a little short or
    long, so the data needs short drives (backing up too) and picks that line up first."""
    from policy.episodes import OFFSET_SKILLS, EpisodeConfig, prepare, run_skill

    config = CollectConfig(scenarios=("kitchen",), skills=("navigate_to", "pick", "place"), episodes=9, seed=80, offset_fraction=1.0)
    jobs = plan_episodes(config)
    assert all(j.offset == (j.skill in OFFSET_SKILLS) for j in jobs)
    plain = plan_episodes(CollectConfig(scenarios=("kitchen",), skills=("navigate_to", "pick", "place"), episodes=9, seed=80))
    assert [(j.args, j.task, j.noise) for j in plain] == [(j.args, j.task, j.noise) for j in jobs], "drawn last: nothing else moves"
    from scenarios.world import SimWorld, WorldConfig

    world = SimWorld("kitchen", WorldConfig(cameras=(), head_depth=False))
    try:
        for seed in (81, 82):
            obs, setup = prepare(world, "navigate_to", {"target": "red_cup"}, seed=seed, config=EpisodeConfig(offset=True))
            assert [r.skill for r in setup] == ["navigate_to"] and setup[0].success
            start = world.controller.proprioception()[:3].copy()
            res, obs = run_skill(world, "navigate_to", {"target": "red_cup"}, obs)
            end = world.controller.proprioception()[:3]
            moved = float(np.hypot(*(end[:2] - start[:2])))
            assert res.success and 0.02 < moved < 0.45, (seed, moved)
        obs, setup = prepare(world, "pick", {"object": "red_cup"}, seed=83, config=EpisodeConfig(offset=True))
        res, _ = run_skill(world, "pick", {"object": "red_cup"}, obs)
        assert res.success, res.reason
    finally:
        world.close()
    bad = CliRunner().invoke(_app(), ["collect", "--scenario", "kitchen", "--out", "never", "--offset", "2"])
    assert bad.exit_code == 2 and "--offset 2" in " ".join(bad.output.split())


def test_offset_scale_starts_a_pick_a_few_centimetres_off_where_the_expert_picks_from_there():
    """`--offset-scale 0.2` shifts the base by at most a fifth of the full ranges — where a
    learned drive stops — and the expert picks from there without lining up first; the scale
    travels with the episode (episodes.jsonl) so a replay starts it the same way."""
    from policy.episodes import OFFSET_RANGE, EpisodeConfig, prepare, run_skill, scaled_offset_range
    from policy.recording import EpisodeJob

    np.testing.assert_allclose(scaled_offset_range(0.2), 0.2 * np.array(OFFSET_RANGE))
    with pytest.raises(ValueError, match="offset_scale must be positive, got 0"):
        scaled_offset_range(0)
    jobs = plan_episodes(CollectConfig(scenarios=("kitchen",), skills=("pick",), episodes=2, seed=90, offset_fraction=1.0,
                                       offset_scale=0.2))
    assert all(j.offset and j.episode_config().offset_scale == 0.2 for j in jobs)
    meta = {"episode_index": 0, "scenario": "kitchen", "skill": "pick", "skill_args": {"object": "red_cup"}, "seed": 90,
            "tasks": ["pick up the red cup"], "offset": True, "offset_scale": 0.2}
    assert EpisodeJob.from_meta(meta).episode_config().offset_scale == 0.2
    from scenarios.world import SimWorld, WorldConfig

    world = SimWorld("kitchen", WorldConfig(cameras=(), head_depth=False))
    try:
        obs, setup = prepare(world, "pick", {"object": "red_cup"}, seed=91, config=EpisodeConfig(offset=True, offset_scale=0.2))
        assert setup and setup[-1].success
        start = world.controller.proprioception()[:3].copy()
        res, _ = run_skill(world, "pick", {"object": "red_cup"}, obs)
        assert res.success, res.reason
        moved = float(np.hypot(*(world.controller.proprioception()[:2] - start[:2])))
        assert moved < 0.01, f"the expert lined up ({moved:.3f} m) instead of picking from where it stood"
    finally:
        world.close()
    bad = CliRunner().invoke(_app(), ["collect", "--scenario", "kitchen", "--out", "never", "--offset-scale", "0"])
    assert bad.exit_code == 2 and "--offset-scale 0" in " ".join(bad.output.split())


def test_arm_offset_starts_carrying_drives_with_the_hands_off_their_postures():
    """`--arm-offset` moves both hands off their postures before a carrying drive: a learned pick
    may stop short of the carry posture and a learned free hand drifts; the expert's drive tucks
    both back before it sets off, holding on to what it carries."""
    from policy.episodes import EpisodeConfig, prepare, run_skill
    from policy.expert.motion import CARRY_POS, DRIVE_POS

    skills = ("navigate_to", "pick")
    config = CollectConfig(scenarios=("kitchen",), skills=skills, episodes=8, seed=90, carry_fraction=0.5, arm_offset_fraction=1.0)
    jobs = plan_episodes(config)
    assert any(j.carry for j in jobs) and all(j.arm_offset == (j.carry is not None) for j in jobs), "carrying drives only"
    held = plan_episodes(CollectConfig(scenarios=("kitchen",), skills=("pick", "handover"), episodes=4, seed=90, arm_offset_fraction=1.0))
    assert [j.arm_offset for j in held] == [j.skill == "handover" for j in held], "... and skills that start holding something"
    plain = plan_episodes(CollectConfig(scenarios=("kitchen",), skills=skills, episodes=8, seed=90, carry_fraction=0.5))
    assert [(j.args, j.task, j.noise, j.carry) for j in plain] == [(j.args, j.task, j.noise, j.carry) for j in jobs], "drawn last"
    from scenarios.world import SimWorld, WorldConfig

    world = SimWorld("kitchen", WorldConfig(cameras=(), head_depth=False))
    names = world.controller.proprioception_names()
    ee = {side: [names.index(f"{side}.ee.{c}") for c in "xyz"] for side in ("left", "right")}
    try:
        obs, setup = prepare(world, "navigate_to", {"target": "person_1"}, seed=91,
                             config=EpisodeConfig(carry="red_cup", arm_offset=True))
        assert [r.skill for r in setup] == ["navigate_to", "pick"] and all(r.success for r in setup)
        held = next(s for s, o in world.privileged_state().robot.holding.items() if o == "red_cup")
        free = "right" if held == "left" else "left"
        state = world.controller.proprioception()
        off = {held: np.linalg.norm(state[ee[held]] - CARRY_POS[held]), free: np.linalg.norm(state[ee[free]] - DRIVE_POS[free])}
        assert off[held] > 0.03 and off[free] > 0.03, off
        res, _ = run_skill(world, "navigate_to", {"target": "person_1"}, obs)
        state = world.controller.proprioception()
        assert res.success and world.holds("holding(red_cup)"), res.reason
        assert np.linalg.norm(state[ee[held]] - CARRY_POS[held]) < 0.03 and np.linalg.norm(state[ee[free]] - DRIVE_POS[free]) < 0.05
    finally:
        world.close()
    bad = CliRunner().invoke(_app(), ["collect", "--scenario", "kitchen", "--out", "never", "--arm-offset", "1.5"])
    assert bad.exit_code == 2 and "--arm-offset 1.5" in " ".join(bad.output.split())
