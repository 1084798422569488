"""The step-through debugger: its Python API, and the prompt driven through a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import py_trees
import pytest
from py_trees.common import Status

from behaviors.debugger import DebugError, Debugger
from behaviors.executor import Executor
from planner.taskgraph import TaskGraph
from tests.behaviors_fakes import FakeFactory, FakePerception, FakeWorld, Script, subtask

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_blackboard():
    yield
    py_trees.blackboard.Blackboard.clear()


def fake_graph() -> TaskGraph:
    g = TaskGraph(goal="serve")
    g.add(subtask("look1", "visible(cup)", retries=1))
    g.add(subtask("pick1", "holding(cup)", pre=("visible(cup)",), retries=1), after=["look1"])
    g.add(subtask("hand1", "given(cup, person)", pre=("holding(cup)",), retries=0), after=["pick1"])
    return g


SCRIPTS = {"look1": Script(0.5, effects=("visible(cup)",)), "pick1": Script(1.0, effects=("holding(cup)",), rests=True),
           "hand1": Script(0.5, effects=("given(cup, person)",), removes=("holding(cup)",), rests=True)}


def fake_executor(trace: Path | None = None) -> Executor:
    g = fake_graph()
    world = FakeWorld(SCRIPTS, [s.id for s in g.order()])
    ex = Executor(world, FakePerception(), FakeFactory(world), g, goal="serve a drink", trace=trace, scenario="fake", seed=0)
    ex.start()
    return ex


def test_step_and_breakpoint_before_a_subtask_leave_world_time_alone():
    ex = fake_executor()
    dbg = Debugger(ex)
    st = dbg.step(3)
    assert st.tick == 3 and st.subtask == "look1" and st.paused is None
    dbg.add_breakpoint("pick1")
    st = dbg.cont()
    assert st.paused and "pick1" in st.paused
    assert st.subtask == "look1"  # paused *before* pick1 starts
    t_paused = st.time
    assert dbg.step(1).time == pytest.approx(t_paused + 0.05)  # resuming moves on by exactly one period
    assert dbg.status.subtask == "pick1"
    assert dbg.cont().outcome.status == "succeeded"
    ex.close()


def test_pausing_does_not_change_the_run():
    plain = fake_executor()
    out_plain = plain.run()
    plain.close()
    ex = fake_executor()
    dbg = Debugger(ex)
    for spec in ("pick1", "hand", "holding(cup)"):
        dbg.add_breakpoint(spec)
    pauses = 0
    while not dbg.cont().finished:
        pauses += 1
    assert pauses == 4  # before pick1, holding(cup) true, before hand1, holding(cup) false
    assert ex.outcome.status == "succeeded"
    assert ex.outcome.time_s == pytest.approx(out_plain.time_s)
    assert [list(a) for a in ex.world.actions] == [list(a) for a in plain.world.actions]
    ex.close()


def test_next_subtask_stops_before_each_subtask():
    ex = fake_executor()
    dbg = Debugger(ex)
    seen = []
    while not (st := dbg.next_subtask()).finished:
        seen.append(st.paused.split("before ")[-1])
    assert seen == ["look1: do look1", "pick1: do pick1", "hand1: do hand1"]
    ex.close()


def test_predicate_breakpoint_pauses_when_the_belief_flips():
    ex = fake_executor()
    dbg = Debugger(ex)
    dbg.add_breakpoint("holding(cup)")
    st = dbg.cont()
    assert "holding(cup) became true" in st.paused
    assert dbg.belief().holds("holding(cup)")[0]
    ex.close()


def test_forced_failure_of_a_skill_is_retried_and_forced_unit_failure_fails_the_goal():
    ex = fake_executor()
    dbg = Debugger(ex)
    dbg.force("look1.skill", "failure")  # once: the first attempt fails, the retry succeeds
    assert dbg.cont().outcome.status == "succeeded"
    retry = next(e for e in ex.events if e["event"] == "subtask_retry")
    assert "forced FAILURE" in retry["reason"]
    ex.close()

    ex = fake_executor()
    dbg = Debugger(ex)
    dbg.force("pick1", Status.FAILURE)
    out = dbg.cont().outcome
    assert out.status == "failed" and out.failed_subtask == "pick1" and "forced FAILURE" in out.reasons[0]
    ex.close()


def test_forced_success_skips_a_subtask():
    ex = fake_executor()
    dbg = Debugger(ex)
    dbg.force("look1", "success")
    st = dbg.step(1)
    assert st.subtask == "pick1" and ex.ctx.policy_factory.made == []  # look1 never ran its policy
    assert ex.world.actions[0][0] == -1  # pick1 holds the robot while it waits for visible(cup)
    ex.close()


def test_inspection_and_bad_input(tmp_path):
    ex = fake_executor()
    dbg = Debugger(ex)
    dbg.step(2)
    assert "look1: do look1" in dbg.tree_text() and "step 2" in dbg.tree_text()
    bb = dbg.blackboard()
    assert bb["subtask"] == "look1" and bb["belief"]["predicates"] == {} and bb["last_action"]["subtask"] == "look1"
    assert [n["id"] for n in dbg.plan()["nodes"]] == ["look1", "pick1", "hand1"]
    assert "* look1" in dbg.plan_text()
    saved = dbg.frame(tmp_path / "frames")
    assert saved and saved[0].suffix == ".png" and saved[0].exists()
    with pytest.raises(DebugError, match="neither a subtask"):
        dbg.add_breakpoint("dance")
    with pytest.raises(DebugError, match="not a predicate"):
        dbg.add_breakpoint("holding(a, b)")
    with pytest.raises(DebugError, match="no breakpoint"):
        dbg.remove_breakpoint(42)
    with pytest.raises(DebugError, match="no node"):
        dbg.force("nope", "failure")
    with pytest.raises(DebugError, match="positive"):
        dbg.step(0)
    bp = dbg.add_breakpoint("hand1")
    assert dbg.remove_breakpoint(bp.id) is bp and dbg.hooks() == []
    ex.close()


# ------------------------------------------------------------------------------- the prompt
FAKE_CLI = """
import sys, typer
sys.path.insert(0, {repo!r})
from agent.commands_behaviors import register
from tests.test_behaviors_debugger import fake_executor
app = typer.Typer()
register(app, session_factory=lambda goal, scenario, seed, trace: fake_executor(trace))
app()
"""


class Pty:
    """A child process on a pseudo-terminal, driven like a person at the keyboard."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True)
        os.close(slave)
        self.buffer = ""

    def expect(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                raise AssertionError(f"did not see {text!r}; output so far:\n{self.buffer}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.buffer += os.read(self.master, 65536).decode(errors="replace")
                except OSError:
                    pass
        before, _, after = self.buffer.partition(text)
        self.buffer = after
        return before + text

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


def test_debug_prompt_through_a_pty(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    trace = tmp_path / "trace.jsonl"
    p = Pty([sys.executable, "-c", FAKE_CLI.format(repo=str(REPO)), "debug", "serve a drink", "--scenario", "fake",
             "--trace", str(trace), "--frames", str(tmp_path / "frames")], cwd=tmp_path, env=env)
    p.expect("(vla-debug) ")
    p.send("help")
    out = p.expect("(vla-debug) ")
    for command in ("step", "next", "continue", "break", "tree", "bb", "belief", "frame", "plan", "quit"):
        assert command in out
    p.send("step 2")
    assert "tick 2" in p.expect("(vla-debug) ")
    p.send("break pick1")
    assert "breakpoint #1 subtask pick1" in p.expect("(vla-debug) ")
    p.send("continue")
    out = p.expect("(vla-debug) ")
    assert "paused: breakpoint #1 (pick1): before pick1" in out
    p.send("tree")
    out = p.expect("(vla-debug) ")
    assert "look1: do look1" in out and "paused before entry" in out
    p.send("bb")
    assert '"subtask": "look1"' in p.expect("(vla-debug) ")
    p.send("belief")
    assert "visible(cup)" in p.expect("(vla-debug) ")
    p.send("frame")
    assert "saved " in p.expect("(vla-debug) ")
    p.send("plan")
    assert "pick1" in p.expect("(vla-debug) ")
    p.send("break dance")
    assert "error: 'dance' is neither" in p.expect("(vla-debug) ")
    p.send("next")
    assert "paused: next subtask: before hand1" in p.expect("(vla-debug) ")
    p.send("continue")
    assert "run succeeded" in p.expect("(vla-debug) ")
    p.send("quit")
    p.expect("bye")
    assert p.close() == 0
    assert list((tmp_path / "frames").glob("*.png"))
    assert trace.exists() and '"run_finished"' in trace.read_text()
