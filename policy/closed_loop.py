"""Closed-loop success of a policy, skill by skill, with perception judging completion.

Each trial is one skill call run exactly as the agent runs it: the expert brings the world
to the skill's start state (unrecorded, as in `policy.episodes.prepare`), then the skill
is a one-subtask task graph executed by the behaviour tree — the policy under test drives
the robot from camera images, proprioception and the instruction, and camera perception
decides when the subtask is done (with the library's timeout; one attempt unless `retries`
says otherwise — retrying is the tree's job in whole runs, so the table measures the skill). Two verdicts
are kept per trial: the agent's (the tree succeeded) and the simulator's ground truth of the
same success predicates after the tree finished and the world settled; a trial counts as a
success only when both agree it succeeded.

Variations test generalisation beyond the training distribution (see `VARIATIONS`):
object and robot start poses drawn from twice the scenario's ranges, lights outside the
intensity range, and instruction phrasings that never occur in the training data.
`from_start` (pick only) starts the pick where the robot stands at the scenario's start, on
an object already within reach — how the planner plans a pick there, with no navigate_to first.
`carrying` (navigate_to only) is the drive every serve and tidy makes after its pick: the
expert first picks an object up where it lies, then the policy drives it to a person or a
piece of furniture (a drive to an object becomes one to a person, else to a surface); the
trial fails if the object is no longer held at the end.
A trial whose set-up leaves one of the skill's preconditions false in ground truth is a set-up
failure, counted apart from the skill's rate (the tables say how many).
`off_pose` (pick, handover, place, place_in) starts the skill where a learned drive leaves the
robot rather than where the expert's does: the base up to 0.3 m and 0.4 rad off the approach
pose (`policy.episodes.shift_base`) and, for the skills that start holding something, both
hands moved off their carrying postures (`policy.episodes.displace_hands`).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from policy.evaluation import episode_plan
from policy.navigation_goal import ARRIVED_M, ARRIVED_RAD, at_pose, plan_route

SKILL_NAMES = ("look_for", "navigate_to", "pick", "place", "place_in", "handover")

UNSEEN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "look_for": ("can you spot the {object}", "turn until you see the {object}"),
    "navigate_to": ("drive up to the {target}", "go over next to the {target}"),
    "pick": ("lift the {object}", "pick the {object} up"),
    "place": ("set the {object} onto the {surface}", "lay the {object} on the {surface}"),
    "place_in": ("toss the {object} into the {container}", "put the {object} inside the {container}"),
    "handover": ("offer the {object} to the {person}", "let the {person} have the {object}"),
}
"""Phrasings absent from `policy.instructions.TEMPLATES` and the skill library (held out)."""

OBSERVE_EVERY = 5  # set-up steps per frame perception sees

VARIATIONS = ("nominal", "wide_poses", "lights", "unseen_phrasing", "from_start", "carrying", "off_pose")
ONLY_FOR = {"from_start": ("pick",), "carrying": ("navigate_to",),  # variations that apply to some skills only
            "off_pose": ("pick", "handover", "place", "place_in")}


class Trial(BaseModel):
    """The result of one closed-loop skill call."""

    policy: str
    skill: str
    scenario: str
    seed: int
    variation: str
    args: dict[str, str]
    instruction: str
    carrying: str = ""  # the object held through the trial (`carrying` variation)
    success: bool
    agent_success: bool
    truth_success: bool
    setup_failed: bool = False
    reason: str = ""
    sim_seconds: float = 0.0
    wall_seconds: float = 0.0
    ticks: int = 0
    # navigate_to: where the base stopped, from the approach pose a learned drive is given as
    # its goal (the expert's choice, planned on the ground truth where the drive starts);
    # demonstrations of the next skill start there. None for a drive the tree skipped.
    arrival_m: float | None = None
    arrival_rad: float | None = None


def varied_scenario(scenario, variation: str):
    """The scenario with its randomisation ranges pushed beyond training's for `variation`."""
    r = scenario.randomisation
    if variation == "wide_poses":
        r = r.model_copy(update={"object_xy": min(0.5, 2 * r.object_xy), "robot_xy": min(1.0, 2 * r.robot_xy),
                                 "robot_yaw_deg": min(180.0, 2 * r.robot_yaw_deg)})
    elif variation == "lights":
        lo, hi = r.light_intensity
        r = r.model_copy(update={"light_intensity": (max(0.1, lo - 0.25), min(3.0, hi + 0.35))})
    elif variation not in VARIATIONS:  # the others leave the ranges as they are
        raise ValueError(f"unknown variation {variation!r} (known: {', '.join(VARIATIONS)})")
    return scenario.model_copy(update={"randomisation": r})


