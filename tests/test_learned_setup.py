"""Collection with a learned set-up: the expert is recorded from where the learned chain leaves the robot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.cli import app
from agent.session import DEFAULT_CHECKPOINT
from policy.episodes import EpisodeConfig, SkillResult, run_episode
from policy.learned_setup import learned_steps
from policy.recording import CollectConfig, EpisodeJob, collect, plan_episodes


def test_a_drive_set_up_ends_with_the_learned_drive_itself():
    handover = [("navigate_to", {"target": "red_cup"}), ("pick", {"object": "red_cup"}), ("navigate_to", {"target": "person_1"})]
    assert learned_steps(handover, "handover", {"object": "red_cup", "person": "person_1"}) == handover
    assert learned_steps([], "navigate_to", {"target": "table"}) == [("navigate_to", {"target": "table"})]


def test_the_checkpoint_travels_with_each_job_and_its_metadata():
    config = CollectConfig(scenarios=("kitchen",), skills=("pick",), episodes=2, seed=3, learned_setup="/ckpt")
    jobs = plan_episodes(config)
    assert [j.episode_config().learned_setup for j in jobs] == ["/ckpt", "/ckpt"]
    meta = {"episode_index": 0, "scenario": "kitchen", "skill": "pick", "skill_args": {"object": "red_cup"}, "seed": 3,
            "tasks": ["pick up the red cup"], "learned_setup": "/ckpt"}
    assert EpisodeJob.from_meta(meta).episode_config().learned_setup == "/ckpt"
    assert EpisodeJob.from_meta({**meta, "learned_setup": None}).episode_config().learned_setup is None


def test_a_failed_learned_step_is_redone_by_the_expert_and_recorded_as_recovery(monkeypatch: pytest.MonkeyPatch):
    """When the learned chain fails at a step, the expert performs that step from where the
    failed attempt stopped: the episode records that skill, its arguments and an instruction
    for it, flagged `recovery`."""
    import policy.learned_setup as learned
    from scenarios.world import SimWorld, WorldConfig

    calls = []

    def failing_drive(world, obs, steps, checkpoint, seed, task=""):
        calls.append((steps, checkpoint))
        name, args = steps[0]
        return obs, [SkillResult(name, args, False, "learned navigate_to: timed out after 60.0 s", 0, 60.0)]

    monkeypatch.setattr(learned, "run_learned_setup", failing_drive)
    world = SimWorld("kitchen", WorldConfig(cameras=("head",), image_size=(32, 40), head_depth=False))
    steps: list[np.ndarray] = []
    try:
        out = run_episode(world, "pick", {"object": "red_cup"}, seed=7, config=EpisodeConfig(learned_setup="/ckpt"),
                          on_step=lambda obs, action: steps.append(action), task="pick up the red cup")
    finally:
        world.close()
    assert calls == [([("navigate_to", {"target": "red_cup"})], "/ckpt")]
    assert out.recovery and not out.setup_failed
    assert (out.skill, out.args) == ("navigate_to", {"target": "red_cup"})
    assert out.success, out.reason
    assert "pick" not in out.task and out.task, "the recorded instruction names the drive, not the planned pick"
    assert len(steps) == out.steps > 0


def test_a_set_up_that_cannot_be_redone_is_a_failed_set_up(monkeypatch: pytest.MonkeyPatch):
    import policy.learned_setup as learned
    from scenarios.world import SimWorld, WorldConfig

    monkeypatch.setattr(learned, "run_learned_setup", lambda world, obs, steps, *a, **k: (
        obs, [SkillResult("displace_hands", {}, False, "dropped", 0, 0.0)]))
    world = SimWorld("kitchen", WorldConfig(cameras=(), head_depth=False))
    try:
        out = run_episode(world, "pick", {"object": "red_cup"}, seed=7, config=EpisodeConfig(learned_setup="/ckpt"))
    finally:
        world.close()
    assert out.setup_failed and not out.recovery and out.reason == "setup displace_hands failed: dropped"


@pytest.mark.parametrize("argv, message", [
    (["--learned-setup", "nowhere"], "--learned-setup nowhere: no VLA checkpoint there (no config.json)"),
    (["--learned-setup", str(DEFAULT_CHECKPOINT), "--offset", "0.5"], "leave out --offset and --arm-offset"),
])
def test_bad_learned_setup_options_are_refused_before_anything_runs(tmp_path: Path, argv: list[str], message: str):
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["collect", "--scenario", "kitchen", "--out", str(out), *argv])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert not out.exists()


@pytest.mark.slow
def test_the_shipped_policy_drives_then_the_expert_is_recorded_from_where_it_stopped(tmp_path: Path):
    """End to end with the shipped checkpoint: the learned drive runs through the behaviour tree
    (full-size frames, camera perception), then the expert's drive from there is recorded at the
    dataset's image size, with the set-up kept in episodes.jsonl."""
    out = tmp_path / "ds"
    config = CollectConfig(scenarios=("kitchen",), skills=("navigate_to",), episodes=1, seed=620500, image_size=(48, 64),
                           fixed_args={"target": "table"}, dart_fraction=0.0, learned_setup=str(DEFAULT_CHECKPOINT))
    collect(config, out)
    ep = json.loads((out / "meta" / "episodes.jsonl").read_text().splitlines()[0])
    assert ep["learned_setup"] == str(DEFAULT_CHECKPOINT)
    assert ep["setup"][-1]["skill"] == "navigate_to" and ep["setup"][-1]["args"] == {"target": "table"}
    if ep["setup"][-1]["success"]:
        assert not ep["recovery"] and ep["skill"] == "navigate_to"
    else:  # the learned drive failed: the expert's drive from there is the recovery
        assert ep["recovery"]
    assert ep["success"], ep["failure_reason"]
    frames = sorted((out / "images" / "observation.images.head" / "episode_000000").glob("*.png"))
    assert len(frames) == ep["length"]
    if frames:
        assert Image.open(frames[0]).size == (64, 48)


def test_step_success_counts_each_learned_step_by_scenario():
    from policy.learned_setup import step_success

    rows = [
        {"scenario": "kitchen", "setup": [{"skill": "navigate_to", "success": True}, {"skill": "pick", "success": False}]},
        {"scenario": "kitchen", "setup": [{"skill": "navigate_to", "success": True}, {"skill": "pick", "success": True}]},
        {"scenario": "tidy_table", "setup": [{"skill": "navigate_to", "success": False}]},
        {"scenario": "kitchen"},  # an expert set-up: nothing learned to count
    ]
    assert step_success(rows) == {"kitchen navigate_to": (2, 2), "kitchen pick": (1, 2), "tidy_table navigate_to": (0, 1)}
