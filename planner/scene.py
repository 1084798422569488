"""The planner's view of a scene: the static map from the scenario, the rest from the belief.

Furniture does not move, so it (and a person's facing, which perception does not estimate)
comes from the scenario; objects, where they rest, people's positions and the robot's pose
come from the belief. Everything the planner asks of a scene (what kind of thing an id is,
how to name it in an instruction, where it is) goes through here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

from perception.belief import Belief
from planner.skills import ParamType
from scenarios.catalog import FURNITURE
from scenarios.schema import FLOOR_ID, ROBOT_ID, Furniture, Scenario

SKIP_CONFIDENCE = 0.5
"""A belief predicate counts as true at or above this probability."""


@dataclass
class Scene:
    scenario: Scenario
    belief: Belief
    true_facts: frozenset[tuple[str, tuple[str, ...]]] = field(init=False)

    def __post_init__(self) -> None:
        facts = set()
        for text, p in self.belief.predicates.items():
            if p >= SKIP_CONFIDENCE:
                name, _, rest = text.partition("(")
                facts.add((name.strip(), tuple(a.strip() for a in rest.rstrip(")").split(","))))
        self.true_facts = frozenset(facts)

    @cached_property
    def furniture(self) -> dict[str, Furniture]:
        return self.scenario.furniture_by_id()

    @cached_property
    def people_ids(self) -> list[str]:
        return list(self.belief.people) or [p.id for p in self.scenario.people]

    @cached_property
    def inventory(self) -> dict:
        """The scenario's objects: what a lost object was, when perception no longer tracks it."""
        return self.scenario.object_by_id()

    def kind(self, entity: str) -> str:
        """'object', 'person', 'robot', 'floor' or the furniture kind."""
        if entity in self.belief.objects or entity in self.inventory:
            return "object"
        if entity in self.furniture:
            return self.furniture[entity].kind
        if entity in self.belief.people or entity in self.scenario.person_by_id():
            return "person"
        if entity == ROBOT_ID:
            return "robot"
        if entity == FLOOR_ID:
            return "floor"
        return "unknown"

    def types_of(self, entity: str) -> set[ParamType]:
        k = self.kind(entity)
        if k == "object":
            return {"object", "target"}
        if k == "person":
            return {"person", "target"}
        if k in FURNITURE:
            out: set[ParamType] = {"furniture", "target"}
            if FURNITURE[k].surface:
                out |= {"surface", "place"}
            if FURNITURE[k].container:
                out |= {"container", "place"}
            return out
        return set()

    def describe(self, entity: str) -> str:
        """How an instruction names the entity: 'red cup', 'coffee table', 'person'."""
        if entity in self.belief.objects:
            o = self.belief.objects[entity]
            same = [x for x in self.belief.objects.values() if x.colour == o.colour and x.category == o.category]
            return o.description if len(same) == 1 else f"{o.description} ({entity.replace('_', ' ')})"
        if entity in self.inventory:
            return self.inventory[entity].description
        if entity in self.furniture:
            f = self.furniture[entity]
            same_kind = [x for x in self.furniture.values() if x.kind == f.kind]
            return f.kind if len(same_kind) == 1 and entity == f.kind else entity.replace("_", " ")
        if self.kind(entity) == "person":
            return "person" if len(self.people_ids) == 1 else entity.replace("_", " ")
        return entity.replace("_", " ")

    def the(self, entity: str) -> str:
        return "the " + self.describe(entity)

    def position(self, entity: str) -> tuple[float, float] | None:
        if entity in self.belief.objects:
            x, y, _ = self.belief.objects[entity].position
            return (x, y)
        if entity in self.belief.people:
            return self.belief.people[entity].position
        if entity in self.furniture:
            return self.furniture[entity].pos
        if entity == ROBOT_ID:
            return (self.belief.robot.pose[0], self.belief.robot.pose[1])
        p = self.scenario.person_by_id().get(entity)
        return p.pos if p else None

    def frame(self, entity: str) -> tuple[tuple[float, float], float] | None:
        """(position, facing yaw) of the robot or a person, for left/right."""
        if entity == ROBOT_ID:
            x, y, yaw = self.belief.robot.pose
            return (x, y), yaw
        person = self.scenario.person_by_id().get(entity)
        pos = self.position(entity)
        if person is None or pos is None:
            return None
        return pos, math.radians(person.yaw_deg)

    def support_of(self, obj: str) -> str | None:
        """The furniture (or floor) an object rests on or lies in, per the belief."""
        for name, args in self.true_facts:
            if name in ("on", "in") and args[0] == obj:
                return args[1]
        return None

    def holds(self, name: str, args: tuple[str, ...]) -> bool:
        return (name, args) in self.true_facts

    def fits(self, skill_params: dict[str, ParamType], args: tuple[str, ...]) -> bool:
        return len(skill_params) == len(args) and all(t in self.types_of(a) for t, a in zip(skill_params.values(), args))
