"""End to end in the MuJoCo kitchen: planner → behaviour tree → scripted expert, completion
judged by camera perception. Ground truth is read here only to check the outcome (and, in
the recovery test, to knock the cup out of the hand)."""

from __future__ import annotations

import os

import py_trees
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

GOAL = "serve a drink"


@pytest.fixture(autouse=True)
def _clean_blackboard():
    yield
    py_trees.blackboard.Blackboard.clear()


def _executor(seed: int, tmp_path):
    pytest.importorskip("policy.expert", reason="the scripted expert (policy/expert) is not there yet")
    from agent.commands_behaviors import sim_executor
    from behaviors.context import BehaviorConfig

    return sim_executor(GOAL, "kitchen", seed=seed, trace=tmp_path / f"seed{seed}" / "trace.jsonl",
                        config=BehaviorConfig(max_seconds=150.0))


def _run_checked(ex, grace_s: float = 10.0) -> tuple[str | None, bool]:
    """Run to the end, but stop `grace_s` world seconds after ground truth says the drink was
    handed over (perception then had its chance to confirm it). Returns (status, given)."""
    given_at = None
    while not ex.finished:
        ex.tick()
        if given_at is None and ex.ticks % 10 == 0 and ex.world.holds("given(red_cup, person_1)"):
            given_at = ex.world.time
        if given_at is not None and ex.world.time > given_at + grace_s:
            break
    return (ex.outcome.status if ex.outcome else None), given_at is not None


def _seeds() -> list[int]:
    """One seed by default (CI time); the 20-seed study is `vla-agent eval --policy expert --seeds 20`."""
    return list(range(int(os.environ.get("VLA_AGENT_E2E_SEEDS", "1"))))


def test_serve_a_drink_succeeds(tmp_path):
    outcomes = []
    for seed in _seeds():
        ex = _executor(seed, tmp_path)
        status, given = _run_checked(ex)
        outcomes.append((seed, status, given, ex.reasons))
        ex.close()
        py_trees.blackboard.Blackboard.clear()
    ok = sum(1 for _, status, given, _ in outcomes if status == "succeeded" and given)
    assert ok >= 0.95 * len(outcomes), outcomes


def test_cup_knocked_out_of_the_hand_recovers_by_replanning(tmp_path):
    import mujoco

    ex = _executor(0, tmp_path)
    world = ex.world
    joint = world.model.joint("red_cup/joint")
    qadr, vadr = int(joint.qposadr[0]), int(joint.dofadr[0])
    on_table = world.data.qpos[qadr:qadr + 7].copy()  # where the cup stood after reset

    def picks() -> list[int]:
        return [i for i, e in enumerate(ex.events) if e["event"] == "subtask_succeeded" and e["skill"] == "pick"]

    def pick_done() -> bool:
        return bool(picks())

    while not ex.finished and not pick_done():
        ex.tick()
    assert not ex.finished and world.holds("holding(red_cup)")
    # knock it out of the hand: the cup is back on the table (test set-up only)
    world.data.qpos[qadr:qadr + 7] = on_table
    world.data.qvel[vadr:vadr + 6] = 0.0
    mujoco.mj_forward(world.model, world.data)
    assert not world.holds("holding(red_cup)")

    def repicked() -> bool:
        replans = [i for i, e in enumerate(ex.events) if e["event"] == "replanned"]
        return bool(replans) and any(i > replans[0] for i in picks())

    while not ex.finished and not repicked():
        ex.tick()
    ex.close()
    assert ex.replans >= 1, ex.outcome
    replanned = next(e for e in ex.events if e["event"] == "replanned")
    assert "holding(red_cup)" in replanned["reason"]  # the handover's precondition failed, with its reason
    assert "pick" in [n["skill"] for n in replanned["graph"]["nodes"]]
    assert repicked() and world.holds("holding(red_cup)")  # the repaired plan got the cup back into the hand
    # (the run would go on to the handover, whose confirmation waits on perception: see PERCEPTION_GIVEN)

REAL_CLI = """
import sys
sys.path.insert(0, {repo!r})
from agent.cli import app
from agent.commands_behaviors import register
if not any(c.name == "debug" for c in app.registered_commands):
    register(app)
app()
"""


def test_real_debug_prompt_in_the_kitchen(tmp_path):
    """`vla-agent debug "serve a drink" --scenario kitchen` through a pseudo-terminal."""
    import sys
    from pathlib import Path

    from tests.test_behaviors_debugger import Pty

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "COLUMNS": "200", "MUJOCO_GL": "egl"}
    p = Pty([sys.executable, "-c", REAL_CLI.format(repo=str(repo)), "debug", GOAL, "--scenario", "kitchen",
             "--trace", str(tmp_path / "trace.jsonl"), "--frames", str(tmp_path / "frames")], cwd=tmp_path, env=env)
    intro = p.expect("(vla-debug) ", timeout=300)
    assert "pick(red_cup)" in intro and "handover(red_cup, person_1)" in intro
    p.send("break holding(red_cup)")
    p.expect("(vla-debug) ")
    p.send("step 3")
    assert "tick 3" in p.expect("(vla-debug) ", timeout=120)
    p.send("belief")
    assert "red_cup" in p.expect("(vla-debug) ")
    p.send("tree")
    assert "pick up the red cup" in p.expect("(vla-debug) ")
    p.send("frame")
    assert "head.png" in p.expect("(vla-debug) ")
    p.send("continue")
    assert "holding(red_cup) became true" in p.expect("(vla-debug) ", timeout=600)
    p.send("quit")
    p.expect("bye")
    assert p.close() == 0
    assert sorted(f.name.split("_", 1)[1] for f in (tmp_path / "frames").glob("*.png")) == ["head.png", "left_wrist.png", "right_wrist.png"]
