"""Evaluation reports from episode results (the episodes themselves are tested end to end elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path

from agent.evaluation import EpisodeResult, episodes_for, summarise, write_reports


def test_rows_and_reports(tmp_path: Path):
    results = [
        EpisodeResult("kitchen", "serve a drink to the person", 0, "expert", True, True, world_seconds=18.0),
        EpisodeResult("kitchen", "serve a drink to the person", 1, "expert", False, False, "t3", "handover", "t3: stalled", world_seconds=60.0),
        EpisodeResult("kitchen", "serve a drink to the person", 2, "expert", True, False, world_seconds=20.0),
    ]
    (row,) = summarise(results)
    assert (row.episodes, row.agent_successes, row.world_successes, row.false_successes) == (3, 2, 1, 1)
    assert row.failures_by_skill == {"handover": 1} and abs(row.mean_world_seconds - 98 / 3) < 1e-9
    paths = write_reports(results, [row], tmp_path, "expert")
    data = json.loads(paths["json"].read_text())
    assert data["rows"][0]["failures_by_skill"] == {"handover": 1} and len(data["episodes"]) == 3
    assert "2/3 (67%)" in paths["markdown"].read_text()
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_episodes_come_from_the_scenario_goals():
    eps = episodes_for(["tidy_table"], ["tidy the table"], 2, "expert")
    assert [e.seed for e in eps] == [0, 1]
    assert set(eps[0].success) == {"in(blue_can, bin)", "in(red_ball, bin)", "in(green_box, bin)"}


def test_an_evaluation_worker_exits_when_the_evaluation_dies():
    """Kill `vla-agent eval` and its spawned workers must not simulate on as orphans."""
    import os
    import subprocess
    import sys
    import time

    repo = str(Path(__file__).resolve().parents[1])
    code = (f"import os, sys, time\nsys.path.insert(0, {repo!r})\nfrom agent.evaluation import _exit_with_parent\n"
            "pid = os.fork()\nif pid == 0:\n    null = os.open(os.devnull, os.O_WRONLY)\n    os.dup2(null, 1)\n    os.dup2(null, 2)\n"
            "    _exit_with_parent(os.getppid(), every_s=0.05)\n    time.sleep(30)\n    os._exit(0)\n"
            "print(pid, flush=True)\n")  # the parent exits at once, as a killed evaluation would

    def gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped
        except FileNotFoundError:
            return True

    child = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout.split()[0])
    deadline = time.monotonic() + 10
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child), "the orphaned worker is still running"


def test_each_finished_episode_is_logged_as_it_finishes(tmp_path: Path, monkeypatch):
    """An evaluation stopped part-way (a time limit, Ctrl-C) still leaves both verdicts of every
    run that finished, one JSON line each, before any report is written."""
    import pytest

    import agent.evaluation as evaluation

    def fake_run(ep, trace_dir=None):
        if ep.seed == 2:
            raise KeyboardInterrupt  # stopped while the third run was going
        return EpisodeResult(ep.scenario, ep.goal, ep.seed, ep.policy, True, ep.seed == 0)

    monkeypatch.setattr(evaluation, "run_episode", fake_run)
    log = tmp_path / "eval" / "episodes.jsonl"
    with pytest.raises(KeyboardInterrupt):
        evaluation.evaluate(episodes_for(["kitchen"], ["serve a drink to the person"], 4, "vla"), log=log)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(x["seed"], x["agent_success"], x["world_success"]) for x in lines] == [(0, True, True), (1, True, False)]


def test_a_failed_goal_says_which_object_is_not_where_it_should_be_and_where_it_is(tmp_path: Path):
    from agent.evaluation import unmet_success
    from scenarios.world import SimWorld

    world = SimWorld("tidy_table")
    try:
        world.reset(seed=0)
        truth = world.privileged_state()
    finally:
        world.close()
    unmet = unmet_success(truth, ("in(blue_can, bin)", "in(red_ball, bin)", "not in(green_box, bin)"))
    assert set(unmet) == {"in(blue_can, bin)", "in(red_ball, bin)"}  # the box is not in the bin: that one holds
    assert unmet["in(red_ball, bin)"].startswith("on table at (")
    x, y, z = truth.objects["red_ball"].pos
    assert f"({x:.2f}, {y:.2f}, {z:.2f})" in unmet["in(red_ball, bin)"]

    failed = EpisodeResult("tidy_table", "tidy the table", 3, "vla", False, False, "t8", "place_in", "t8: dropped",
                           world_unmet=unmet)
    paths = write_reports([failed], summarise([failed]), tmp_path, "vla")
    report = paths["markdown"].read_text()
    assert "| tidy_table | tidy the table | 3 | t8 place_in | t8: dropped | in(blue_can, bin): on table at (" in report
    assert json.loads(paths["json"].read_text())["episodes"][0]["world_unmet"] == unmet
