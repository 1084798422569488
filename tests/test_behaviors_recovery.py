"""Recovery: a subtask that fails for good makes the executor ask the planner for a repair."""

from __future__ import annotations

import numpy as np
import py_trees
import pytest

from behaviors.context import BehaviorConfig
from behaviors.executor import Executor
from behaviors.protocols import ReplanRefused
from planner.taskgraph import TaskGraph
from tests.behaviors_fakes import FakeFactory, FakePerception, FakeWorld, Script, subtask


@pytest.fixture(autouse=True)
def _clean_blackboard():
    yield
    py_trees.blackboard.Blackboard.clear()


def graph(*ids: str) -> TaskGraph:
    g = TaskGraph(goal="serve")
    prev: list[str] = []
    for sid in ids:
        g.add(subtask(sid, f"visible({sid})", retries=1), after=prev)
        prev = [sid]
    return g


class ScriptedReplanner:
    """Returns the given graphs in turn and records what it was asked."""

    def __init__(self, *graphs: TaskGraph) -> None:
        self.graphs = list(graphs)
        self.calls: list[tuple[str, list[str], set[str]]] = []

    def __call__(self, goal, belief, graph, failed, reasons):
        self.calls.append((failed.id, list(reasons), {k for k, v in belief.predicates.items() if v >= 0.5}))
        if not self.graphs:
            raise ReplanRefused("no other way to do it")
        return self.graphs.pop(0)


SCRIPTS = {
    "pick": Script(0.3, effects=("visible(pick)",)),
    "hand": Script(0.3, effects=("visible(hand)",), give_up_attempts=99),  # always gives up
    "pick2": Script(0.3, effects=("visible(pick2)",)),
    "hand2": Script(0.3, effects=("visible(hand2)",)),
}
ORDER = ["pick", "hand", "pick2", "hand2"]


def run(replanner, max_replans=2):
    world = FakeWorld(SCRIPTS, ORDER)
    factory = FakeFactory(world)
    ex = Executor(world, FakePerception(), factory, graph("pick", "hand"), goal="serve", replanner=replanner,
                  config=BehaviorConfig(max_replans=max_replans))
    ex.start()
    out = ex.run()
    ex.close()
    return ex, out, factory


def test_failure_after_retries_replans_from_the_current_belief_and_succeeds():
    rp = ScriptedReplanner(graph("pick2", "hand2"))
    ex, out, factory = run(rp)
    assert out.status == "succeeded" and out.replans == 1
    failed, reasons, believed = rp.calls[0]
    assert failed == "hand" and "could not grasp" in reasons[-1]
    assert "visible(pick)" in believed  # the repair starts from what is believed now
    assert factory.made == ["pick", "hand", "hand", "pick2", "hand2"]
    ev = next(e for e in ex.events if e["event"] == "replanned")
    assert ev["subtasks"] == ["pick2", "hand2"] and "graph" in ev


def test_replans_are_bounded_and_the_chain_of_reasons_is_kept():
    rp = ScriptedReplanner(graph("hand"), graph("hand"), graph("hand"))
    ex, out, _ = run(rp, max_replans=2)
    assert out.status == "failed" and out.failed_subtask == "hand" and out.replans == 2
    assert len(rp.calls) == 2
    assert sum("could not grasp" in r for r in out.reasons) == 3
    assert out.reasons[-1] == "gave up after 2 replan(s)"


def test_a_refused_repair_fails_the_goal_with_the_planners_reason():
    ex, out, _ = run(ScriptedReplanner())
    assert out.status == "failed"
    assert out.reasons[-1] == "replanning refused: no other way to do it"


def test_no_replanner_fails_at_once():
    ex, out, _ = run(None)
    assert out.status == "failed" and out.replans == 0 and len(out.reasons) == 1


def test_planner_adapter_repairs_through_planner_replan():
    from behaviors.recovery import PlannerReplanner
    from planner.planning import plan
    from planner.scene_belief import belief_from_scenario
    from scenarios.loading import load_scenario

    sc = load_scenario("kitchen")
    belief = belief_from_scenario(sc)  # the cup stands on the table: nothing is held
    first = plan("serve a drink to the person", sc, belief)
    assert first.kind == "plan"
    handover = next(s for s in first.graph.order() if s.skill == "handover")
    rp = PlannerReplanner(sc, previous=first)
    graph = rp("serve a drink to the person", belief, first.graph, handover, ["holding(red_cup) not believed true"])
    skills = [s.skill for s in graph.order()]
    assert "pick" in skills and skills[-1] == "handover"
    assert rp.previous.graph is graph  # the next repair starts from this one
    assert "holding(red_cup)" in " ".join(graph.attrs.get("history", []))
    with pytest.raises(ReplanRefused):
        rp("serve a drink to the person", belief, graph, graph[graph.order()[0].id].model_copy(update={"id": "zz"}), ["x"])


class FakeReset:
    """A reset reflex that takes `steps` actions (world action index -2: nothing moves) and then says done."""

    def __init__(self, subtask, steps: int, log: list[str]) -> None:
        self.sid, self.steps, self.log = subtask.id, steps, log
        self.n, self.done = 0, False

    def reset(self) -> None:
        self.n, self.done = 0, False

    def select_action(self, obs):
        self.n += 1
        self.done = self.n >= self.steps
        self.log.append(self.sid)
        return np.array([-2.0, 0.0])

    def predict_action_chunk(self, obs):
        return self.select_action(obs)[None]


