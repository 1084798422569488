"""`ScriptedExpert`: one skill run from privileged state, behind the learned policy's interface.

    expert = ScriptedExpert(world, "pick", {"object": "red_cup"})
    expert.reset()
    action = expert.select_action(obs)            # one action of the world's layout
    chunk = expert.predict_action_chunk(obs)      # (horizon, action_dim), open-loop rollout

Skills, their arguments and success predicates (checked on ground truth, by the caller):

    look_for(object)            visible(object)
    navigate_to(target)         near(robot, target) and the target within reach, in front
    pick(object)                holding(object)
    place(object, surface)      on(object, surface), or in(object, bin) when the surface is a bin
    place_in(object, container) in(object, container)
    handover(object, person)    given(object, person)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from policy.expert.motion import Command
from policy.expert.skills import Context, LookFor, NavigateTo, Pick, Release, Skill
from policy.expert.targets import in_reach
from scenarios.catalog import FURNITURE, nearest
from scenarios.controllers import ArmMode
from scenarios.robot import SIDES
from scenarios.schema import Scenario


class SkillError(ValueError):
    """An unknown skill, a missing argument or a name the scenario does not contain."""


@dataclass(frozen=True)
class SkillSpec:
    name: str
    params: tuple[tuple[str, str], ...]  # (parameter, kind): object, person, furniture, surface, container, target
    timeout_s: float


SKILLS: dict[str, SkillSpec] = {
    s.name: s
    for s in (
        SkillSpec("look_for", (("object", "object"),), 20.0),
        SkillSpec("navigate_to", (("target", "target"),), 60.0),
        SkillSpec("pick", (("object", "object"),), 30.0),
        SkillSpec("place", (("object", "object"), ("surface", "surface")), 30.0),
        SkillSpec("place_in", (("object", "object"), ("container", "container")), 30.0),
        SkillSpec("handover", (("object", "object"), ("person", "person")), 30.0),
    )
}


def candidates(scenario: Scenario, kind: str) -> list[str]:
    """Ids in the scenario that can fill a parameter of `kind`."""
    objects = [o.id for o in scenario.objects]
    people = [p.id for p in scenario.people]
    furniture = [f.id for f in scenario.furniture]
    surfaces = [f.id for f in scenario.furniture if FURNITURE[f.kind].surface or FURNITURE[f.kind].container]
    containers = [f.id for f in scenario.furniture if FURNITURE[f.kind].container]
    return {"object": objects, "person": people, "furniture": furniture, "surface": surfaces,
            "container": containers, "target": objects + furniture + people}[kind]


def validate_skill(scenario: Scenario, skill: str, args: dict[str, str] | list[str] | tuple[str, ...]) -> dict[str, str]:
    """Check a skill name and its arguments against a scenario; returns the arguments by name.

    Raises SkillError naming the bad field and value, with the nearest valid choice.
    """
    if skill not in SKILLS:
        hint = nearest(skill, list(SKILLS))
        raise SkillError(f"unknown skill {skill!r}" + (f"; did you mean {hint!r}?" if hint else "") + f" (known: {', '.join(SKILLS)})")
    spec = SKILLS[skill]
    names = [p for p, _ in spec.params]
    if not isinstance(args, dict):
        args = list(args)
        if len(args) != len(names):
            raise SkillError(f"{skill} takes {len(names)} argument(s) ({', '.join(names)}), got {len(args)}: {args}")
        args = dict(zip(names, args))
    missing = [n for n in names if n not in args]
    extra = [n for n in args if n not in names]
    if missing or extra:
        raise SkillError(f"{skill} takes arguments ({', '.join(names)}); " + (f"missing {missing}" if missing else f"unknown {extra}"))
    for name, kind in spec.params:
        value = args[name]
        valid = candidates(scenario, kind)
        if value not in valid:
            if not valid:
                raise SkillError(f"scenario {scenario.name!r} has no {kind} for {skill}'s {name}")
            hint = nearest(value, valid)
            raise SkillError(
                f"{skill}: {name} {value!r} is not a {kind} in scenario {scenario.name!r}"
                + (f"; did you mean {hint!r}?" if hint else "") + f" (choices: {', '.join(valid)})"
            )
    return dict(args)


def planned_skill(scenario: Scenario, skill: str, args: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The planner's skill for an expert skill call: `place` onto a container is `place_in`
    (the planner types a bin as a container, not a surface); everything else is itself."""
    if skill == "place":
        target = args.get("surface") or args["container"]
        if FURNITURE[scenario.furniture_by_id()[target].kind].container:
            return "place_in", {"object": args["object"], "container": target}
        return "place", {"object": args["object"], "surface": target}
    return skill, dict(args)


