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
        {"scenario": "kitchen", "setup": [{"skill": "navigate_to", "success": True}, {"skill": "pick", "success": False},
                                          {"skill": "pick", "success": False, "lead": True}]},  # a lead is no set-up step
        {"scenario": "kitchen", "setup": [{"skill": "navigate_to", "success": True}, {"skill": "pick", "success": True}]},
        {"scenario": "tidy_table", "setup": [{"skill": "navigate_to", "success": False}]},
        {"scenario": "kitchen"},  # an expert set-up: nothing learned to count
    ]
    assert step_success(rows) == {"kitchen navigate_to": (2, 2), "kitchen pick": (1, 2), "tidy_table navigate_to": (0, 1)}


# ------------------------------------------------------------------ DAgger inside a skill (--takeover-after)

HANDOVER = {"object": "red_cup", "person": "person_1"}
GRIPPER = {"left": 9, "right": 16}  # action entries (the EE_POSE layout)
HAND_Z = {"left": 5, "right": 12}


def _expert_lead(stop):
    """A stand-in for the learned chain: the expert's own set-up and handover, unrecorded, the
    handover stopped part-way where `stop(world)` first holds, returned as a lead that failed."""
    from policy.episodes import run_skill, setup_steps

    calls = []

    def fake(world, obs, steps, checkpoint, seed, task="", lead_s=0.0):
        calls.append((steps, lead_s))
        results = []
        for name, a in steps[:-1]:
            res, obs = run_skill(world, name, a, obs)
            results.append(res)
        expert_steps = 0
        from policy.expert import ScriptedExpert

        expert = ScriptedExpert(world, "handover", dict(HANDOVER))
        expert.reset()
        t0 = world.time
        while not stop(world) and world.time - t0 < 20.0:
            obs, *_ = world.step(expert.select_action(obs))
            expert_steps += 1
        assert stop(world), "the expert's handover never reached the state the test stops it in"
        results.append(SkillResult("handover", dict(HANDOVER), False, "learned handover: timed out", 0, world.time - t0, lead=True))
        return obs, results

    assert setup_steps("handover", HANDOVER)  # the fake runs these first
    return fake, calls


def _over_the_palm(world) -> bool:
    st = world.privileged_state()
    cup, palm = np.asarray(st.objects["red_cup"].pos), np.asarray(st.people["person_1"].hand)
    return st.objects["red_cup"].held_by is not None and np.linalg.norm(cup[:2] - palm[:2]) < 0.02 and cup[2] - palm[2] < 0.09


def _on_the_palm(world) -> bool:
    st = world.privileged_state()
    return st.objects["red_cup"].held_by is not None and "person_1" in st.objects["red_cup"].contacts


@pytest.mark.parametrize("stop, most_steps", [(_over_the_palm, 60), (_on_the_palm, 25)])
def test_the_expert_takes_over_a_handover_from_where_the_lead_stopped(monkeypatch: pytest.MonkeyPatch, stop, most_steps):
    """Stopped with the cup just over the palm, or already on it, the expert goes on from there:
    it lowers (or lets go) without first lifting the cup back to its travel height, so the
    recorded correction is the step the learned attempt missed."""
    import policy.learned_setup as learned
    from scenarios.world import SimWorld, WorldConfig

    fake, calls = _expert_lead(stop)
    monkeypatch.setattr(learned, "run_learned_setup", fake)
    world = SimWorld("kitchen", WorldConfig(cameras=(), head_depth=False))
    actions: list[np.ndarray] = []
    try:
        out = run_episode(world, "handover", dict(HANDOVER), seed=11, on_step=lambda obs, a: actions.append(np.array(a)),
                          config=EpisodeConfig(learned_setup="/ckpt", takeover_after=6.0), task="hand the cup over")
    finally:
        world.close()
    (steps, lead_s), = calls
    assert steps[-1] == ("handover", HANDOVER) and 1.0 <= lead_s <= 6.0
    assert out.success, out.reason
    assert not out.recovery and out.lead_s > 0
    assert 0 < len(actions) == out.steps
    side = "left" if actions[0][GRIPPER["left"]] > 0.5 else "right"  # the hand closed on the cup
    z = np.array([a[HAND_Z[side]] for a in actions])
    opened = np.flatnonzero(np.array([a[GRIPPER[side]] for a in actions]) < 0.5)
    assert opened.size and opened[0] < most_steps, f"let go only after {opened[:1]} steps"
    assert (z[: opened[0] + 1] <= z[0] + 0.01).all(), f"lifted the cup {z.max() - z[0]:.3f} m again before letting go"


def test_a_lead_that_succeeded_records_nothing(monkeypatch: pytest.MonkeyPatch):
    import policy.learned_setup as learned
    from scenarios.world import SimWorld, WorldConfig

    monkeypatch.setattr(learned, "run_learned_setup", lambda world, obs, steps, *a, **k: (
        obs, [SkillResult(n, x, True, "", 0, 0.0) for n, x in steps[:-1]] + [SkillResult("pick", {}, True, "", 0, 3.2, lead=True)]))
    world = SimWorld("kitchen", WorldConfig(cameras=(), head_depth=False))
    actions = []
    try:
        out = run_episode(world, "pick", {"object": "red_cup"}, seed=7, config=EpisodeConfig(learned_setup="/ckpt", takeover_after=5.0),
                          on_step=lambda obs, a: actions.append(a))
    finally:
        world.close()
    assert not out.success and not actions and out.lead_s == 3.2
    assert out.reason == "the learned pick succeeded within its 3.2 s lead"


def test_the_lead_travels_with_each_job_and_its_metadata():
    config = CollectConfig(scenarios=("kitchen",), skills=("handover",), episodes=1, seed=3, learned_setup="/ckpt",
                           takeover_after=9.0)
    job, = plan_episodes(config)
    assert job.episode_config().takeover_after == 9.0
    assert EpisodeJob.from_meta({"episode_index": 0, "scenario": "kitchen", "skill": "pick", "skill_args": {}, "seed": 3,
                                 "tasks": ["x"], "learned_setup": "/ckpt", "takeover_after": 9.0}).takeover_after == 9.0


@pytest.mark.parametrize("argv, message", [
    (["--takeover-after", "5"], "--takeover-after needs --learned-setup"),
    (["--learned-setup", str(DEFAULT_CHECKPOINT), "--takeover-after", "0.5"], "--takeover-after 0.5: must be 0 (off) or at least 1.0 s"),
])
def test_bad_takeover_options_are_refused_before_anything_runs(tmp_path: Path, argv: list[str], message: str):
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["collect", "--scenario", "kitchen", "--skills", "handover", "--out", str(out), *argv])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert not out.exists()
