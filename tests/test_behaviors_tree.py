"""The task graph as a behaviour tree: structure, ordering, retries, timeouts, stalls — with a fake world."""

from __future__ import annotations

import numpy as np
import py_trees
import pytest
from py_trees.common import Status

from behaviors.context import BehaviorConfig
from behaviors.executor import Executor
from behaviors.tree import SubtaskRetry, components
from planner.taskgraph import TaskGraph
from tests.behaviors_fakes import FakeFactory, FakePerception, FakePolicy, FakeWorld, Script, approx, chain, subtask


def make(graph: TaskGraph, scripts: dict[str, Script], facts: set[str] | None = None, **cfg) -> tuple[Executor, FakeWorld, FakeFactory]:
    order = [s.id for s in graph.order()]
    world = FakeWorld(scripts, order, facts)
    factory = FakeFactory(world)
    cfg.setdefault("confirm_s", 0.0)
    ex = Executor(world, FakePerception(), factory, graph, goal="fake goal", config=BehaviorConfig(**cfg))
    ex.start()
    return ex, world, factory


def started(ex: Executor) -> list[str]:
    return [e["subtask"] for e in ex.events if e["event"] == "subtask_started"]


@pytest.fixture(autouse=True)
def _clean_blackboard():
    yield
    py_trees.blackboard.Blackboard.clear()


def test_unit_is_retry_over_world_timeout_over_ppa_selector():
    ex, *_ = make(chain(["t1"], pre=("visible(thing)",), retries=2), {"t1": Script(effects=("visible(t1)",))})
    unit = ex.root.children[0].children[0]
    assert isinstance(unit, SubtaskRetry) and isinstance(unit, py_trees.decorators.Retry)
    assert unit.num_failures == 3  # retries=2 → three attempts
    timeout = unit.decorated
    ppa = timeout.decorated
    assert isinstance(ppa, py_trees.composites.Selector) and ppa.memory
    done, run = ppa.children
    assert "done?" in done.name
    assert isinstance(run, py_trees.composites.Sequence) and run.memory
    assert [c.name for c in run.children] == ["t1 reset posture", "t1 pre visible(thing)", "t1 t(thing)", "t1 confirm"]
    ex.close()


def test_chain_runs_in_order_and_world_time_counts_ticks():
    g = chain(["t1", "t2", "t3"])
    ex, world, _ = make(g, {s: Script(0.5, effects=(f"visible({s})",)) for s in ("t1", "t2", "t3")})
    out = ex.run()
    assert out.status == "succeeded"
    assert started(ex) == ["t1", "t2", "t3"]
    assert approx(out.time_s, 1.5)  # 3 × 0.5 s of work, one control period per tick
    assert approx(world.time, world.steps * world.dt)
    ex.close()


def test_independent_chains_run_one_after_another_deterministically():
    g = TaskGraph(goal="tidy")
    g.add(subtask("a1", "visible(a1)", group="a"))
    g.add(subtask("b1", "visible(b1)", group="b"))
    g.add(subtask("a2", "visible(a2)", group="a"), after=["a1"])
    g.add(subtask("b2", "visible(b2)", group="b"), after=["b1"])
    assert [[s.id for s in c] for c in components(g)] == [["a1", "a2"], ["b1", "b2"]]
    ex, *_ = make(g, {s: Script(0.2, effects=(f"visible({s})",)) for s in ("a1", "a2", "b1", "b2")})
    assert [c.name for c in ex.root.children] == ["chain a", "chain b"]
    assert ex.run().status == "succeeded"
    assert started(ex) == ["a1", "a2", "b1", "b2"]
    ex.close()


def test_already_true_subtask_is_skipped_without_running_its_policy():
    ex, world, factory = make(chain(["t1", "t2"]), {"t1": Script(effects=("visible(t1)",)), "t2": Script(effects=("visible(t2)",))},
                              facts={"visible(t1)"})
    assert ex.run().status == "succeeded"
    assert factory.made == ["t2"]
    ex.close()