def success_predicate(scenario: Scenario, skill: str, args: dict[str, str]) -> str:
    """The ground-truth predicate that defines the skill's success, from the planner's skill
    library (one source of skill effects); `place` into a container counts as `place_in`."""
    from planner.library import default_library

    skill, args = planned_skill(scenario, skill, args)
    name, bound, negated = default_library().skills[skill].success_atoms()[0].bind(args)
    return f"{'not ' if negated else ''}{name}({', '.join(bound)})"


def skill_succeeded(world: Any, skill: str, args: dict[str, str]) -> bool:
    """Ground truth: does the skill's effect hold now?"""
    pred = success_predicate(world.scenario, skill, args)
    state = world.privileged_state(visibility=skill == "look_for")
    ok = state.holds(pred)
    if ok and skill == "navigate_to":
        ok = in_reach(world.scenario, state, args["target"])
    return bool(ok)


def make_skill(skill: str, args: dict[str, str]) -> Skill:
    if skill == "look_for":
        return LookFor(obj=args["object"])
    if skill == "navigate_to":
        return NavigateTo(target=args["target"])
    if skill == "pick":
        return Pick(obj=args["object"])
    if skill == "handover":
        return Release(obj=args["object"], target=args["person"])
    return Release(obj=args["object"], target=args.get("surface") or args["container"])


class ScriptedExpert:
    """A skill executed from privileged state, with `reset` / `select_action` / `predict_action_chunk`.

    The world must use `ArmMode.EE_POSE`. The expert reads `world.privileged_state()`, the
    scenario (the static map) and the observation's proprioception; nothing else on the
    decision path may read privileged state.
    """

    def __init__(self, world: Any, skill: str, args: dict[str, str] | list[str], chunk_size: int = 20) -> None:
        if world.controller.mode is not ArmMode.EE_POSE:
            raise ValueError(f"the scripted expert needs arm_mode 'ee_pose', the world uses {world.controller.mode.value!r}")
        self.world = world
        self.skill_name = skill
        self.args = validate_skill(world.scenario, skill, args)
        self.spec = SKILLS[skill]
        self.chunk_size = chunk_size
        names = world.controller.proprioception_names()
        self._idx = {n: i for i, n in enumerate(names)}
        self.skill: Skill = make_skill(skill, self.args)
        self.cmd: Command | None = None
        self._visible_cache: tuple[float, tuple[str, ...]] | None = None

    # -- policy interface ----------------------------------------------------------------
    def reset(self) -> None:
        """Start the skill from the world's current state (targets = what the robot holds now)."""
        c = self.world.controller
        self.cmd = Command(c.layout.slices, c.layout.dim, self.world.control_period, self.world.hold_action())
        self.skill = make_skill(self.skill_name, self.args)

    @property
    def done(self) -> bool:
        return self.skill.done

    @property
    def failure(self) -> str | None:
        return self.skill.failure

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        if self.cmd is None:
            self.reset()
        ctx = self._context(obs)
        if not self.skill.done:
            self.skill.tick(ctx)
        if self.skill.done:
            self.cmd.base = np.zeros(3)
        return self.cmd.action()

    def predict_action_chunk(self, obs: dict[str, Any]) -> np.ndarray:
        """The next action and an open-loop continuation (the state machine run on a frozen observation)."""
        first = self.select_action(obs)
        saved_skill, saved_cmd = self.skill, self.cmd
        self.skill, self.cmd = copy.deepcopy(saved_skill), copy.deepcopy(saved_cmd)
        try:
            rows = [first]
            ctx = self._context(obs)
            for _ in range(self.chunk_size - 1):
                if not self.skill.done:
                    self.skill.tick(ctx)
                rows.append(self.cmd.action())
        finally:
            self.skill, self.cmd = saved_skill, saved_cmd
        return np.stack(rows)

    # -- internals -------------------------------------------------------------------------
    def _visible(self) -> tuple[str, ...]:
        t = self.world.time
        if self._visible_cache is None or self._visible_cache[0] != t:
            self._visible_cache = (t, self.world.privileged_state(visibility=True).visible or ())
        return self._visible_cache[1]

    def _context(self, obs: dict[str, Any]) -> Context:
        state_vec = np.asarray(obs["observation.state"], dtype=np.float64)
        i = self._idx
        ee = {}
        opening = {}
        for side in SIDES:
            pos = np.array([state_vec[i[f"{side}.ee.{c}"]] for c in "xyz"])
            quat = np.array([state_vec[i[f"{side}.ee.q{c}"]] for c in "wxyz"])
            ee[side] = (pos, quat)
            opening[side] = float(state_vec[i[f"{side}.gripper_opening"]])
        assert self.cmd is not None
        return Context(self.world.scenario, self.world.privileged_state(), ee, opening, self.cmd,
                       self.world.control_period, self._visible)
