"""`vla-agent run`, the main job: exit codes for bad input and plans, and a real run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args,code,needle", [
    (["serve a drink", "--policy", "expret"], 2, "did you mean 'expert'"),
    (["serve a drink", "--scenario", "kitchn", "--policy", "expert"], 2, "did you mean 'kitchen'"),
    (["serve a drink", "--seed", "-3", "--policy", "expert"], 2, "--seed"),
    (["serve a drink", "--choose", "object", "--policy", "expert"], 2, "SLOT=ID"),
])
def test_bad_input_exits_2(args: list[str], code: int, needle: str):
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == code, result.output
    assert needle in result.output


def test_vla_without_a_checkpoint_says_so(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VLA_AGENT_CHECKPOINT", str(tmp_path / "no-checkpoint-here"))
    result = runner.invoke(app, ["run", "serve a drink", "--trace", str(tmp_path / "t.jsonl")])
    assert result.exit_code == 3 and "--policy expert" in result.output


@pytest.mark.slow
def test_ambiguous_impossible_and_unknown_goals(tmp_path: Path):
    result = runner.invoke(app, ["run", "give the cup to the person", "--scenario", "distractors", "--policy", "expert",
                                 "--trace", str(tmp_path / "a.jsonl")])
    assert result.exit_code == 3 and "--choose object=blue_cup" in result.output
    result = runner.invoke(app, ["run", "tidy the table", "--policy", "expert", "--trace", str(tmp_path / "b.jsonl")])
    assert result.exit_code == 3 and "no bin" in result.output, "the kitchen has nowhere to tidy into"
    result = runner.invoke(app, ["run", "bring me the banana", "--policy", "expert", "--trace", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 2 and "banana" in result.output, "an object that does not exist is bad input"


@pytest.mark.slow
def test_serve_a_drink_end_to_end_with_video(tmp_path: Path):
    trace, video = tmp_path / "trace.jsonl", tmp_path / "serve.mp4"
    result = runner.invoke(app, ["run", "serve a drink to the person", "--policy", "expert", "--seed", "0",
                                 "--trace", str(trace), "--video", str(video)])
    assert result.exit_code == 0, result.output
    assert "succeeded: serve a drink to the person" in result.output and "3 of 3" in result.output
    assert trace.exists() and video.stat().st_size > 10_000
    replay = runner.invoke(app, ["replay", str(trace)])
    assert replay.exit_code == 0 and "handover" in replay.output
