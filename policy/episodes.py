"""Episodes of one skill: reach the skill's start state with the expert, then run the skill.

An episode for a skill starts where its preconditions hold, reached by the expert itself
and not recorded: `pick` after `navigate_to(object)`; `place`/`place_in` after
`navigate_to(object)`, `pick(object)` and `navigate_to(surface)`; `handover` after
`navigate_to(object)`, `pick(object)` and `navigate_to(person)`; `look_for` after turning
the robot away by a random angle; `navigate_to` from the scenario's (randomised) start, or
holding an object it first drove to and picked (`EpisodeConfig.carry`), as in a goal's drives
to a surface, a bin or a person.
Only the skill itself is recorded. Success is the skill's ground-truth predicate at the end.

Recovery data: with `noise_std > 0` the executed action gets Gaussian noise on the base
velocity and hand targets while the clean expert action is what the recorder keeps
(DART); with `perturb` the start state is pushed off the expert's path first (the base
shifted and turned a little, the hands moved a few centimetres). With `offset` a drive or a
pick starts up to 0.3 m off the approach pose the expert drove to (in front of it, past it,
beside it, turned): whole goals start a few centimetres from their first approach pose, and a
learned drive can stop a little short or long, so the short drives there and back and the
pick's own lining-up must be in the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from policy.expert.expert import SKILLS, ScriptedExpert, skill_succeeded, validate_skill
from policy.manipulation_target import TARGET_SKILLS, expert_point
from scenarios.robot import SIDES
from scenarios.world import SimWorld

StepHook = Callable[[dict[str, Any], np.ndarray], None]
SETTLE_S = 0.3  # s of holding still after a skill, before its effect is judged


def with_images(world: SimWorld, obs: dict[str, Any]) -> dict[str, Any]:
    """`obs` with the camera images that a step under `world.cameras_off()` left out, rendered now
    (the same pictures a rendering step would have made)."""
    obs = dict(obs)
    for cam in world.config.cameras:
        key = f"observation.images.{cam}"
        if key not in obs:
            obs[key] = world.render_camera(cam)
    if world.config.head_depth and "head" in world.config.cameras and "observation.depth.head" not in obs:
        obs["observation.depth.head"] = world.render_camera("head", kind="depth")
    return obs


@dataclass
class SkillResult:
    skill: str
    args: dict[str, str]
    success: bool
    reason: str  # "" on success
    steps: int
    seconds: float
    target: tuple[float, float, float] | None = None  # world point acted on (`policy.manipulation_target`)
    lead: bool = False  # the learned policy's start of the recorded skill itself (`EpisodeConfig.takeover_after`)


@dataclass
class EpisodeConfig:
    noise_std: float = 0.0  # DART noise scale (1.0 = 5 cm/s base, 1 cm hand)
    perturb: bool = False
    from_start: bool = False  # pick: start where the robot stands when the object is already in reach
    carry: str | None = None  # navigate_to: pick this object up first, so the drive is made holding it
    offset: bool = False  # OFFSET_SKILLS: start off the approach pose the expert drove to (`shift_base`)
    offset_scale: float = 1.0  # ... by up to this share of OFFSET_RANGE (0.2: the few centimetres a learned drive misses by)
    arm_offset: bool = False  # navigate_to with `carry`, HELD_SKILLS: start with both hands off their postures (`displace_hands`)
    learned_setup: str | None = None  # checkpoint: the learned policy runs the set-up (`policy.learned_setup`)
    takeover_after: float = 0.0  # with learned_setup: it also starts the skill, for TAKEOVER_MIN_S to this many s


OFFSET_SKILLS = ("navigate_to", "pick", "handover", "place", "place_in")
HELD_SKILLS = ("handover", "place", "place_in")  # skills that start holding what the set-up picked up
TAKEOVER_SKILLS = ("pick", "handover", "place", "place_in")  # skills a learned lead starts before the expert takes over
TAKEOVER_MIN_S = 1.0  # s: the shortest learned lead
OFFSET_RANGE = ((-0.30, 0.12), (-0.15, 0.15), (-0.4, 0.4))  # base-frame x (m, + = forward), y (m), yaw (rad)
HELD_HAND_RANGE = ((-0.10, 0.05), (-0.08, 0.08), (-0.15, 0.05))  # m added to the held object's hand target (x, y, z)
FREE_HAND_RANGE = ((-0.10, 0.15), (-0.12, 0.12), (-0.10, 0.30))  # ... and to the free hand's (up to head height)


def run_skill(world: SimWorld, skill: str, args: dict[str, str], obs: dict[str, Any], *,
              on_step: StepHook | None = None, noise_std: float = 0.0, rng: np.random.Generator | None = None,
              timeout_s: float | None = None) -> tuple[SkillResult, dict[str, Any]]:
    """Run the expert for one skill until it is done or times out (simulated seconds)."""
    expert = ScriptedExpert(world, skill, args)
    expert.reset()
    picked = expert.args.get("object") if skill == "pick" else None
    object_at_start = world.privileged_state().objects[picked].pos if picked else None
    timeout = timeout_s or SKILLS[skill].timeout_s
    t0 = world.time
    steps = 0
    s = world.controller.layout.slices
    while not expert.done and world.time - t0 < timeout:
        action = expert.select_action(obs)
        executed = action
        if noise_std > 0 and rng is not None:
            executed = action.copy()
            executed[s["base"]] += rng.normal(0, 0.05 * noise_std, 3).astype(np.float32)
            for side in SIDES:
                executed[s[f"{side}.pos"]] += rng.normal(0, 0.01 * noise_std, 3).astype(np.float32)
        if on_step is not None:
            on_step(obs, action)
        obs, *_ = world.step(executed)
        steps += 1
    # Let the world settle for a moment (objects come to rest) before judging; nobody records it.
    hold = world.hold_action()
    with world.cameras_off():
        for _ in range(round(SETTLE_S / world.control_period)):
            obs, *_ = world.step(hold)
    ok = skill_succeeded(world, skill, expert.args)
    if expert.failure:
        reason = expert.failure
    elif not expert.done:
        reason = f"timeout after {timeout:.0f} s"
    else:
        reason = "" if ok else f"finished but {skill} effect does not hold"
    target = expert_point(expert.skill, object_at_start) if skill in TARGET_SKILLS else None
    return SkillResult(skill, expert.args, ok, "" if ok else reason, steps, world.time - t0, target), obs


def setup_steps(skill: str, args: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """The expert skills that bring the world to `skill`'s start state."""
    if skill in ("place", "place_in"):
        target = args.get("surface") or args["container"]
        return [("navigate_to", {"target": args["object"]}), ("pick", {"object": args["object"]}), ("navigate_to", {"target": target})]
    if skill == "handover":
        return [("navigate_to", {"target": args["object"]}), ("pick", {"object": args["object"]}), ("navigate_to", {"target": args["person"]})]
    if skill == "pick":
        return [("navigate_to", {"target": args["object"]})]
    return []