def unseen_instruction(scenario, skill: str, args: dict[str, str], rng: np.random.Generator) -> str:
    from policy.instructions import entity_name

    names = {k: entity_name(scenario, v, rng) for k, v in args.items()}
    return str(rng.choice(UNSEEN_TEMPLATES[skill])).format(**names)


_WORLDS: dict = {}
_POLICIES: dict = {}


def _world(scenario_name: str, variation: str):
    from scenarios.loading import load_scenario
    from scenarios.world import SimWorld

    key = (scenario_name, variation)
    if key not in _WORLDS:
        _WORLDS[key] = SimWorld(varied_scenario(load_scenario(scenario_name), variation))
    return _WORLDS[key]


def _factory(policy: str, world, checkpoint: Path | None, runtime: str = "receding", perception=None):
    """subtask -> policy; the VLA's weights are loaded once per process, run through the
    chosen inference runtime (`policy.vla.runtime.make_executor`), with navigate_to's goal
    planned from `perception`'s belief when the checkpoint reads one."""
    from policy.expert import ScriptedExpert

    if policy == "expert":
        return lambda subtask: ScriptedExpert(world, subtask.skill, list(subtask.args))
    from policy.vla import VLAPolicy
    from policy.vla.runtime import make_executor

    key = (str(checkpoint), runtime)
    if key not in _POLICIES:
        model = VLAPolicy.from_pretrained(checkpoint)
        _POLICIES[key] = (make_executor(model, runtime, model.config.n_action_steps), model.config.env_state_dim)
    from policy.navigation_goal import with_goals
    from policy.safeguards import with_safeguards

    runner, env_dim = _POLICIES[key]
    guarded = with_safeguards(lambda subtask: runner, world, perception)
    return with_goals(guarded, env_dim, world.scenario, perception)


def trial_subtask(scenario, skill: str, args: dict[str, str], approach_first: bool = False):
    """The subtask a trial runs, as the planner would write it (`planned_skill`: `place` onto a
    bin is the planner's `place_in`, as the expert's table counts it), so perception is asked
    `in`, not `on`; with `approach_first` (a learned policy) a drive runs even where `near`
    already holds, as in the planner's plans for it."""
    from planner.library import default_library
    from planner.planning import subtask_for
    from policy.expert.expert import planned_skill

    name, planned = planned_skill(scenario, skill, args)
    return subtask_for(scenario, name, [planned[p] for p in default_library().skills[name].params], approach_first=approach_first)


