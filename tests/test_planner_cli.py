"""`vla-agent plan` and `vla-agent planner ...`, through typer's CliRunner on a bare app."""

from __future__ import annotations

import os

# One torch thread for the shared MiniLM encoder in this test process: on shared cores two
# threads make each forward pass 10-30x slower (see planner.language.Encoder).
os.environ.setdefault("VLA_AGENT_PLANNER_THREADS", "1")

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.commands_plan import register

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    from agent.logging import configure_logging

    configure_logging()  # what the main CLI's callback does: warnings only, to stderr
    app = typer.Typer()
    register(app)
    return app


def test_plan_prints_the_graph_and_writes_files(app, tmp_path: Path):
    result = runner.invoke(app, ["plan", "serve a drink", "--scenario", "kitchen",
                                 "--out-json", str(tmp_path / "g.json"), "--dot", str(tmp_path / "g.dot")])
    assert result.exit_code == 0, result.output
    assert '"pick up the red cup"' in result.output and "handover(red_cup, person_1)" in result.output
    data = json.loads((tmp_path / "g.json").read_text())
    assert [n["id"] for n in data["nodes"]] == ["t1", "t2", "t3", "t4", "t5"]
    assert "t4 -> t5" in (tmp_path / "g.dot").read_text()


def test_plan_json_outcome(app):
    result = runner.invoke(app, ["plan", "tidy the table", "--scenario", "tidy_table", "--json"])
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["kind"] == "plan" and len(out["graph"]["nodes"]) == 15


def test_plan_asks_back_and_takes_the_answer(app):
    result = runner.invoke(app, ["plan", "bring me the cup", "--scenario", "distractors"])
    assert result.exit_code == 3
    assert "Which cup" in result.output and "--choose object=green_cup" in result.output
    result = runner.invoke(app, ["plan", "bring me the cup", "--scenario", "distractors", "--choose", "object=green_cup"])
    assert result.exit_code == 0 and "pick up the green cup" in result.output
    assert runner.invoke(app, ["plan", "bring me the cup", "--choose", "object"]).exit_code == 2


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["plan", ""], 2, "empty"),
    (["plan", "x" * 10_240], 2, "at most 300"),
    (["plan", "Bring mir bitte die rote Tasse"], 2, "English"),
    (["plan", "open the fridge"], 2, "closest known goals"),
    (["plan", "bring me the purple cup"], 2, "no purple cup"),
    (["plan", "tidy the table"], 3, "no bin"),
    (["plan", "serve a drink", "--scenario", "kitchn"], 2, "did you mean 'kitchen'"),
])
def test_plan_errors_have_exit_codes(app, args, code, needle):
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_png_without_graphviz_fails_clearly(app, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = runner.invoke(app, ["plan", "serve a drink", "--png", str(tmp_path / "g.png")])
    assert result.exit_code == 1 and "Graphviz is not installed" in result.output


def test_eval_prints_accuracy_and_fails_below_target(app, tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text(
        "cases:\n"
        "  - {scenario: kitchen, goal: serve a drink, plan: [{fetch: [red_cup, person_1]}]}\n"
        "  - {scenario: distractors, goal: bring me the cup, ask: [red_cup, blue_cup, green_cup]}\n"
        "  - {scenario: kitchen, goal: tidy the table, refuse: no bin}\n"
    )
    result = runner.invoke(app, ["planner", "eval", "--goalset", str(good)])
    assert result.exit_code == 0, result.output
    assert "accuracy: 3/3 = 100.0% exact" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases:\n  - {scenario: kitchen, goal: serve a drink, plan: [{pick: red_cup}]}\n")
    result = runner.invoke(app, ["planner", "eval", "--goalset", str(bad)])
    assert result.exit_code == 1 and "MISS" in result.output


def test_bench_prints_percentiles(app):
    result = runner.invoke(app, ["planner", "bench", "--repeats", "1"])
    assert result.exit_code in (0, 1), result.output  # 1 = slower than the 20 ms target (a busy machine)
    assert "p50 (ms)" in result.output and "p95 (ms)" in result.output
    assert runner.invoke(app, ["planner", "bench", "--repeats", "0"]).exit_code == 2


def test_validate_and_library_commands(app, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("methods:\n  - name: x\n    slots: {o: {type: object}}\n    steps: [pikc(o)]\n    examples: [do x]\n")
    result = runner.invoke(app, ["planner", "validate", str(bad)])
    assert result.exit_code == 2 and "bad.yaml:4:" in result.output and "did you mean 'pick'" in result.output
    result = runner.invoke(app, ["planner", "library"])
    assert result.exit_code == 0 and "handover" in result.output and "serve_drink" in result.output