def test_precondition_waits_then_fails_the_attempt_with_a_reason():
    g = chain(["t1"], pre=("holding(cup)",), retries=0)
    ex, world, factory = make(g, {"t1": Script(effects=("visible(t1)",))}, precondition_wait_s=0.5)
    out = ex.run()
    assert out.status == "failed" and out.failed_subtask == "t1"
    assert "holding(cup)" in out.reasons[0]
    assert factory.made == []  # the skill never started
    assert approx(out.time_s, 0.5) or out.time_s <= 0.55
    ex.close()


def test_retry_after_policy_gives_up_then_succeeds():
    ex, world, factory = make(chain(["t1"], retries=2), {"t1": Script(0.3, effects=("visible(t1)",), give_up_attempts=2)})
    out = ex.run()
    assert out.status == "succeeded"
    assert factory.attempts["t1"] == 3
    retries = [e for e in ex.events if e["event"] == "subtask_retry"]
    assert [e["attempt"] for e in retries] == [2, 3]
    assert all("could not grasp" in e["reason"] for e in retries)
    ex.close()


def test_retries_exhausted_fail_the_goal_with_the_reason():
    ex, *_ = make(chain(["t1", "t2"], retries=1), {"t1": Script(effects=("visible(t1)",), give_up_attempts=5),
                                                  "t2": Script(effects=("visible(t2)",))})
    out = ex.run()
    assert out.status == "failed" and out.failed_subtask == "t1"
    assert "could not grasp" in out.reasons[0]
    assert started(ex) == ["t1"]
    ex.close()


def test_timeout_counts_simulated_seconds():
    ex, world, factory = make(chain(["t1"], timeout=2.0, retries=1), {"t1": Script(effects=("visible(t1)",), never=True)})
    out = ex.run()
    assert out.status == "failed"
    assert "timed out" in out.reasons[0]
    assert factory.attempts["t1"] == 2
    assert 4.0 <= out.time_s <= 4.2  # two attempts of 2 s of world time, whatever the wall clock did
    ex.close()


def test_stall_detector_fails_an_attempt_that_makes_no_progress():
    ex, world, factory = make(chain(["t1"], timeout=30.0, retries=1),
                              {"t1": Script(0.5, effects=("visible(t1)",), stall_attempts=1)}, stall_s=2.0)
    out = ex.run()
    assert out.status == "succeeded"
    retry = next(e for e in ex.events if e["event"] == "subtask_retry")
    assert retry["reason"].startswith("stalled: no progress for 2.0 s")
    assert 2.0 <= retry["time"] <= 2.2  # well before the 30 s timeout
    ex.close()


def test_action_chunks_are_consumed():
    ex, world, factory = make(chain(["t1"]), {"t1": Script(1.0, effects=("visible(t1)",))}, chunk_actions=5)
    assert ex.run().status == "succeeded"
    assert len([a for a in world.actions if a[0] >= 0]) == 20
    ex.close()


def test_blackboard_keys_have_declared_access():
    ex, *_ = make(chain(["t1"]), {"t1": Script(effects=("visible(t1)",))})
    ex.tick()
    bb = py_trees.blackboard.Blackboard
    leaf = next(n for n in ex.root.iterate() if n.name == "t1 t(thing)")
    client = leaf.blackboards[0]
    assert f"{ex.namespace}/belief" in client.read and f"{ex.namespace}/last_action" in client.write
    assert bb.get(f"{ex.namespace}/subtask") == "t1"
    assert bb.get(f"{ex.namespace}/last_action")["subtask"] == "t1"
    with pytest.raises(AttributeError):
        client.subtask = "x"  # not declared writable
    ex.close()
    assert not bb.exists(f"{ex.namespace}/belief")


def test_runs_are_identical_whatever_the_wall_clock(monkeypatch):
    scripts = {"t1": Script(0.4, effects=("visible(t1)",), stall_attempts=1), "t2": Script(0.6, effects=("visible(t2)",))}
    a, wa, _ = make(chain(["t1", "t2"]), scripts, stall_s=1.0)
    out_a = a.run()
    a.close()
    import time

    clock = iter(range(0, 10**9, 1000))  # a wall clock that jumps 1000 s per reading
    monkeypatch.setattr(time, "monotonic", lambda: float(next(clock)))
    b, wb, _ = make(chain(["t1", "t2"]), scripts, stall_s=1.0)
    out_b = b.run()
    b.close()
    assert out_a.status == out_b.status == "succeeded"
    assert out_a.ticks == out_b.ticks and len(wa.actions) == len(wb.actions)