def run_trial(policy: str, skill: str, scenario_name: str, args: dict[str, str], seed: int, variation: str = "nominal",
              checkpoint: Path | None = None, retries: int = 0, runtime: str = "receding") -> Trial:
    """One skill call through the behaviour tree (see the module docstring)."""
    import torch

    from perception.perception import Perception
    from planner.taskgraph import TaskGraph
    from policy.episodes import SETTLE_S, EpisodeConfig, SkillResult, prepare, run_skill, with_images

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    world = _world(scenario_name, variation)
    from_start = variation == "from_start"
    if from_start:
        args = _within_reach_at_start(world, args, seed)
    carry = None
    if variation == "carrying":
        args, carry = carrying_args(world.scenario, args, seed)
    rng = np.random.default_rng([seed, 17])
    sub = trial_subtask(world.scenario, skill, args, policy != "expert").model_copy(update={"retries": retries})
    if variation == "unseen_phrasing":
        sub = sub.model_copy(update={"instruction": unseen_instruction(world.scenario, skill, args, rng)})
    base = dict(policy=policy, skill=skill, scenario=scenario_name, seed=seed, variation=variation, args=args,
                instruction=sub.instruction, carrying=carry or "")
    # Perception follows the set-up (a frame every OBSERVE_EVERY steps), as it would have
    # followed the earlier subtasks of a whole run: a carried object is known to be held.
    perception = Perception.for_world(world)
    perception.reset()
    setup_steps = 0

    def observe(o, _action) -> None:
        nonlocal setup_steps
        setup_steps += 1
        if setup_steps % OBSERVE_EVERY == 0:
            perception.update(with_images(world, o))

    off_pose = variation == "off_pose"
    config = EpisodeConfig(from_start=from_start, carry=carry, offset=off_pose, arm_offset=off_pose)
    obs, setup = prepare(world, skill, args, seed, config, task=sub.instruction, on_setup_step=observe)
    if skill == "navigate_to" and args["target"] in world.scenario.object_by_id():
        # Every method drives to an object after look_for(object) when the object is not yet
        # believed (the learned drive is told where to go from the belief): so does the trial.
        perception.update(obs)
        if args["target"] not in perception.belief.objects:
            with world.cameras_off():
                res, obs = run_skill(world, "look_for", {"object": args["target"]}, obs, on_step=observe)
            obs = with_images(world, obs)
            setup.append(res)
    if not setup or setup[-1].success:
        # The skill is judged from its start state: its preconditions true in ground truth. A
        # set-up that left one false did not bring the world there, whatever its own verdict
        # (session 23: the expert's carrying drive to the person in `distractors` pushed the
        # tall blue bottle onto the person's palm, so it was no longer held, in the handover
        # trials of seeds 100015-100017, which both policies then failed at once), and an
        # off_pose shift that undid one (near the person, say) is a start no whole run reaches.
        state = world.privileged_state(visibility=any(p.name == "visible" for p in sub.preconditions))
        if broken := [str(p) for p in sub.preconditions if not state.holds(p)]:
            step = "shift_base" if off_pose else (setup[-1].skill if setup else "reset")
            setup.append(SkillResult(step, dict(args), False, f"{', '.join(broken)} does not hold at the skill's start", 0, 0.0))
    if setup and not setup[-1].success:
        return Trial(**base, success=False, agent_success=False, truth_success=False, setup_failed=True,
                     reason=f"setup {setup[-1].skill} failed: {setup[-1].reason}", wall_seconds=time.perf_counter() - t0)
    graph = TaskGraph()
    graph.add(sub)
    # The pose a drive is measured against is planned where it starts, as its goal and the
    # expert's own choice are (from its end, a table's other side could be nearer).
    route = plan_route(world.scenario, world.privileged_state(), args["target"]) if skill == "navigate_to" else None
    factory, made = _factory(policy, world, checkpoint, runtime, perception), []

    def counted(subtask):  # a drive the tree skips (`near` already held, the expert's plans) never makes a policy
        made.append(subtask)
        return factory(subtask)

    t_start = world.time
    outcome, ex = run_graph(world, perception, counted, graph, obs, goal=sub.instruction, seed=seed)
    hold = world.hold_action()
    with world.cameras_off():  # let objects come to rest before the ground truth is read
        for _ in range(round(SETTLE_S / world.control_period)):
            world.step(hold)
    # The skill's contract is the library's success predicates — what the tree checks through
    # perception — so the simulator judges the same predicates (`expert eval` is stricter for
    # navigate_to: it also wants the expert's final in-reach pose).
    state = world.privileged_state(visibility=skill == "look_for")
    truth = all(state.holds(p) for p in sub.success)
    dropped = carry is not None and not state.holds(f"holding({carry})")  # a carrying drive must arrive with it
    truth = truth and not dropped
    arrival = arrival_error(route.pose, state.robot.base) if route is not None and made else None
    agent = outcome is not None and outcome.status == "succeeded"
    if agent and truth:
        reason = ""
    elif dropped:
        reason = f"dropped the carried {carry}"
    elif agent:
        reason = "perception confirmed it but the ground truth disagrees"
    elif outcome is not None and outcome.reasons:
        reason = _short(outcome.reasons[-1]) + (" (the effect holds in ground truth)" if truth else "")
    else:
        reason = "did not finish"
    return Trial(**base, success=agent and truth, agent_success=agent, truth_success=truth, reason=reason,
                 sim_seconds=world.time - t_start, wall_seconds=time.perf_counter() - t0, ticks=ex.ticks,
                 arrival_m=arrival[0] if arrival else None, arrival_rad=arrival[1] if arrival else None)