def run_with_reset(scripts: dict[str, Script], steps: int = 3, **config) -> tuple[Executor, object, list[str], FakeWorld]:
    world = FakeWorld(scripts, ORDER)
    log: list[str] = []
    config.setdefault("posture_reset_first", ())  # the fake "pick" is not started from the reset unless a test asks
    ex = Executor(world, FakePerception(), FakeFactory(world), graph("pick", "hand"), goal="serve",
                  config=BehaviorConfig(**config), posture_factory=lambda s: FakeReset(s, steps, log))
    ex.start()
    out = ex.run(max_ticks=2000)
    ex.close()
    return ex, out, log, world


def test_the_attempt_after_a_failed_one_starts_with_the_posture_reset():
    scripts = {**SCRIPTS, "hand": Script(0.3, effects=("visible(hand)",), give_up_attempts=1)}
    ex, out, log, world = run_with_reset(scripts)
    assert out.status == "succeeded"
    assert log == ["hand"] * 3  # once, before the retry; no first attempt is reset
    kinds = [int(a[0]) for a in world.actions]
    first_reset = kinds.index(-2)
    assert 0 in kinds[:first_reset] and kinds[first_reset:first_reset + 3] == [-2, -2, -2]
    assert 1 in kinds[first_reset + 3:]  # then the retry acts
    events = [e for e in ex.events if e["event"].startswith("posture_reset")]
    assert [e["event"] for e in events] == ["posture_reset_started", "posture_reset_finished"]
    assert events[1]["subtask"] == "hand" and events[1]["complete"] is True
    retry = next(e for e in ex.events if e["event"] == "subtask_retry")
    assert retry["time"] <= events[0]["time"]


def test_no_reset_without_a_failure_or_when_switched_off():
    _, out, log, _ = run_with_reset(SCRIPTS | {"hand": Script(0.3, effects=("visible(hand)",))})
    assert out.status == "succeeded" and log == []
    scripts = {**SCRIPTS, "hand": Script(0.3, effects=("visible(hand)",), give_up_attempts=1)}
    ex, out, log, world = run_with_reset(scripts, posture_reset=False)
    assert out.status == "succeeded" and log == [] and -2 not in [int(a[0]) for a in world.actions]


def test_a_reset_that_never_finishes_ends_after_its_time_limit():
    scripts = {**SCRIPTS, "hand": Script(0.3, effects=("visible(hand)",), give_up_attempts=1)}
    ex, out, log, _ = run_with_reset(scripts, steps=10_000, posture_reset_max_s=0.5)
    assert out.status == "succeeded" and len(log) == 10
    finished = next(e for e in ex.events if e["event"] == "posture_reset_finished")
    assert finished["complete"] is False and finished["seconds"] == pytest.approx(0.5)


def test_named_skills_start_even_their_first_attempt_with_the_reset():
    scripts = {**SCRIPTS, "hand": Script(0.3, effects=("visible(hand)",))}
    ex, out, log, world = run_with_reset(scripts, posture_reset_first=("hand",))
    assert out.status == "succeeded" and log == ["hand"] * 3  # before its one attempt; not before pick's
    kinds = [int(a[0]) for a in world.actions]
    assert kinds.index(-2) > kinds.index(0) and kinds.index(1) > kinds.index(-2)


class GoalChecker(ScriptedReplanner):
    """A replanner whose `remaining` finds what is left of the goal: the given graphs in turn."""

    def __init__(self, *left: TaskGraph | None) -> None:
        super().__init__()
        self.left = list(left)
        self.checked: list[set[str]] = []

    def remaining(self, goal, belief):
        self.checked.append({k for k, v in belief.predicates.items() if v >= 0.5})
        return self.left.pop(0) if self.left else None


def test_a_finished_plan_short_of_its_goal_goes_on_with_what_is_left():
    """'Tidy the table' planned while the can was hidden: the plan finishes, the planner then
    finds the can on the table, and the run goes on to put it away before it succeeds."""
    ok = {k: Script(0.3, effects=(f"visible({k})",)) for k in ("pick", "pick2")}
    world = FakeWorld(ok, ["pick", "pick2"])
    checker = GoalChecker(graph("pick2"))
    ex = Executor(world, FakePerception(), FakeFactory(world), graph("pick"), goal="tidy", replanner=checker)
    ex.start()
    out = ex.run()
    ex.close()
    assert out.status == "succeeded" and out.replans == 0
    assert len(checker.checked) == 2 and "visible(pick)" in checker.checked[0]  # checked from the belief after the plan
    ev = next(e for e in ex.events if e["event"] == "goal_not_done")
    assert ev["subtasks"] == ["pick2"] and ev["checks"] == 1
    assert [e["subtask"] for e in ex.events if e["event"] == "subtask_succeeded"] == ["pick", "pick2"]


def test_goal_checks_are_bounded_and_can_be_switched_off():
    ok = {"pick": Script(0.3, effects=("visible(pick)",))}
    for checks, expected in ((0, 0), (2, 2)):
        world = FakeWorld(ok, ["pick"])
        checker = GoalChecker(*[graph("pick") for _ in range(5)])  # always finds the same left over
        ex = Executor(world, FakePerception(), FakeFactory(world), graph("pick"), goal="tidy", replanner=checker,
                      config=BehaviorConfig(max_goal_checks=checks))
        ex.start()
        out = ex.run()
        ex.close()
        assert out.status == "succeeded" and len(checker.checked) == expected
