"""Predicate probabilities from tracks, people and proprioception, mirroring ground truth's meaning.

`scenarios.ground_truth` defines each predicate on the true state; these estimates apply
the same definitions to what perception believes, and turn the margin by which a
definition is met into a probability, scaled by how sure the track is.
"""

from __future__ import annotations

import math

import numpy as np

from perception.static_map import StaticMap
from perception.tracking import SUPPORT_GAP, ObjectTrack, gap_to_support, rests_on_palm
from scenarios.ground_truth import REACH_DISTANCE
from scenarios.schema import FLOOR_ID, PERSON_FOOTPRINT_RADIUS, ROBOT_ID

SEEN = 0.97


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def object_predicates(t: ObjectTrack, static: StaticMap, hands: dict[str, np.ndarray],
                      at_hand: str | None = None) -> dict[str, float]:
    """visible / holding / on / in / given for one track (only if it has ever been seen).

    `hands` are people's palms; `at_hand` the robot hand still at the object
    (`tracking.hand_at`): an object on a palm is given only once the robot's fingers are off
    it, as ground truth's `given` says.
    """
    out: dict[str, float] = {f"visible({t.id})": SEEN if t.visible else 1.0 - SEEN}
    if not t.known:
        return out
    conf = t.confidence
    held = t.held_side is not None
    # Ground truth's holding is gripped and resting on nothing: fingers closed on a box still on
    # the table are not a finished pick. Once lifted it stays held until let go, also when set
    # down on a palm or a surface with the fingers still round it (a release not finished yet),
    # so a retried handover or place starts from what it holds.
    out[f"holding({t.id})"] = 0.95 * conf if held and t.lifted else 0.02
    pos = t.position
    on_person = None
    for pid, hand in hands.items():
        if rests_on_palm(t.category, pos, hand):
            on_person = pid
    # Seen there, or released over it and not seen since (then `conf` is at most RELEASED_CONFIDENCE).
    p_there = 0.95 * conf
    let_go = not held and at_hand is None
    for pid in hands:
        out[f"given({t.id}, {pid})"] = p_there if (on_person == pid and let_go) else 0.02
    container = static.container_at(pos)
    for cid in static.containers:
        out[f"in({t.id}, {cid})"] = p_there if (container == cid and not held) else 0.02
    support = None
    if not held and on_person is None and container is None:
        if t.resting_on is not None:
            support = t.resting_on
        else:
            gap, s = gap_to_support(t.category, pos, static)
            if abs(gap) < SUPPORT_GAP:
                support = s.owner
    surfaces = {s.owner for s in static.surfaces}
    for sid in surfaces:
        out[f"on({t.id}, {sid})"] = (0.95 * conf) if support == sid else 0.02
    return out


def near(a_xy: np.ndarray, target: str, static: StaticMap, objects: dict[str, ObjectTrack],
         hands: dict[str, np.ndarray], people_xy: dict[str, np.ndarray], a_is_robot: bool) -> float | None:
    """P(near(a, target)) as ground truth measures it (planar distance to its closest point)."""
    if target in static.furniture:
        d = static.distance_to_furniture(a_xy, target)
    elif target in objects and objects[target].known:
        d = float(np.hypot(*(a_xy[:2] - objects[target].position[:2])))
    elif target in hands or target in people_xy:
        point = hands.get(target)
        if point is None:
            return None
        d = float(np.hypot(*(a_xy[:2] - point[:2])))
        if not a_is_robot:
            d = max(d - PERSON_FOOTPRINT_RADIUS, 0.0)
    else:
        return None
    return _sigmoid((REACH_DISTANCE - d) / 0.01)


def robot_near_all(robot_xy: np.ndarray, static: StaticMap, objects: dict[str, ObjectTrack],
                   hands: dict[str, np.ndarray], people_xy: dict[str, np.ndarray]) -> dict[str, float]:
    """near(robot, x) for every furniture, known object and seen person."""
    out: dict[str, float] = {}
    for target in [*static.furniture, *objects, *people_xy]:
        p = near(robot_xy, target, static, objects, hands, people_xy, a_is_robot=True)
        if p is not None:
            out[f"near({ROBOT_ID}, {target})"] = p
    return out


__all__ = ["object_predicates", "near", "robot_near_all", "FLOOR_ID"]