def run_graph(world, perception, factory: Callable, graph, obs: dict, *, goal: str, seed: int) -> tuple:
    """Execute `graph` in the behaviour tree from where the world stands (`obs`), with
    `perception` already following it, and no repair: (outcome, the closed executor)."""
    from behaviors.context import BehaviorConfig
    from behaviors.executor import Executor

    ex = Executor(world, perception, factory, graph, goal=goal, config=BehaviorConfig(max_replans=0),
                  seed=seed, scenario=world.scenario.name)
    try:
        ex.start(obs, reset_perception=False)
        outcome = ex.run()
    finally:
        ex.close()
    return outcome, ex


def arrival_error(pose, base: tuple[float, float, float]) -> tuple[float, float]:
    """(distance m, |heading| rad) of a base pose (x, y, yaw) from an approach pose (`ApproachPose`, as
    `navigation_goal.plan_route` plans it: what a learned drive's goal names). The precision a
    learned drive must reach: a pick from 5 cm past the pose fails where one from the pose
    succeeds (docs/figures/policy_eval_session12.md)."""
    from policy.expert.geometry import wrap

    x, y, yaw = base
    return round(math.hypot(x - pose.x, y - pose.y), 4), round(abs(float(wrap(yaw - pose.yaw))), 4)


def carrying_args(scenario, args: dict[str, str], seed: int) -> tuple[dict[str, str], str]:
    """navigate_to's arguments and the object to carry there, drawn with the seed: a target
    that is an object becomes a person (else a surface), since a drive carrying one object
    ends at someone or something to put it on, as in a serve or a tidy."""
    from policy.expert.expert import candidates

    rng = np.random.default_rng([seed, 19])
    target = args["target"]
    if target in scenario.object_by_id():
        target = str(rng.choice(candidates(scenario, "person") or candidates(scenario, "surface")))
    carry = str(rng.choice(sorted(candidates(scenario, "object"))))
    return {**args, "target": target}, carry


def _within_reach_at_start(world, args: dict[str, str], seed: int) -> dict[str, str]:
    """`args` with the object swapped for the first one within reach of the start pose when
    the planned one is not (the scene is the seed's, so the choice is deterministic)."""
    world.reset(seed=seed)
    if world.holds(f"near(robot, {args['object']})"):
        return args
    for obj in sorted(o.id for o in world.scenario.objects):
        if world.holds(f"near(robot, {obj})"):
            return {**args, "object": obj}
    return args  # nothing in reach: the trial navigates first, as a nominal one


def _short(reason: str) -> str:
    """Failure reasons without run-specific numbers, so that they group in the table."""
    import re

    return re.sub(r"\d+(\.\d+)?", "N", reason)[:120]


@dataclass
class Cell:
    """Tally of one (policy, skill, scenario, variation)."""

    trials: int = 0
    successes: int = 0
    setup_failures: int = 0
    agent_only: int = 0  # believed done but not true: perception's false confirmations
    reasons: Counter = field(default_factory=Counter)
    sim_seconds: float = 0.0
    arrivals: list[tuple[float, float]] = field(default_factory=list)  # navigate_to: (m, rad) per started trial

    @property
    def started(self) -> int:
        return self.trials - self.setup_failures

    @property
    def rate(self) -> float:
        return self.successes / self.started if self.started else float("nan")

    def add(self, t: Trial) -> None:
        self.trials += 1
        self.sim_seconds += t.sim_seconds
        if not t.setup_failed and t.arrival_m is not None and t.arrival_rad is not None:
            self.arrivals.append((t.arrival_m, t.arrival_rad))
        if t.setup_failed:
            self.setup_failures += 1
        elif t.success:
            self.successes += 1
        else:
            self.agent_only += int(t.agent_success and not t.truth_success)
        if not t.success:
            self.reasons[t.reason] += 1