def test_root_status_and_tree_render():
    ex, *_ = make(chain(["t1"]), {"t1": Script(effects=("visible(t1)",))})
    ex.tick()
    assert ex.root.status == Status.RUNNING
    text = py_trees.display.unicode_tree(ex.root, show_status=True)
    assert "t1 t(thing)" in text
    ex.close()


def test_success_waits_for_confirmation_and_for_a_policy_that_says_when_it_is_done():
    from tests.behaviors_fakes import FakePolicy

    class SlowFinisher(FakePolicy):
        @property
        def done(self) -> bool:  # keeps moving (e.g. lifting) for 20 steps after the effect shows
            return self.calls >= 30

    g = chain(["t1", "t2"])
    scripts = {"t1": Script(0.5, effects=("visible(t1)",)), "t2": Script(0.5, effects=("visible(t2)",))}
    world = FakeWorld(scripts, ["t1", "t2"])
    factory = FakeFactory(world)
    policies = {"t1": SlowFinisher(0), "t2": FakePolicy(1)}
    ex = Executor(world, FakePerception(), lambda s: (factory(s), policies[s.id])[1], g, goal="g",
                  config=BehaviorConfig(confirm_s=0.2, settle_s=5.0))
    ex.start()
    out = ex.run()
    assert out.status == "succeeded"
    t1_steps = sum(1 for a in world.actions if a[0] == 0)
    assert t1_steps == 30  # not cut off when visible(t1) first showed (step 10)
    t2_steps = sum(1 for a in world.actions if a[0] == 1)
    assert t2_steps == 10 + 4  # 0.5 s of work, then 0.2 s of confirmation
    ex.close()


class _ArmComesToRest:
    """A learned manipulation policy: it moves for `moves_for` s (the grasp, lift and retract), then
    holds still; it cannot say when it is done."""

    def __init__(self, index: int, moves_for: float, dt: float = 0.05) -> None:
        self.index, self.steps_moving, self.steps = index, round(moves_for / dt), 0

    def reset(self) -> None:
        self.steps = 0

    def select_action(self, obs) -> np.ndarray:
        self.steps += 1
        return np.array([float(self.index), 1.0 if self.steps <= self.steps_moving else 0.0])

    def predict_action_chunk(self, obs) -> np.ndarray:
        return self.select_action(obs)[None]


@pytest.mark.parametrize("moves_for, expected_steps", [
    (0.8, 10 + 20),  # at rest before learned_settle_s is over: 1 s of settling
    (2.5, 50 + 10),  # still moving after it: until 0.5 s at rest (2.5 s of motion, then 0.5 s still)
    (9.0, 10 + 60),  # never at rest in time: learned_settle_max_s after the grasp is believed
])
def test_a_policy_without_done_keeps_acting_after_a_grasp_until_its_arm_is_at_rest(moves_for, expected_steps):
    """A learned policy cannot say its lift is over: after holding(...) first shows it acts on for
    learned_settle_s and then until its own state stands still for learned_settle_still_s, at
    most learned_settle_max_s; a visible(...) effect ends the skill after the confirmation alone."""
    from tests.behaviors_fakes import FakeFactory, FakeWorld, subtask

    g = TaskGraph(goal="g")
    g.add(subtask("t1", "holding(t1)", timeout=20.0))
    g.add(subtask("t2", "visible(t2)"), after=["t1"])
    world = FakeWorld({"t1": Script(0.5, effects=("holding(t1)",)), "t2": Script(0.5, effects=("visible(t2)",))}, ["t1", "t2"])
    factory = FakeFactory(world)
    policies = {"t1": _ArmComesToRest(0, moves_for), "t2": FakePolicy(1)}
    ex = Executor(world, FakePerception(), lambda s: (factory(s), policies[s.id])[1], g, goal="g",
                  config=BehaviorConfig(confirm_s=0.2, learned_settle_s=1.0, learned_settle_still_s=0.5, learned_settle_max_s=3.0))
    ex.start()
    assert ex.run().status == "succeeded"
    assert abs(sum(1 for a in world.actions if a[0] == 0) - expected_steps) <= 1, sum(1 for a in world.actions if a[0] == 0)
    assert sum(1 for a in world.actions if a[0] == 1) == 10 + 4, "0.5 s of work, then 0.2 s of confirmation"
    ex.close()


