"""Closed-loop skill evaluation: trials through the behaviour tree, judged by perception and ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import policy.closed_loop as closed_loop
from agent.cli import app
from policy.closed_loop import plan_trials, run_trial, tabulate, varied_scenario
from policy.recording import CollectConfig, plan_episodes
from scenarios.loading import load_scenario


def test_collecting_over_all_scenarios_skips_those_without_what_a_skill_needs():
    jobs = plan_episodes(CollectConfig(scenarios=("distractors", "kitchen", "living_room", "tidy_table"),
                                       skills=("pick", "place_in"), episodes=24))
    place_in = [j for j in jobs if j.skill == "place_in"]
    assert place_in and "kitchen" not in {j.scenario for j in place_in}, "the kitchen has no bin"
    assert {j.scenario for j in jobs if j.skill == "pick"} == {"distractors", "kitchen", "living_room", "tidy_table"}


def test_every_policy_gets_the_same_trials_on_unseen_seeds():
    jobs = plan_trials(["vla", "expert"], ["pick", "place_in"], 3, ["kitchen", "tidy_table"], first_seed=100_000)
    by_policy = {p: sorted((j[1], j[2], tuple(j[3].items()), j[4]) for j in jobs if j[0] == p) for p in ("vla", "expert")}
    assert by_policy["vla"] == by_policy["expert"]
    assert len(by_policy["vla"]) == 2 * 3 + 3, "pick in both scenarios, place_in only where there is a bin"
    assert min(j[4] for j in jobs) >= 100_000


def test_variations_widen_the_ranges_and_unknown_ones_are_refused():
    sc = load_scenario("kitchen")
    wide = varied_scenario(sc, "wide_poses").randomisation
    assert wide.object_xy == pytest.approx(2 * sc.randomisation.object_xy)
    lights = varied_scenario(sc, "lights").randomisation.light_intensity
    assert lights[0] < sc.randomisation.light_intensity[0] and lights[1] > sc.randomisation.light_intensity[1]
    with pytest.raises(ValueError, match="unknown variation 'dark'"):
        varied_scenario(sc, "dark")


def test_the_expert_succeeds_in_closed_loop_and_both_verdicts_agree():
    trial = run_trial("expert", "look_for", "kitchen", {"object": "red_cup"}, seed=100_003)
    assert trial.success and trial.agent_success and trial.truth_success, trial.reason
    assert trial.ticks > 0 and trial.sim_seconds > 0


class _Idle:
    """A policy that holds still: it must never be counted as succeeding."""

    def __init__(self, world) -> None:
        self.world = world

    def reset(self) -> None:
        pass

    def select_action(self, obs) -> np.ndarray:
        return self.world.hold_action()

    def predict_action_chunk(self, obs) -> np.ndarray:
        return np.stack([self.world.hold_action()] * 10)


class _LooksFirst(_Idle):
    """Holds still, calling `look(world)` once, at its first action (the trial's start state)."""

    def __init__(self, world, look) -> None:
        super().__init__(world)
        self.look = look

    def select_action(self, obs) -> np.ndarray:
        if self.look is not None:
            self.look(self.world)
            self.look = None
        return super().select_action(obs)


def _short_trials(monkeypatch, timeout_s: float) -> None:
    """Trials whose subtask times out after `timeout_s`: a policy that stands still only has to fail."""
    real_subtask = closed_loop.trial_subtask
    monkeypatch.setattr(closed_loop, "trial_subtask", lambda *a: real_subtask(*a).model_copy(update={"timeout_s": timeout_s}))


def test_a_policy_that_does_nothing_fails_with_the_trees_reason(monkeypatch):
    monkeypatch.setattr(closed_loop, "_factory", lambda policy, world, *rest: (lambda subtask: _Idle(world)))
    trial = run_trial("vla", "pick", "kitchen", {"object": "red_cup"}, seed=100_001)
    assert not trial.success and not trial.truth_success
    assert "stalled" in trial.reason or "timeout" in trial.reason.lower(), trial.reason
    cells = tabulate([trial])
    assert cells[("nominal", "pick", "all", "vla")].successes == 0
    assert cells[("nominal", "pick", "kitchen", "vla")].reasons[trial.reason] == 1


def test_a_drive_to_an_object_starts_with_the_object_believed(monkeypatch):
    """As in every plan (look_for, then navigate_to), the trial's set-up looks for an object not
    yet believed — the kitchen's orange ball is out of view at the start — so a drive told its
    goal from the belief has one from its first tick."""
    seen = []

    def factory(policy, world, checkpoint, runtime, perception):
        class Probe(_Idle):
            def select_action(self, obs):
                seen.append("orange_ball" in perception.belief.objects)
                return super().select_action(obs)
        return lambda subtask: Probe(world)

    monkeypatch.setattr(closed_loop, "_factory", factory)
    trial = run_trial("vla", "navigate_to", "kitchen", {"target": "orange_ball"}, seed=100_000)
    assert not trial.setup_failed and seen and seen[0], trial.reason


def test_a_drive_reports_how_far_from_the_approach_pose_it_stopped(monkeypatch):
    """navigate_to trials measure where the base stopped against the approach pose a learned
    drive is given as its goal (the expert's choice): the expert's own drive ends on it; a policy that never moves reports the distance from
    the start, and a cell sums them as the share within the tree's tolerance and medians."""
    from policy.closed_loop import Cell, arrival_summary

    expert = run_trial("expert", "navigate_to", "kitchen", {"target": "person_1"}, seed=100_002)
    assert expert.success and expert.arrival_m is not None and expert.arrival_m < 0.025 and expert.arrival_rad < 0.1
    skipped = run_trial("expert", "navigate_to", "kitchen", {"target": "red_cup"}, seed=100_002)
    assert skipped.success and skipped.ticks == 1 and skipped.arrival_m is None, "near already held: no drive to measure"

    monkeypatch.setattr(closed_loop, "_factory", lambda policy, world, checkpoint, runtime, perception: (lambda subtask: _Idle(world)))
    idle = run_trial("vla", "navigate_to", "living_room", {"target": "person_1"}, seed=100_002)
    assert not idle.success and idle.arrival_m is not None and idle.arrival_m > 0.3, idle

    cell = Cell()
    for t in (expert, idle):
        cell.add(t)
    text = arrival_summary(cell)
    assert text.startswith("1/2 within 2.5 cm and 0.1 rad; median "), text
    assert arrival_summary(Cell()) == ""


@pytest.mark.parametrize("argv,message", [
    (["--skills", "pik"], "did you mean 'pick'"),
    (["--variations", "dark"], "unknown variation 'dark'"),
    (["--scenario", "kitchn"], "did you mean 'kitchen'"),
    (["--policy", "vla", "--checkpoint", "/nonexistent"], "no VLA checkpoint"),
])
def test_bad_policy_eval_input_exits_2(argv: list[str], message: str, tmp_path: Path):
    result = CliRunner().invoke(app, ["policy", "eval", "-n", "1", *argv])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_placing_into_a_bin_is_judged_as_in_the_bin():
    """A bin is a container: a `place` trial onto it runs the planner's `place_in` subtask, so
    perception is asked `in(object, bin)` (what it can see), as the expert's table counts it."""
    from policy.closed_loop import trial_subtask
    from scenarios.loading import load_scenario

    sc = load_scenario("distractors")
    into = trial_subtask(sc, "place", {"object": "red_can", "surface": "bin"})
    assert [str(s) for s in into.success] == ["in(red_can, bin)"] and "in the bin" in into.instruction
    onto = trial_subtask(sc, "place", {"object": "red_can", "surface": "table"})
    assert [str(s) for s in onto.success] == ["on(red_can, table)"]


def test_from_start_picks_where_the_robot_stands(monkeypatch):
    """The `from_start` variation is planned for pick only, and its trial starts at the
    scenario's start pose (no navigate_to) on an object within reach from there."""
    jobs = plan_trials(["vla"], ["look_for", "pick"], 2, ["kitchen"], variations=("nominal", "from_start"))
    assert {(j[1], j[5]) for j in jobs} == {("look_for", "nominal"), ("pick", "nominal"), ("pick", "from_start")}
    import policy.episodes

    seen = {}
    real_prepare = policy.episodes.prepare

    def spy(world, skill, args, seed, config=None, **kw):
        obs, setup = real_prepare(world, skill, args, seed, config, **kw)
        seen.update(args=args, setup=setup, base=world.controller.proprioception()[:3].copy())
        world.reset(seed=seed)  # the same scene, as it started
        seen["start"] = world.controller.proprioception()[:3].copy()
        seen["in_reach"] = world.holds(f"near(robot, {args['object']})")
        seen["box_in_reach"] = world.holds("near(robot, yellow_box)")
        return obs, setup

    monkeypatch.setattr(policy.episodes, "prepare", spy)
    monkeypatch.setattr(closed_loop, "_factory", lambda policy, world, *rest: (lambda subtask: _Idle(world)))
    trial = run_trial("vla", "pick", "kitchen", {"object": "yellow_box"}, seed=100_002, variation="from_start")
    assert seen["setup"] == [] and np.allclose(seen["base"], seen["start"], atol=1e-6)
    assert seen["in_reach"] and trial.args["object"] == seen["args"]["object"] and trial.variation == "from_start"
    assert seen["box_in_reach"] == (trial.args["object"] == "yellow_box"), "the planned object is kept when it is in reach"
    assert not trial.success


def test_carrying_drives_hold_an_object_the_expert_picked_up(monkeypatch):
    """The `carrying` variation is planned for navigate_to only; a drive to an object becomes
    one to a person, and the drive starts with the carried object in the hand and believed held."""
    from policy.closed_loop import carrying_args

    jobs = plan_trials(["vla"], ["navigate_to", "pick"], 2, ["kitchen"], variations=("carrying",))
    assert {j[1] for j in jobs} == {"navigate_to"}
    sc = load_scenario("kitchen")
    args, carry = carrying_args(sc, {"target": "red_cup"}, seed=100_000)
    assert args["target"] == "person_1" and carry in sc.object_by_id()
    assert carrying_args(sc, {"target": "counter"}, seed=100_000)[0] == {"target": "counter"}, "furniture is kept"
    assert carrying_args(sc, {"target": "red_cup"}, seed=100_000) == (args, carry), "drawn with the seed"

    seen = {}

    def look(world, perception) -> None:
        seen.update(held=[o for o in world.privileged_state().robot.holding.values() if o],
                    believed=perception.belief.holds(f"holding({carry_at_run})")[0])

    monkeypatch.setattr(closed_loop, "_factory", lambda policy, world, ckpt, runtime, perception:
                        (lambda subtask: _LooksFirst(world, lambda w: look(w, perception))))
    _short_trials(monkeypatch, 2.0)
    carry_at_run = carrying_args(sc, {"target": "red_cup"}, seed=100_001)[1]
    trial = run_trial("vla", "navigate_to", "kitchen", {"target": "red_cup"}, seed=100_001, variation="carrying")
    assert trial.carrying == carry_at_run and trial.args == {"target": "person_1"}
    assert seen["held"] == [carry_at_run] and seen["believed"], seen
    assert not trial.success and "person" in trial.instruction

    class _LetsGo(_Idle):  # opens both hands: whatever else happens, the carried object is lost
        def select_action(self, obs) -> np.ndarray:
            a = self.world.hold_action()
            for side in ("left", "right"):
                a[self.world.controller.layout.slices[f"{side}.gripper"]] = 0.0
            return a

    monkeypatch.setattr(closed_loop, "_factory", lambda policy, world, *rest: (lambda subtask: _LetsGo(world)))
    trial = run_trial("vla", "navigate_to", "kitchen", {"target": "red_cup"}, seed=100_001, variation="carrying")
    assert not trial.truth_success and trial.reason == f"dropped the carried {carry_at_run}", trial.reason


def test_off_pose_starts_held_skills_off_the_approach_pose_with_the_hands_moved(monkeypatch):
    """The `off_pose` variation is planned for the skills a drive leads into; a handover trial
    starts from the same scene as the nominal one but with the base shifted off the expert's
    approach pose and the hands off their carrying postures, still holding the object."""
    jobs = plan_trials(["vla"], ["look_for", "navigate_to", "pick", "handover"], 1, ["kitchen"], variations=("off_pose",))
    assert {j[1] for j in jobs} == {"pick", "handover"}

    starts = {}

    def look(world, variation: str) -> None:
        state = world.privileged_state()
        starts[variation] = dict(base=np.array(state.robot.base), held=dict(state.robot.holding),
                                 hands=world.controller.proprioception().copy())

    _short_trials(monkeypatch, 1.0)
    args = {"object": "red_cup", "person": "person_1"}
    for variation in ("nominal", "off_pose"):
        monkeypatch.setattr(closed_loop, "_factory", lambda policy, world, *rest, v=variation:
                            (lambda subtask: _LooksFirst(world, lambda w: look(w, v))))
        trial = run_trial("vla", "handover", "kitchen", args, seed=100_004, variation=variation)
        assert not trial.success and not trial.setup_failed, trial.reason
    nominal, off = starts["nominal"], starts["off_pose"]
    assert "red_cup" in off["held"].values(), "the object is still held after the hands moved"
    shift = np.linalg.norm(off["base"][:2] - nominal["base"][:2]) + abs(off["base"][2] - nominal["base"][2])
    assert shift > 0.02, (nominal["base"], off["base"])
    assert np.abs(off["hands"][3:] - nominal["hands"][3:]).max() > 0.01, "the arms start elsewhere"
    # a pick's preconditions include visible(object), which the simulator computes on request
    monkeypatch.setattr(closed_loop, "_factory", lambda policy, world, *rest: (lambda subtask: _Idle(world)))
    trial = run_trial("vla", "pick", "kitchen", {"object": "red_cup"}, seed=100_004, variation="off_pose")
    assert not trial.success and "error" not in trial.reason, trial.reason


def test_a_start_where_a_precondition_does_not_hold_is_a_failed_set_up(monkeypatch):
    """A skill is judged from its start state: a set-up that left a precondition false in ground
    truth (here one that the set-up never made true), or an off-pose shift that undid one, is a
    failed set-up, whatever the set-up's own verdict."""
    from scenarios.predicates import Predicate

    real_subtask = closed_loop.trial_subtask
    monkeypatch.setattr(closed_loop, "trial_subtask", lambda *a: real_subtask(*a).model_copy(
        update={"preconditions": (*real_subtask(*a).preconditions, Predicate.parse("holding(yellow_box)"))}))
    monkeypatch.setattr(closed_loop, "_factory", lambda policy, world, *rest: (lambda subtask: _Idle(world)))
    args = {"object": "red_cup", "person": "person_1"}
    trial = run_trial("vla", "handover", "kitchen", args, seed=100_004, variation="off_pose")
    assert trial.setup_failed and not trial.success, trial.reason
    assert trial.reason == "setup shift_base failed: holding(yellow_box) does not hold at the skill's start", trial.reason
    trial = run_trial("vla", "handover", "kitchen", args, seed=100_004, variation="nominal")
    assert trial.setup_failed and not trial.success, trial.reason
    assert trial.reason == "setup navigate_to failed: holding(yellow_box) does not hold at the skill's start", trial.reason


def test_the_table_rates_started_trials_and_says_how_many_set_ups_failed():
    from agent.commands_policy import markdown
    from policy.closed_loop import Trial

    def trial(seed: int, success: bool, setup_failed: bool = False) -> Trial:
        return Trial(policy="vla", skill="handover", scenario="distractors", seed=seed, variation="nominal",
                     args={"object": "blue_bottle", "person": "person_1"}, instruction="hand it over", success=success,
                     agent_success=success, truth_success=success, setup_failed=setup_failed,
                     reason="" if success else ("setup navigate_to failed: holding(blue_bottle) does not hold" if setup_failed else "timed out"))

    table = markdown(tabulate([trial(0, True), trial(1, False), trial(2, False, setup_failed=True)]), ["vla"], ["nominal"])
    assert "| handover | distractors | 1/2 (50%), 1 set-up failed |" in table
    assert "| **handover** | all | 1/2 (50%), 1 set-up failed |" in table