def turn_away(world: SimWorld, obs: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Turn the base by a random angle (0.8..2.8 rad, either way) and the head a little."""
    angle = rng.uniform(0.8, 2.8) * rng.choice([-1.0, 1.0])
    s = world.controller.layout.slices
    a = world.hold_action()
    rate = 0.8
    steps = int(abs(angle) / rate / world.control_period)
    for k in range(steps + 10):
        a[s["base"]] = [0.0, 0.0, math.copysign(rate, angle) if k < steps else 0.0]
        obs, *_ = world.step(a)
    return obs


def perturb(world: SimWorld, obs: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Push the start state off the expert's path: shift and turn the base, move the hands."""
    s = world.controller.layout.slices
    a = world.hold_action()
    vel = np.array([rng.uniform(-0.08, 0.0), rng.uniform(-0.1, 0.1), rng.uniform(-0.3, 0.3)])
    for k in range(20):
        a[s["base"]] = vel if k < 10 else 0.0
        for side in SIDES:
            if k == 0:
                a[s[f"{side}.pos"]] += rng.uniform(-0.04, 0.04, 3).astype(np.float32)
        obs, *_ = world.step(a)
    return obs


def scaled_offset_range(scale: float) -> tuple[tuple[float, float], ...]:
    """OFFSET_RANGE shrunk (or widened) by `scale` about the approach pose."""
    if not scale > 0:
        raise ValueError(f"offset_scale must be positive, got {scale}")
    return tuple((lo * scale, hi * scale) for lo, hi in OFFSET_RANGE)


def shift_base(world: SimWorld, obs: dict[str, Any], rng: np.random.Generator,
               ranges: tuple[tuple[float, float], ...] = OFFSET_RANGE) -> dict[str, Any]:
    """Drive the base by a random displacement in its own frame (arms held), then stand still.

    Driven, not teleported, so contacts stay physical: a shift into furniture stops at it."""
    s = world.controller.layout.slices
    a = world.hold_action()
    shift = np.array([rng.uniform(lo, hi) for lo, hi in ranges])
    duration = 1.5
    steps = round(duration / world.control_period)
    for k in range(steps + round(0.6 / world.control_period)):
        a[s["base"]] = shift / duration if k < steps else 0.0
        obs, *_ = world.step(a)
    return obs


def displace_hands(world: SimWorld, obs: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Move both hands off the postures the expert left them in (arms only, base still), then hold.

    A learned pick may end with the carried object's hand short of the carry posture, and a
    learned drive's free hand was seen drifting up until it knocked the cup out of the other:
    the expert's next skill starts by bringing both back (`hold_arms`, or the release's raise),
    and this records it doing so."""
    s = world.controller.layout.slices
    a = world.hold_action()
    holding = world.privileged_state().robot.holding
    for side in SIDES:
        ranges = HELD_HAND_RANGE if holding.get(side) else FREE_HAND_RANGE
        a[s[f"{side}.pos"]] += np.array([rng.uniform(lo, hi) for lo, hi in ranges], dtype=np.float32)
    for _ in range(round(1.5 / world.control_period)):
        obs, *_ = world.step(a)
    return obs


def prepare(world: SimWorld, skill: str, args: dict[str, str], seed: int, config: EpisodeConfig | None = None,
            task: str = "", on_setup_step: StepHook | None = None) -> tuple[dict[str, Any], list[SkillResult]]:
    """Reset with `seed` and run the setup skills; returns the observation and the setup results.

    `on_setup_step(obs, action)` sees every setup step (without images: render them with
    `with_images` where needed), e.g. so that perception follows the set-up as it would have
    followed the expert's earlier subtasks in a whole run."""
    config = config or EpisodeConfig()
    rng = np.random.default_rng([seed, 7])
    with world.cameras_off():  # nobody records the set-up: rendering is most of a step's cost
        obs, _ = world.reset(seed=seed, options={"task": task})
        if skill == "look_for":
            obs = turn_away(world, obs, rng)
        steps = setup_steps(skill, args)
        if config.carry and skill == "navigate_to":  # the drives of a whole goal are made holding what they carry
            steps = [("navigate_to", {"target": config.carry}), ("pick", {"object": config.carry})]
        if config.from_start and skill == "pick" and world.holds(f"near(robot, {args['object']})"):
            steps = []  # as the planner does: no navigate_to when the object is already within reach
        if not config.learned_setup:
            obs, results = _expert_setup(world, skill, args, steps, obs, config, rng, seed, on_setup_step)
            return with_images(world, obs), results
    # The learned chain's own misses are the offsets: it runs with cameras on, as in a whole run.
    from policy.learned_setup import learned_steps, run_learned_setup

    obs = with_images(world, obs)
    steps = learned_steps(steps, skill, args)
    if config.takeover_after > 0 and skill in TAKEOVER_SKILLS:
        lead_s = float(np.random.default_rng([seed, 31]).uniform(TAKEOVER_MIN_S, max(TAKEOVER_MIN_S, config.takeover_after)))
        return run_learned_setup(world, obs, steps + [(skill, dict(args))], config.learned_setup, seed, task, lead_s=lead_s)
    return run_learned_setup(world, obs, steps, config.learned_setup, seed, task) if steps else (obs, [])


def _expert_setup(world: SimWorld, skill: str, args: dict[str, str], steps: list[tuple[str, dict[str, str]]],
                  obs: dict[str, Any], config: EpisodeConfig, rng: np.random.Generator, seed: int,
                  on_setup_step: StepHook | None) -> tuple[dict[str, Any], list[SkillResult]]:
    """The expert's set-up, then the configured perturbation, base offset and hand offset."""
    results: list[SkillResult] = []
    if config.offset and skill == "navigate_to":
        steps = steps + [("navigate_to", dict(args))]  # there first, then shifted off the pose
    for name, a in steps:
        res, obs = run_skill(world, name, a, obs, on_step=on_setup_step)
        results.append(res)
        if not res.success:
            break
    else:
        if config.perturb and skill != "look_for":
            obs = perturb(world, obs, rng)
        if config.offset and skill in OFFSET_SKILLS:
            obs = shift_base(world, obs, rng, scaled_offset_range(config.offset_scale))
        if config.arm_offset and (held := config.carry if skill == "navigate_to" else
                                  args.get("object") if skill in HELD_SKILLS else None):
            obs = displace_hands(world, obs, np.random.default_rng([seed, 23]))
            if not world.holds(f"holding({held})"):
                results.append(SkillResult("displace_hands", {"object": held}, False,
                                           f"{held} fell while the hands were moved", 0, 0.0))
    return obs, results


@dataclass
class EpisodeOutcome:
    skill: str
    args: dict[str, str]
    seed: int
    success: bool
    reason: str
    setup_failed: bool = False
    from_start: bool = False  # started where the robot stood, without the usual set-up
    steps: int = 0
    seconds: float = 0.0
    chain: list[SkillResult] = field(default_factory=list)
    task: str = ""  # the recorded skill's instruction
    recovery: bool = False  # the expert redid a learned set-up step that failed (`run_episode`)
    lead_s: float = 0.0  # simulated seconds the learned policy ran the skill before the expert took over


def run_episode(world: SimWorld, skill: str, args: dict[str, str], seed: int, config: EpisodeConfig | None = None,
                on_step: StepHook | None = None, task: str = "") -> EpisodeOutcome:
    """Prepare the start state, then run (and optionally record) the skill.

    After a learned set-up that failed at one of its steps, the expert performs that step
    instead, from where the failed attempt left the robot (the state a whole run retries
    from): a recovery demonstration, with the step's own skill, arguments and instruction."""
    config = config or EpisodeConfig()
    args = validate_skill(world.scenario, skill, args)
    obs, setup = prepare(world, skill, args, seed, config, task)
    recovery = False
    lead_s = 0.0
    if setup and setup[-1].lead:  # the learned policy started the skill itself; the expert takes over
        lead_s = setup[-1].seconds
        if setup[-1].success or skill_succeeded(world, skill, args):  # nothing left to correct: nothing recorded
            return EpisodeOutcome(skill, args, seed, False, f"the learned {skill} succeeded within its {lead_s:.1f} s lead",
                                  False, chain=setup, task=task, lead_s=lead_s)
    elif setup and not setup[-1].success:
        bad = setup[-1]
        if not (config.learned_setup and bad.skill in SKILLS):
            return EpisodeOutcome(skill, args, seed, False, f"setup {bad.skill} failed: {bad.reason}", True, chain=setup,
                                  task=task)
        from policy.instructions import instruction

        skill, args, recovery = bad.skill, dict(bad.args), True
        task = instruction(world.scenario, skill, args, np.random.default_rng([seed, 29]))
    rng = np.random.default_rng([seed, 11])
    res, _ = run_skill(world, skill, args, obs, on_step=on_step, noise_std=config.noise_std, rng=rng)
    from_start = not setup and bool(setup_steps(skill, args))
    return EpisodeOutcome(skill, args, seed, res.success, res.reason, False, from_start, res.steps, res.seconds, setup + [res],
                          task=task, recovery=recovery, lead_s=lead_s)


CHAINS: dict[str, Callable[[str, str], list[tuple[str, dict[str, str]]]]] = {
    "serve_drink": lambda obj, person: [
        ("look_for", {"object": obj}), ("navigate_to", {"target": obj}), ("pick", {"object": obj}),
        ("navigate_to", {"target": person}), ("handover", {"object": obj, "person": person}),
    ],
}


def run_chain(world: SimWorld, steps: list[tuple[str, dict[str, str]]], seed: int) -> EpisodeOutcome:
    """Run skills one after another from a fresh reset; fails at the first skill that fails."""
    obs, _ = world.reset(seed=seed)
    results = []
    for name, a in steps:
        res, obs = run_skill(world, name, a, obs)
        results.append(res)
        if not res.success:
            return EpisodeOutcome("chain", {}, seed, False, f"{name}({', '.join(a.values())}): {res.reason}", chain=results)
    return EpisodeOutcome("chain", {}, seed, True, "", chain=results, seconds=sum(r.seconds for r in results))