@pytest.mark.parametrize("lets_go, release_done, expected_steps", [
    (True, True, 10 + 20),  # out of the hand: done learned_settle_s after the effect, moving or not
    (True, False, 10 + 60),  # switched off: never at rest, so learned_settle_max_s
    (False, True, 10 + 60),  # the effect shows but the object is still believed in hand: as for a grasp
])
def test_a_learned_release_ends_once_the_object_is_out_of_the_hand(lets_go, release_done, expected_steps):
    """A learned handover whose arm never comes to rest: once given(...) has been believed
    learned_settle_s with holding(...) no longer believed, it is done; it does not act on until
    learned_settle_max_s (in the simulator such hands went back for the cup they had let go)."""
    g = TaskGraph(goal="g")
    g.add(subtask("handover", "given(thing, person)", pre=("holding(thing)",), timeout=20.0))
    removes = ("holding(thing)",) if lets_go else ()
    world = FakeWorld({"handover": Script(0.5, effects=("given(thing, person)",), removes=removes)}, ["handover"],
                      facts={"holding(thing)"})
    factory = FakeFactory(world)
    ex = Executor(world, FakePerception(), lambda s: (factory(s), _ArmComesToRest(0, 99.0))[1], g, goal="g",
                  config=BehaviorConfig(confirm_s=0.2, learned_settle_s=1.0, learned_settle_still_s=0.5, learned_settle_max_s=3.0,
                                        learned_release_done=release_done, posture_reset=False))
    ex.start()
    assert ex.run().status == "succeeded"
    assert abs(len(world.actions) - expected_steps) <= 1, len(world.actions)
    ex.close()


class _Guarded(_ArmComesToRest):
    """A policy wrapped in a grip guard that changed some of its actions (`closed_steps`)."""

    closed_steps = 7


def test_an_attempt_whose_grip_guard_acted_says_so_in_the_trace():
    g = TaskGraph(goal="g")
    g.add(subtask("t1", "holding(t1)", timeout=20.0))
    g.add(subtask("t2", "visible(t2)"), after=["t1"])
    world = FakeWorld({"t1": Script(0.5, effects=("holding(t1)",)), "t2": Script(0.5, effects=("visible(t2)",))}, ["t1", "t2"])
    factory = FakeFactory(world)
    policies = {"t1": _Guarded(0, 0.5), "t2": FakePolicy(1)}
    ex = Executor(world, FakePerception(), lambda s: (factory(s), policies[s.id])[1], g, goal="g",
                  config=BehaviorConfig(confirm_s=0.0, posture_reset=False))
    ex.start()
    assert ex.run().status == "succeeded"
    guarded = [e for e in ex.events if e["event"] == "grip_guard"]
    assert [(e["subtask"], e["actions"]) for e in guarded] == [("t1", 7)], "only the guarded attempt, once"
    ex.close()


class _MissesEveryThirdFrame:
    """The fake perception, missing the grasp's effect one frame in three (a detection lost)."""

    def __init__(self) -> None:
        from tests.behaviors_fakes import FakePerception

        self.inner = FakePerception()

    def reset(self) -> None:
        self.inner.reset()

    def update(self, obs):
        from perception.belief import Belief

        b = self.inner.update(obs)
        if b.time % 3 == 0:
            return Belief(time=b.time, robot=b.robot, predicates={k: v for k, v in b.predicates.items() if k != "holding(t1)"})
        return b


