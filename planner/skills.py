"""Skills as data: typed parameters, preconditions, effects, success checks, instructions.

The skill set is shared with the policy (which is conditioned on the instructions), the
scripted expert and the behaviour tree, so it lives in YAML (`planner/library/skills.yaml`)
and this module only gives it types. Predicates in a skill are templates over the skill's
parameter names (`holding(object)`); `instantiate` binds them to scene ids.
"""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scenarios.predicates import ARITY, Predicate

ParamType = Literal["object", "person", "furniture", "surface", "container", "place", "target"]
"""What a parameter (or a method slot) may be bound to.

object: a graspable scene object; person; furniture: any piece; surface: furniture objects
rest on (table, counter, shelf); container: a bin; place: a surface or a container;
target: furniture, an object or a person.
"""

CONSTANTS = ("robot", "floor")
WILDCARD = "*"
_ATOM = re.compile(r"^\s*(not\s+)?([a-z_]+)\s*\(\s*([^()]*?)\s*\)\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Atom(BaseModel):
    """A predicate template: arguments are parameter names, constants or `*` (any value)."""

    model_config = ConfigDict(frozen=True)

    name: str
    args: tuple[str, ...]
    negated: bool = False

    @classmethod
    def parse(cls, text: str) -> Atom:
        match = _ATOM.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a predicate; write it like 'holding(object)' or 'not near(robot, *)'")
        neg, name, raw = match.groups()
        if name not in ARITY:
            from scenarios.catalog import nearest

            hint = nearest(name, list(ARITY))
            raise ValueError(f"unknown predicate {name!r}" + (f"; did you mean {hint!r}?" if hint else "") + f" (known: {', '.join(ARITY)})")
        args = tuple(a.strip() for a in raw.split(",")) if raw.strip() else ()
        if len(args) != ARITY[name]:
            raise ValueError(f"{name} takes {ARITY[name]} argument(s), got {len(args)} in {text!r}")
        for a in args:
            if a != WILDCARD and not _NAME.match(a):
                raise ValueError(f"argument {a!r} in {text!r} is not a parameter name, a constant or '*'")
        return cls(name=name, args=args, negated=bool(neg))

    def bind(self, binding: dict[str, str]) -> tuple[str, tuple[str, ...], bool]:
        """(name, args, negated) with parameters replaced by ids; `*` and constants stay."""
        return self.name, tuple(binding.get(a, a) for a in self.args), self.negated

    def __str__(self) -> str:
        core = f"{self.name}({', '.join(self.args)})"
        return f"not {core}" if self.negated else core


def _atoms(values: list[str]) -> list[Atom]:
    return [Atom.parse(v) for v in values]


class SkillSpec(Strict):
    """One skill of the library, as written in a library file."""

    name: str
    description: str = ""
    params: dict[str, ParamType] = Field(description="parameter name -> type, in call order")
    preconditions: list[str] = Field(default_factory=list)
    effects: list[str] = Field(default_factory=list)
    success: list[str] = Field(min_length=1, description="predicates that are true once the skill has succeeded")
    instructions: list[str] = Field(min_length=1, description="templates such as 'pick up the {object}'; the first is used")
    timeout_s: float = Field(30.0, gt=0.0, le=3600.0, description="simulated seconds before the attempt counts as failed")
    retries: int = Field(2, ge=0, le=20)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"{v!r} is not a valid skill name: lower case letters, digits and _")
        return v

    @field_validator("preconditions", "effects", "success")
    @classmethod
    def _predicates(cls, v: list[str]) -> list[str]:
        for text in v:
            Atom.parse(text)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SkillSpec:
        known = set(self.params) | set(CONSTANTS)
        for field in ("preconditions", "effects", "success"):
            for text in getattr(self, field):
                atom = Atom.parse(text)
                for a in atom.args:
                    if a == WILDCARD:
                        if field != "effects" or not atom.negated:
                            raise ValueError(f"'*' is only allowed in negative effects, not in {field}: {text!r}")
                    elif a not in known:
                        raise ValueError(f"{field}: {text!r} names {a!r}, which is not a parameter of {self.name} ({', '.join(self.params)})")
        for template in self.instructions:
            names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            unknown = names - set(self.params)
            if unknown:
                raise ValueError(f"instruction {template!r} uses {{{sorted(unknown)[0]}}}, which is not a parameter of {self.name}")
        return self

    # Parsed forms, computed on demand (models are frozen; parsing is microseconds).
    def pre_atoms(self) -> list[Atom]:
        return _atoms(self.preconditions)

    def effect_atoms(self) -> list[Atom]:
        atoms = _atoms(self.effects)
        return [a for a in atoms if a.negated] + [a for a in atoms if not a.negated]

    def success_atoms(self) -> list[Atom]:
        return _atoms(self.success)

    def instruction(self, names: dict[str, str]) -> str:
        """The policy's instruction, with each parameter replaced by a readable name."""
        return self.instructions[0].format(**names)


def ground(atom: Atom, binding: dict[str, str]) -> Predicate:
    """A template bound to scene ids, as a vocabulary predicate (no wildcards allowed)."""
    name, args, negated = atom.bind(binding)
    return Predicate(name=name, args=args, negated=negated)  # type: ignore[arg-type]


Fact = tuple[str, tuple[str, ...]]
Bound = tuple[str, tuple[str, ...], bool]


class CompiledSkill:
    """A skill's templates parsed once, for the planner's inner loops (microseconds count)."""

    def __init__(self, spec: SkillSpec) -> None:
        self.spec = spec
        self.params = tuple(spec.params)
        self.pre = [(a.name, a.args, a.negated) for a in spec.pre_atoms()]
        self.effects = [(a.name, a.args, a.negated) for a in spec.effect_atoms()]
        self.success = [(a.name, a.args, a.negated) for a in spec.success_atoms()]

    def _bind(self, atoms: list[Bound], args: tuple[str, ...]) -> list[Bound]:
        env = dict(zip(self.params, args))
        return [(n, tuple(env.get(a, a) for a in xs), neg) for n, xs, neg in atoms]

    def preconditions(self, args: tuple[str, ...]) -> list[Bound]:
        return self._bind(self.pre, args)

    def successes(self, args: tuple[str, ...]) -> list[Bound]:
        return self._bind(self.success, args)

    def apply(self, state: set[Fact], args: tuple[str, ...]) -> None:
        """Effects on a set of true facts: deletions (with `*` wildcards) first, then additions."""
        for name, xs, neg in self._bind(self.effects, args):
            if neg:
                if WILDCARD in xs:
                    for fact in [f for f in state if f[0] == name and all(a == WILDCARD or a == b for a, b in zip(xs, f[1]))]:
                        state.discard(fact)
                else:
                    state.discard((name, xs))
            else:
                state.add((name, xs))


def holds(state: set[Fact] | frozenset[Fact], atom: Bound) -> bool:
    name, xs, neg = atom
    return ((name, xs) in state) != neg


def atom_text(atom: Bound) -> str:
    name, xs, neg = atom
    return ("not " if neg else "") + f"{name}({', '.join(xs)})"


_compiled: dict[int, tuple[SkillSpec, CompiledSkill]] = {}


def compiled(spec: SkillSpec) -> CompiledSkill:
    hit = _compiled.get(id(spec))
    if hit is None or hit[0] is not spec:
        hit = (spec, CompiledSkill(spec))
        _compiled[id(spec)] = hit
    return hit[1]
