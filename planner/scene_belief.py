"""A belief read straight from a scenario file: the stand-in used before perception runs.

`vla-agent plan` (which executes nothing), the goal test set and the planner's tests need
a belief without cameras. This one places every object at its nominal position from the
file with confidence 1, states where each rests (`on(...)`, or `in(...)` for a bin), puts
people where the file says and the robot at its start. It asserts nothing it has not
"seen": no `visible(...)` and no `near(...)`, so plans start with looking and driving.
At run time the belief comes from perception instead; nothing else changes.
"""

from __future__ import annotations

import math

from perception.belief import Belief, ObjectBelief, PersonBelief, RobotBelief
from scenarios.catalog import FURNITURE
from scenarios.schema import FLOOR_ID, Scenario, object_world_xy, support_top


def belief_from_scenario(scenario: Scenario, time: float = 0.0) -> Belief:
    """The scene as written in the file, as a Belief (see the module docstring for what it omits)."""
    furniture = scenario.furniture_by_id()
    objects: dict[str, ObjectBelief] = {}
    predicates: dict[str, float] = {}
    for o in scenario.objects:
        x, y = object_world_xy(furniture, o)
        z = support_top(furniture, o) + o.height / 2
        objects[o.id] = ObjectBelief(
            id=o.id, category=o.category, colour=o.colour, position=(x, y, z),
            confidence=1.0, last_seen=time, visible=False,
        )
        if o.on == FLOOR_ID:
            predicates[f"on({o.id}, {FLOOR_ID})"] = 1.0
        elif FURNITURE[furniture[o.on].kind].container:
            predicates[f"in({o.id}, {o.on})"] = 1.0
        else:
            predicates[f"on({o.id}, {o.on})"] = 1.0
    people = {
        p.id: PersonBelief(id=p.id, position=p.pos, hand=p.hand_position(), confidence=1.0) for p in scenario.people
    }
    start = scenario.robot.start
    robot = RobotBelief(pose=(start.x, start.y, math.radians(start.yaw_deg)), gripper_closed={"left": False, "right": False})
    return Belief(time=time, robot=robot, objects=objects, people=people, predicates=predicates)