@pytest.mark.parametrize("gap_s, succeeds", [(0.25, True), (0.0, False)])
def test_a_missed_detection_does_not_restart_the_settling(gap_s, succeeds):
    """Believed two frames in three, never at rest: the skill ends learned_settle_max_s after the
    effect first shows — unless every missed frame restarts the clock, when it never ends."""
    from tests.behaviors_fakes import FakeFactory, FakeWorld, subtask

    g = TaskGraph(goal="g")
    g.add(subtask("t1", "holding(t1)", timeout=8.0, retries=0))
    world = FakeWorld({"t1": Script(0.5, effects=("holding(t1)",))}, ["t1"])
    factory = FakeFactory(world)
    ex = Executor(world, _MissesEveryThirdFrame(), lambda s: (factory(s), _ArmComesToRest(0, 99.0))[1], g, goal="g",
                  config=BehaviorConfig(confirm_s=0.2, learned_settle_s=1.0, learned_settle_still_s=0.5, learned_settle_max_s=3.0,
                                        belief_gap_s=gap_s))
    ex.start()
    out = ex.run()
    assert (out.status == "succeeded") == succeeds, out
    if succeeds:
        assert 3.4 <= out.time_s <= 3.7  # 0.5 s of work, then 3 s at most of settling
    ex.close()


class _DrivingPerception:
    """The fake perception, with the base moving forward as t1's policy works, up to `stop_at` m."""

    def __init__(self, stop_at: float, start_after: float = 0.0) -> None:
        from tests.behaviors_fakes import FakePerception

        self.inner = FakePerception()
        self.stop_at = stop_at
        self.start_after = start_after  # s the base stands still first (the expert's arm tuck, imitated)

    def reset(self) -> None:
        self.inner.reset()

    def update(self, obs):
        from perception.belief import Belief, RobotBelief

        b = self.inner.update(obs)
        x = min(max(float(obs["observation.state"][0]) - self.start_after, 0.0), self.stop_at)
        return Belief(time=b.time, robot=RobotBelief(pose=(x, 0.0, 0.0)), predicates=b.predicates)


@pytest.mark.parametrize("stop_at, expected_steps", [(1.0, 30), (50.0, 10 + 40)])
def test_a_learned_drive_ends_where_its_base_stops(stop_at, expected_steps):
    """A learned navigate_to is trained to stop at the approach pose, closer than where near(...)
    first holds: it drives on until the base has stood still for learned_arrive_s, at most
    learned_arrive_max_s after near(...) is first believed."""
    from tests.behaviors_fakes import FakeFactory, FakeWorld, subtask

    g = TaskGraph(goal="g")
    g.add(subtask("t1", "near(robot, t1)"))
    world = FakeWorld({"t1": Script(0.5, effects=("near(robot, t1)",))}, ["t1"])
    ex = Executor(world, _DrivingPerception(stop_at), FakeFactory(world), g, goal="g",
                  config=BehaviorConfig(confirm_s=0.0, learned_arrive_s=0.5, learned_arrive_max_s=2.0))
    ex.start()
    assert ex.run().status == "succeeded"
    steps = sum(1 for a in world.actions if a[0] == 0)
    # stop_at 1.0: near at 0.5 s, the base moves until 1.0 s, then 0.5 s still; 50: never still, capped 2 s after near
    assert abs(steps - expected_steps) <= 1, steps
    ex.close()


def test_an_always_run_drive_runs_though_near_already_holds():
    """Planned for a learned skill, a drive whose `near` holds at the start still runs its policy;
    without the flag it is skipped as already done. A base that never sets off is not "arrived"
    the moment it stands still: the drive ends learned_arrive_max_s after near(...)."""
    from tests.behaviors_fakes import FakeFactory, FakePerception, FakeWorld, subtask

    for always_run, expected in ((False, 0), (True, 40)):
        g = TaskGraph(goal="g")
        g.add(subtask("t1", "near(robot, t1)").model_copy(update={"always_run": always_run}))
        world = FakeWorld({"t1": Script(0.5, effects=("near(robot, t1)",))}, ["t1"], facts={"near(robot, t1)"})
        ex = Executor(world, FakePerception(), FakeFactory(world), g, goal="g",
                      config=BehaviorConfig(confirm_s=0.0, learned_arrive_s=0.5, learned_arrive_max_s=2.0))
        ex.start()
        assert ex.run().status == "succeeded"
        assert abs(sum(1 for a in world.actions if a[0] == 0) - expected) <= 1, (always_run, len(world.actions))
        ex.close()


