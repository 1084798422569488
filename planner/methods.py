"""HTN-style decomposition methods as data, and their expansion into chains of skill calls.

A method (serve a drink, tidy a table, put X on Y, ...) names the slots a goal fills and a
chain of steps over them; `for_each` repeats the chain per value of one slot, and those
chains stay unordered with respect to each other: tidying three objects is three
independent chains. Methods live in `planner/library/methods.yaml` so users add goals
without code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from planner.skills import ParamType, Strict

DefaultPolicy = Literal["only", "all", "speaker", "ask", "none"]
_STEP = re.compile(r"^\s*([a-z_|]+)\s*\(\s*([^()]*?)\s*\)\s*$")


class GroupSpec(Strict):
    """A word-level group of categories: 'drink' is every drink category, 'toy' the balls."""

    categories: list[str] | Literal["all"] = Field(default_factory=list)
    catalog_flag: Literal["drink"] | None = Field(None, description="take the categories the catalogue flags so")
    words: list[str] = Field(min_length=1, description="words and phrases that name the group")

    def category_set(self) -> frozenset[str]:
        from scenarios.catalog import CATEGORIES

        if self.categories == "all":
            return frozenset(CATEGORIES)
        cats = set(self.categories)
        if self.catalog_flag:
            cats |= {c.name for c in CATEGORIES.values() if getattr(c, self.catalog_flag)}
        return frozenset(cats)

    @field_validator("categories")
    @classmethod
    def _known(cls, v: list[str] | str) -> list[str] | str:
        from scenarios.catalog import CATEGORIES, nearest

        if isinstance(v, list):
            for c in v:
                if c not in CATEGORIES:
                    hint = nearest(c, list(CATEGORIES))
                    raise ValueError(f"unknown category {c!r}" + (f"; did you mean {hint!r}?" if hint else "") + f" (known: {', '.join(CATEGORIES)})")
        return v


class SlotSpec(Strict):
    type: ParamType
    group: str = "thing"
    kinds: list[str] | None = None
    many: bool = False
    mention: list[str] | None = None
    default: DefaultPolicy = "ask"
    on: str | None = None
    not_on: str | None = None

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: list[str] | None) -> list[str] | None:
        from scenarios.catalog import FURNITURE, nearest

        for k in v or []:
            if k not in FURNITURE:
                hint = nearest(k, list(FURNITURE))
                raise ValueError(f"unknown furniture kind {k!r}" + (f"; did you mean {hint!r}?" if hint else ""))
        return v


class Step(Strict):
    """One call in a chain: alternative skills (first that fits) and slot names as arguments."""

    skills: tuple[str, ...]
    args: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Step:
        match = _STEP.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a step; write it like 'pick(object)' or 'place|place_in(object, destination)'")
        names, raw = match.groups()
        skills = tuple(s for s in names.split("|"))
        if not all(skills):
            raise ValueError(f"{text!r} has an empty skill name")
        args = tuple(a.strip() for a in raw.split(",")) if raw.strip() else ()
        return cls(skills=skills, args=args)


class MethodSpec(Strict):
    name: str
    description: str = ""
    slots: dict[str, SlotSpec] = Field(min_length=1)
    for_each: str | None = None
    steps: list[str] = Field(min_length=1)
    examples: list[str] = Field(min_length=1, description="phrasings of the goal, matched by meaning")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
            raise ValueError(f"{v!r} is not a valid method name: lower case letters, digits and _")
        return v

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[str]) -> list[str]:
        for s in v:
            Step.parse(s)
        return v

    @field_validator("examples")
    @classmethod
    def _examples(cls, v: list[str]) -> list[str]:
        for e in v:
            if not e.strip() or len(e) > 300:
                raise ValueError(f"example {e!r} must be non-empty text of at most 300 characters")
        return v

    @model_validator(mode="after")
    def _slots_used(self) -> MethodSpec:
        if self.for_each is not None and self.for_each not in self.slots:
            raise ValueError(f"for_each names {self.for_each!r}, which is not a slot ({', '.join(self.slots)})")
        for step in self.parsed_steps():
            for a in step.args:
                if a not in self.slots:
                    raise ValueError(f"step {'|'.join(step.skills)}({', '.join(step.args)}) uses {a!r}, which is not a slot ({', '.join(self.slots)})")
        for name, slot in self.slots.items():
            for ref in (slot.on, slot.not_on):
                if ref is not None and ref not in self.slots:
                    raise ValueError(f"slot {name!r} refers to {ref!r}, which is not a slot")
            if slot.many and name != self.for_each:
                raise ValueError(f"slot {name!r} allows many values, so it must be the method's for_each slot")
        return self

    def parsed_steps(self) -> list[Step]:
        hit = _steps_cache.get(id(self))
        if hit is None or hit[0] is not self:
            hit = (self, [Step.parse(s) for s in self.steps])
            _steps_cache[id(self)] = hit
        return hit[1]


_steps_cache: dict[int, tuple[MethodSpec, list[Step]]] = {}


Call = tuple[str, tuple[str, ...]]
"""A skill name and its arguments (scene ids)."""


def expand(
    method: MethodSpec,
    bindings: dict[str, list[str]],
    fits: Callable[[str, tuple[str, ...]], bool],
) -> list[list[Call]]:
    """The method's chains: one per value of the for_each slot (one chain without it).

    `fits(skill, args)` says whether a skill's parameter types accept the arguments; it
    picks among alternative skills in a step (place for a surface, place_in for a bin).
    Raises ValueError if no alternative fits, naming the step.
    """
    items = bindings.get(method.for_each, []) if method.for_each else [None]
    chains: list[list[Call]] = []
    for item in items:
        env = {k: v[0] for k, v in bindings.items() if v}
        if method.for_each is not None:
            env[method.for_each] = item  # type: ignore[assignment]
        chain: list[Call] = []
        for step in method.parsed_steps():
            args = tuple(env[a] for a in step.args)
            for skill in step.skills:
                if fits(skill, args):
                    chain.append((skill, args))
                    break
            else:
                raise ValueError(f"no skill among {', '.join(step.skills)} fits {', '.join(args)}")
        chains.append(chain)
    return chains
