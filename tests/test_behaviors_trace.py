"""The run trace (JSON lines through structlog), `vla-agent replay`, and `bench tree`."""

from __future__ import annotations

import json

import py_trees
import pytest
import typer
from typer.testing import CliRunner

from agent.commands_behaviors import register
from behaviors.benchmark import benchmark_tree, synthetic_graph
from behaviors.trace import Replay, TraceError, read_trace, render_snapshot
from tests.test_behaviors_debugger import fake_executor


@pytest.fixture(autouse=True)
def _clean_blackboard():
    yield
    py_trees.blackboard.Blackboard.clear()


@pytest.fixture
def trace(tmp_path):
    path = tmp_path / "runs" / "r1" / "trace.jsonl"
    ex = fake_executor(path)
    ex.config.action_summary_every = 5
    out = ex.run()
    ex.close()
    assert out.status == "succeeded" and out.trace == str(path)
    return path


def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def _main() -> None:
        pass

    bench = typer.Typer()
    a.add_typer(bench, name="bench")
    register(a)
    return a


def test_trace_events_and_py_trees_js_snapshots(trace):
    events = read_trace(trace)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    for kind in ("tick", "subtask_started", "subtask_succeeded", "actions", "belief_changed"):
        assert kind in kinds
    start = events[0]
    assert start["goal"] == "serve a drink" and start["seed"] == 0 and [n["id"] for n in start["graph"]["nodes"]] == ["look1", "pick1", "hand1"]
    ticks = [e for e in events if e["event"] == "tick"]
    assert [t["tick"] for t in ticks] == list(range(1, len(ticks) + 1))
    snaps = [t["snapshot"] for t in ticks if "snapshot" in t]
    assert 1 < len(snaps) < len(ticks) / 2  # only when the tree changed
    snap = snaps[0]
    assert set(snap) >= {"timestamp", "behaviours", "visited_path", "blackboard", "activity"}
    node = next(iter(snap["behaviours"].values()))
    assert set(node) == {"id", "status", "name", "colour", "children", "data"}
    assert set(snap["blackboard"]) == {"behaviours", "data"} and "belief" in snap["blackboard"]["data"]
    assert all(v in snap["behaviours"] for v in snap["visited_path"])
    assert all("visited_path" in t and "time" in t for t in ticks)
    changed = next(e for e in events if e["event"] == "belief_changed")
    assert changed["became_true"] == ["visible(cup)"]
    assert all(json.loads(line) for line in trace.read_text().splitlines())


def test_replay_redraws_the_tree_at_any_tick(trace):
    rp = Replay.load(trace)
    early, late = rp.tree_at(3), rp.tree_at(rp.last_tick)
    assert "look1: do look1" in early and "hand1: do hand1" in late
    assert early != late
    assert "✓" in late  # py_trees' unicode status marks
    assert rp.tree_at(0) is None


def test_replay_command_prints_timeline_and_tree(trace):
    result = CliRunner().invoke(app(), ["replay", str(trace), "--tick", "5"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("subtask_started", "pick1 pick(thing)", "+holding(cup)", "SUCCEEDED", "tree after tick 5", "look1: do look1"):
        assert text in result.output


def test_replay_bad_input(tmp_path, trace):
    runner = CliRunner()
    missing = runner.invoke(app(), ["replay", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"event": "tick"}\n')
    bad = runner.invoke(app(), ["replay", str(junk)])
    assert bad.exit_code == 2 and "not a run trace" in bad.output
    out_of_range = runner.invoke(app(), ["replay", str(trace), "--tick", "100000"])
    assert out_of_range.exit_code == 2 and "--tick must be within" in out_of_range.output
    truncated = tmp_path / "cut.jsonl"
    truncated.write_text(trace.read_text()[:-40])
    assert Replay.load(truncated).finished is None  # a killed run still replays
    with pytest.raises(TraceError):
        read_trace(junk)


def test_snapshot_round_trip_uses_py_trees_display(trace):
    snap = next(e["snapshot"] for e in read_trace(trace) if "snapshot" in e)
    assert render_snapshot(snap, unicode=False).startswith("{-} goal: serve a drink")


def test_bench_tree_command_and_size():
    g = synthetic_graph(30)
    assert len(g) == 3
    result = CliRunner().invoke(app(), ["bench", "tree", "--ticks", "200"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "nodes in the tree" in result.output and "30" in result.output
    r = benchmark_tree(30, ticks=200)
    assert r.nodes == 30 and r.tree_tick_us > 0


def test_debug_command_bad_scenario_is_bad_input():
    result = CliRunner().invoke(app(), ["debug", "serve a drink", "--scenario", "no_such_room"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "no_such_room is not a usable scenario" in result.output