def test_a_learned_drive_that_pauses_before_setting_off_has_not_arrived():
    """The expert tucks its arms before driving, base still, and a learned drive imitates the pause:
    with near(...) already believed, the drive still runs until the base stops after setting off
    (1 s still, 1 m of driving, then 0.5 s still: 2.5 s), not 0.5 s into the pause."""
    from tests.behaviors_fakes import FakeFactory, FakeWorld, subtask

    g = TaskGraph(goal="g")
    g.add(subtask("t1", "near(robot, t1)").model_copy(update={"always_run": True}))
    world = FakeWorld({"t1": Script(0.5, effects=("near(robot, t1)",))}, ["t1"], facts={"near(robot, t1)"})
    ex = Executor(world, _DrivingPerception(1.0, start_after=1.0), FakeFactory(world), g, goal="g",
                  config=BehaviorConfig(confirm_s=0.0, learned_arrive_s=0.5, learned_arrive_max_s=4.0))
    ex.start()
    assert ex.run().status == "succeeded"
    assert abs(sum(1 for a in world.actions if a[0] == 0) - 50) <= 1, len(world.actions)
    ex.close()


def test_a_drive_that_knows_its_goal_is_not_over_while_it_is_away_from_it():
    """A goal-reading drive reports `arrived`: False while its goal pose is still away (a pause
    on the way, here from 0.7 s, is not an arrival), True once there (step 40)."""
    from tests.behaviors_fakes import FakeFactory, FakePolicy, FakeWorld, subtask

    class GoalPolicy(FakePolicy):
        @property
        def arrived(self) -> bool:
            return self.calls >= 40

    g = TaskGraph(goal="g")
    g.add(subtask("t1", "near(robot, t1)"))
    world = FakeWorld({"t1": Script(0.5, effects=("near(robot, t1)",))}, ["t1"])
    ex = Executor(world, _DrivingPerception(0.7), lambda s: GoalPolicy(FakeFactory(world)(s).index), g, goal="g",
                  config=BehaviorConfig(confirm_s=0.0, learned_arrive_s=0.5, learned_arrive_max_s=4.0))
    ex.start()
    assert ex.run().status == "succeeded"
    assert abs(sum(1 for a in world.actions if a[0] == 0) - 40) <= 1, len(world.actions)
    ex.close()


def test_a_skill_that_drops_what_it_needs_in_hand_fails_at_once_not_at_its_timeout():
    g = chain(["t1"], pre=("holding(cup)",), timeout=30.0, retries=0)
    # 0.3 s in, the cup leaves the hand, seen elsewhere, and the success never comes: the policy would go on to the timeout
    ex, world, factory = make(g, {"t1": Script(0.3, effects=("seen(cup)",), removes=("holding(cup)",))}, facts={"holding(cup)"},
                              lost_object_s=1.0)
    unit = ex.root.children[0].children[0]
    run = unit.decorated.decorated.children[1]
    assert [c.name for c in run.children] == ["t1 reset posture", "t1 pre holding(cup)", "t1 keeps holding(cup)", "t1 confirm"]
    assert isinstance(run.children[2], py_trees.decorators.EternalGuard)
    out = ex.run()
    assert out.status == "failed" and out.failed_subtask == "t1"
    assert "lost holding(cup)" in out.reasons[0] and "visible(t1) not believed" in out.reasons[0]
    assert "seen elsewhere" in out.reasons[0]
    assert 1.25 <= out.time_s <= 1.45  # dropped at 0.3 s, failed 1 s later, not after 30 s
    ex.close()


def test_an_object_not_seen_since_it_left_the_hand_gets_longer_to_be_found():
    """Into a bin or behind the hand, a released object's place is perception's guess for a
    while: the guard waits `lost_unseen_s` before calling it lost."""
    g = chain(["t1"], pre=("holding(cup)",), timeout=30.0, retries=0)
    ex, *_ = make(g, {"t1": Script(0.3, removes=("holding(cup)",))}, facts={"holding(cup)"}, lost_object_s=1.0, lost_unseen_s=3.0)
    out = ex.run()
    assert out.status == "failed" and "not seen since" in out.reasons[0]
    assert 3.25 <= out.time_s <= 3.45
    ex.close()


