"""Instruction strings for skills: several phrasings, objects named as a person would name them.

An object is named by colour and category ("the red cup"), by category alone only when no
other object in the scene shares the category ("the cup"), or by colour alone only when
no other object shares the colour ("the red one"). Furniture and people are named by
their kind ("the table", "the person"). The choice is deterministic given the rng.
"""

from __future__ import annotations

import numpy as np

from scenarios.schema import Scenario

TEMPLATES: dict[str, tuple[str, ...]] = {
    "look_for": ("look for the {object}", "find the {object}", "search for the {object}", "where is the {object}?",
                 "locate the {object}"),
    "navigate_to": ("go to the {target}", "move to the {target}", "approach the {target}", "drive over to the {target}",
                    "head to the {target}"),
    "pick": ("pick up the {object}", "grasp the {object}", "grab the {object}", "get the {object}", "take the {object}"),
    "place": ("put the {object} on the {surface}", "place the {object} on the {surface}", "set the {object} down on the {surface}",
              "leave the {object} on the {surface}"),
    "place_in": ("put the {object} in the {container}", "drop the {object} into the {container}",
                 "throw the {object} in the {container}", "place the {object} in the {container}"),
    "handover": ("hand the {object} to the {person}", "give the {object} to the {person}", "pass the {object} to the {person}",
                 "bring the {object} to the {person}"),
}
PLACE_IN_CONTAINER = ("put the {object} in the {surface}", "drop the {object} into the {surface}")


def object_names(scenario: Scenario, obj_id: str) -> list[str]:
    """Unambiguous ways to name an object in this scene."""
    objs = scenario.object_by_id()
    o = objs[obj_id]
    names = [f"{o.colour} {o.category}"]
    if sum(x.category == o.category for x in objs.values()) == 1:
        names.append(o.category)
    if sum(x.colour == o.colour for x in objs.values()) == 1:
        names.append(f"{o.colour} one" if o.category else o.colour)
    return names


def entity_name(scenario: Scenario, entity: str, rng: np.random.Generator) -> str:
    if entity in scenario.object_by_id():
        return str(rng.choice(object_names(scenario, entity)))
    furniture = scenario.furniture_by_id()
    if entity in furniture:
        f = furniture[entity]
        same = [x for x in scenario.furniture if x.kind == f.kind]
        return f.kind if len(same) == 1 else entity.replace("_", " ")
    people = scenario.person_by_id()
    if entity in people:
        return "person" if len(people) == 1 else entity.replace("_", " ")
    return entity.replace("_", " ")


def instruction(scenario: Scenario, skill: str, args: dict[str, str], rng: np.random.Generator) -> str:
    """One phrasing of `skill(args)`, drawn with `rng`."""
    templates = TEMPLATES[skill]
    if skill == "place" and args.get("surface") in {f.id for f in scenario.furniture if f.kind == "bin"}:
        templates = PLACE_IN_CONTAINER
    names = {k: entity_name(scenario, v, rng) for k, v in args.items()}
    return str(rng.choice(templates)).format(**names)