def arrival_summary(cell: Cell) -> str:
    """How precisely the drives stopped: the share the tree would take as arrived
    (`policy.navigation_goal.at_pose`) and the medians; "" without drives."""
    if not cell.arrivals:
        return ""
    a = np.array(cell.arrivals)
    ok = sum(at_pose(m, rad) for m, rad in cell.arrivals)
    return (f"{ok}/{len(a)} within {100 * ARRIVED_M:.1f} cm and {ARRIVED_RAD:g} rad; "
            f"median {100 * float(np.median(a[:, 0])):.1f} cm, {float(np.median(a[:, 1])):.3f} rad")


def plan_trials(policies: Iterable[str], skills: Iterable[str], seeds: int, scenarios: list[str] | None = None,
                variations: Iterable[str] = ("nominal",), first_seed: int = 100_000) -> list[tuple]:
    """Jobs: every policy sees the same (skill, scenario, args, seed) trials.

    Seeds start at `first_seed`, far from the seeds demonstrations are recorded with
    (`vla-agent collect` uses 0, 1, 2, ... by default), so no evaluated scene was in training.
    `seeds` trials per skill *and scenario* that has what the skill needs."""
    from scenarios.loading import builtin_scenarios

    names = scenarios or sorted(builtin_scenarios())
    jobs = []
    for variation in variations:
        for skill in skills:
            if skill not in ONLY_FOR.get(variation, (skill,)):
                continue
            for name in names:
                try:
                    plan = episode_plan(skill, seeds, [name], start_seed=first_seed)
                except ValueError:
                    continue  # the scenario lacks what the skill needs
                for policy in policies:
                    jobs.extend((policy, skill, sc, args, seed, variation) for sc, args, seed in plan)
    return jobs


def _job(job: tuple, checkpoint: str | None, retries: int = 0, runtime: str = "receding") -> Trial:
    os.environ.setdefault("MUJOCO_GL", "egl")
    policy, skill, scenario, args, seed, variation = job
    try:
        return run_trial(policy, skill, scenario, args, seed, variation, Path(checkpoint) if checkpoint else None, retries, runtime)
    except Exception as exc:  # one broken trial must not lose the table; it counts as a failure
        return Trial(policy=policy, skill=skill, scenario=scenario, seed=seed, variation=variation, args=args,
                     instruction="", success=False, agent_success=False, truth_success=False,
                     reason=f"error: {type(exc).__name__}: {exc}"[:160])


def evaluate(jobs: list[tuple], checkpoint: Path | None, workers: int = 1,
             on_trial: Callable[[Trial, int, int], None] | None = None, retries: int = 0,
             runtime: str = "receding", initializer: Callable[[], None] | None = None) -> list[Trial]:
    """Run the trials (in `workers` processes) and return them in completion order.

    `initializer` runs first in every worker process (e.g. the caller's logging set-up: a
    spawned process starts with structlog's print-everything default)."""
    ckpt = str(checkpoint) if checkpoint else None
    trials: list[Trial] = []
    if workers <= 1:
        results = (_job(j, ckpt, retries, runtime) for j in jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=initializer)
        results = pool.map(_job, jobs, [ckpt] * len(jobs), [retries] * len(jobs), [runtime] * len(jobs),
                           chunksize=1)
    try:
        for trial in results:
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial, len(trials), len(jobs))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return trials


def tabulate(trials: Iterable[Trial]) -> dict[tuple[str, str, str, str], Cell]:
    """(variation, skill, scenario, policy) -> Cell; scenario "all" sums a skill's scenarios."""
    cells: dict[tuple[str, str, str, str], Cell] = {}
    for t in trials:
        for sc in (t.scenario, "all"):
            cells.setdefault((t.variation, t.skill, sc, t.policy), Cell()).add(t)
    return cells