def test_a_release_that_delivers_the_object_is_not_a_drop():
    g = chain(["t1"], pre=("holding(cup)",), timeout=30.0, retries=0)
    ex, *_ = make(g, {"t1": Script(0.3, effects=("visible(t1)",), removes=("holding(cup)",))}, facts={"holding(cup)"}, lost_object_s=0.1)
    assert ex.run().status == "succeeded"
    ex.close()


def test_an_object_let_go_but_still_at_the_fingers_is_not_lost():
    """Squeezed onto a palm, or let go and not yet withdrawn: not a drop, and not a success
    either (perception's `given` waits for the fingers to leave), so the attempt runs on."""
    g = chain(["t1"], pre=("holding(cup)",), timeout=3.0, retries=0)
    ex, *_ = make(g, {"t1": Script(0.3, effects=("at_hand(cup)",), removes=("holding(cup)",))},
                  facts={"holding(cup)"}, lost_object_s=0.5)
    out = ex.run()
    assert out.status == "failed" and not any("lost holding" in r for r in out.reasons)
    assert out.time_s >= 3.0 - 1e-6  # ran to its timeout
    ex.close()


def test_a_drop_is_retried_and_the_retry_finds_the_hand_empty():
    g = chain(["t1"], pre=("holding(cup)",), timeout=30.0, retries=1)
    ex, world, factory = make(g, {"t1": Script(0.3, removes=("holding(cup)",))}, facts={"holding(cup)"},
                              lost_object_s=1.0, precondition_wait_s=0.5)
    out = ex.run()
    assert out.status == "failed"
    retry = [e for e in ex.events if e["event"] == "subtask_retry"]
    assert len(retry) == 1 and "lost holding(cup)" in retry[0]["reason"]
    assert "holding(cup)" in out.reasons[-1] and "not believed true" in out.reasons[-1]
    assert factory.attempts["t1"] == 1  # the second attempt stopped at its precondition
    ex.close()


def test_skills_without_an_object_in_hand_are_not_guarded():
    ex, *_ = make(chain(["t1"], pre=("visible(thing)",)), {"t1": Script(effects=("visible(t1)",))}, facts={"visible(thing)"})
    run = ex.root.children[0].children[0].decorated.decorated.children[1]
    assert not any(isinstance(c, py_trees.decorators.EternalGuard) for c in run.children)
    ex.close()


@pytest.mark.parametrize("always_run, expected_steps", [(True, 60), (False, 0)])
def test_an_expert_drive_that_starts_near_its_target_may_finish(always_run, expected_steps):
    """The expert says when its drive is `done`. A repair's drive to the bin starts within `near`
    of it (after a pick from the slot beside it); cut off settle_s (2 s) after near, as a pick's
    settling is, it left the bin behind the robot and every place_in failed (expert tidy seed 27,
    session 20). An always_run drive now waits for `done` up to learned_arrive_max_s; a drive
    that is not always_run is skipped as already done."""
    from tests.behaviors_fakes import FakePolicy, FakeWorld, subtask

    class ExpertDrive(FakePolicy):
        @property
        def done(self) -> bool:
            return self.calls >= 60  # 3 s of driving

    g = TaskGraph(goal="g")
    g.add(subtask("t1", "near(robot, t1)").model_copy(update={"always_run": always_run}))
    world = FakeWorld({"t1": Script(0.5, effects=("near(robot, t1)",))}, ["t1"], facts={"near(robot, t1)"})
    ex = Executor(world, FakePerception(), lambda s: ExpertDrive(0), g, goal="g",
                  config=BehaviorConfig(confirm_s=0.0, settle_s=2.0, learned_arrive_max_s=10.0))
    ex.start()
    assert ex.run().status == "succeeded"
    assert abs(sum(1 for a in world.actions if a[0] == 0) - expected_steps) <= 1, len(world.actions)
    ex.close()
