"""The predicate vocabulary shared by scenarios, the planner and perception.

Predicates are written the way people read them, `holding(red_cup)` or
`not on(red_cup, table)`, and parsed into a small typed model so every consumer agrees
on arity and meaning.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

PredicateName = Literal["holding", "on", "in", "near", "given", "visible"]

ARITY: dict[str, int] = {"holding": 1, "on": 2, "in": 2, "near": 2, "given": 2, "visible": 1}
MEANING: dict[str, str] = {
    "holding": "holding(obj): a gripper of the robot has obj between its fingers, off every surface",
    "on": "on(obj, surface): obj rests on top of the surface (a table, counter or shelf, or the floor)",
    "in": "in(obj, container): obj lies inside the container (a bin)",
    "near": "near(a, b): a is within reach of b (for the robot: its base is close enough to grasp or hand over)",
    "given": "given(obj, person): the person holds obj and the robot has let go",
    "visible": "visible(obj): obj is in view of the head camera",
}

_PATTERN = re.compile(r"^\s*(not\s+)?([a-z_]+)\s*\(\s*([^()]*?)\s*\)\s*$")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class Predicate(BaseModel):
    """One atom of the vocabulary, possibly negated."""

    model_config = ConfigDict(frozen=True)

    name: PredicateName
    args: tuple[str, ...]
    negated: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _parse_fields(value)
        return value

    @model_validator(mode="after")
    def _check_arity(self) -> Predicate:
        want = ARITY[self.name]
        if len(self.args) != want:
            raise ValueError(f"{self.name} takes {want} argument(s), got {len(self.args)}: {self.args}")
        for arg in self.args:
            if not _ID.match(arg):
                raise ValueError(f"argument {arg!r} is not an id (lower case letters, digits, _)")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        """Files write predicates as text, so that is what editors should expect."""
        return {
            "type": "string",
            "pattern": r"^\s*(not\s+)?(" + "|".join(ARITY) + r")\s*\(.*\)\s*$",
            "description": "a predicate such as 'on(red_cup, table)' or 'not holding(red_cup)'; " + "; ".join(MEANING.values()),
            "examples": ["given(red_cup, person_1)", "in(blue_can, bin)"],
        }

    @classmethod
    def parse(cls, text: str) -> Predicate:
        return cls.model_validate(text)

    def positive(self) -> Predicate:
        return self.model_copy(update={"negated": False})

    def __str__(self) -> str:
        core = f"{self.name}({', '.join(self.args)})"
        return f"not {core}" if self.negated else core


def _parse_fields(text: str) -> dict[str, Any]:
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a predicate; write it like 'on(red_cup, table)'")
    negation, name, raw_args = match.groups()
    if name not in ARITY:
        from scenarios.catalog import nearest

        hint = nearest(name, list(ARITY))
        suffix = f"; did you mean {hint!r}?" if hint else ""
        raise ValueError(f"unknown predicate {name!r} (known: {', '.join(ARITY)}){suffix}")
    args = tuple(a.strip() for a in raw_args.split(",")) if raw_args.strip() else ()
    return {"name": name, "args": args, "negated": bool(negation)}
