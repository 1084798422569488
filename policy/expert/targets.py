"""Where the base should stand for a target: approach poses for objects, furniture and people.

An object on furniture is approached from one of the furniture's free sides (the open face
of a shelf), facing it, with the object in front of the arm that will take it. The
distance to the edge depends on how far the robot's body fits under the top (the base
slides under a table's slab until the pelvis meets it; a counter's cabinet stops the
wheels) and on where the grasp wants the object. People are approached facing their
outstretched palm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from policy.expert.geometry import to_base, to_world
from policy.expert.grasps import grasp_kind, preferred_forward, top_grasp_point, top_pitch
from policy.expert.navigation import Obstacle, obstacles
from scenarios.ground_truth import FurnitureTruth, PrivilegedState
from scenarios.robot import SHOULDER_OFFSET
from scenarios.schema import ROBOT_ID, Scenario

# Robot body profile: (bottom z, top z, forward extent from the base centre).
BODY_PROFILE = ((0.0, 0.28, 0.245), (0.27, 0.73, 0.075), (0.70, 0.82, 0.10), (0.80, 0.94, 0.085), (0.90, 1.21, 0.11))
EDGE_MARGIN = 0.025
ARM_Y = SHOULDER_OFFSET[1] - 0.04  # lateral offset of an object in front of an arm
BASE_CLEARANCE = 0.33  # from other obstacles at the approach pose
PERSON_DISTANCE = 0.50  # base centre to the person's palm, forward


@dataclass(frozen=True)
class ApproachPose:
    x: float
    y: float
    yaw: float
    arm: str | None = None  # arm meant to act at this pose
    normal: tuple[float, float] = (0.0, 0.0)  # outward normal of the edge faced (world)

    @property
    def xy(self) -> np.ndarray:
        return np.array([self.x, self.y])


def min_standoff(f: FurnitureTruth, kind: str) -> float:
    """Closest the base centre can get to a side of this furniture."""
    h = f.size[2]
    if kind in ("counter", "bin", "sofa", "shelf"):
        return 0.245 + 0.03 + EDGE_MARGIN
    # A table: only the slab (top 4 cm) is in the way above the legs.
    reach = max((ext for lo, hi, ext in BODY_PROFILE if lo < h and hi > h - 0.04), default=0.0)
    return reach + EDGE_MARGIN


def _sides(kind: str) -> list[tuple[float, float]]:
    if kind == "shelf":
        return [(0.0, -1.0)]  # the open face (the back is at local +y)
    return [(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)]


def _local(f: FurnitureTruth, xy: np.ndarray) -> np.ndarray:
    return to_base((f.pos[0], f.pos[1], f.yaw), xy)


def _world(f: FurnitureTruth, local: np.ndarray) -> np.ndarray:
    return to_world((f.pos[0], f.pos[1], f.yaw), local)


def _pose_clear(pose_xy: np.ndarray, obs: list[Obstacle], room: tuple[float, float], skip: set[int]) -> float:
    """Clearance of a base position from obstacles other than those in `skip` and from walls."""
    wall = min(room[0] / 2 - abs(pose_xy[0]), room[1] / 2 - abs(pose_xy[1]))
    d = [float(o.distance(pose_xy[None])[0]) - (0.15 if o.tall else 0.0) for i, o in enumerate(obs) if i not in skip]
    return min([wall] + d)


def object_approaches(scenario: Scenario, state: PrivilegedState, obj_id: str, arm: str | None = None) -> list[tuple[float, ApproachPose]]:
    """Candidate base poses to pick `obj_id`, with a cost each (lower is better), best first."""
    truth = state.objects[obj_id]
    obj = scenario.object_by_id()[obj_id]
    support = truth.rests_on if truth.rests_on in state.furniture else obj.on
    obs = obstacles(scenario, state)
    xy = np.asarray(truth.pos[:2])
    kind_g = grasp_kind(obj, truth)
    want = preferred_forward(kind_g)
    out: list[tuple[float, ApproachPose]] = []
    if support not in state.furniture:  # on the floor or elsewhere: stand back from it in any direction
        for ang in np.linspace(-math.pi, math.pi, 16, endpoint=False):
            n = np.array([math.cos(ang), math.sin(ang)])
            for side in ([arm] if arm else ["left", "right"]):
                sgn = 1.0 if side == "left" else -1.0
                yaw = math.atan2(-n[1], -n[0])
                base = xy + n * want - np.array([-math.sin(yaw), math.cos(yaw)]) * sgn * ARM_Y
                clear = _pose_clear(base, obs, scenario.room.size, set())
                if clear >= BASE_CLEARANCE:
                    out.append((float(np.linalg.norm(base - np.array(state.robot.base[:2]))) * 0.1, ApproachPose(*base, yaw, side, tuple(n))))
        return sorted(out, key=lambda c: c[0])
    f = state.furniture[support]
    fkind = scenario.furniture_by_id()[support].kind
    skip = {i for i, o in enumerate(obs) if o.kind == "box" and np.allclose(o.centre, f.pos) and abs(o.yaw - f.yaw) < 1e-9}
    local = _local(f, xy)
    half = np.array(f.size[:2]) / 2
    s_min = min_standoff(f, fkind)
    others = [np.asarray(o.pos[:2]) for oid, o in state.objects.items() if oid != obj_id and o.held_by is None]
    robot_xy = np.array(state.robot.base[:2])
    for nl in _sides(fkind):
        nl = np.asarray(nl)
        axis = 0 if nl[0] != 0 else 1
        depth = half[axis] - nl[axis] * local[axis]
        side_standoff = max(s_min, want - depth)
        n_world = _world(f, nl) - np.asarray(f.pos)
        yaw = math.atan2(-n_world[1], -n_world[0])
        left = np.array([-math.sin(yaw), math.cos(yaw)])
        for side in ([arm] if arm else ["left", "right"]):
            sgn = 1.0 if side == "left" else -1.0
            edge_local = local.copy()
            edge_local[axis] = nl[axis] * half[axis]
            standoff = side_standoff  # per arm: one arm's leg clearance must not push the other back
            base = _world(f, edge_local) + n_world * standoff - left * sgn * ARM_Y
            # Sliding under a table top only works between its legs (inset 5 cm from the corners).
            base_local = _local(f, base)
            along = 1 - axis
            overhang = abs(base_local[along]) - half[along]
            if standoff < 0.27 and abs(base_local[along]) + 0.26 > half[along] - 0.08:
                standoff = 0.27
                base = _world(f, edge_local) + n_world * standoff - left * sgn * ARM_Y
            clear = _pose_clear(base, obs, scenario.room.size, skip)
            if clear < BASE_CLEARANCE:
                continue
            forward = standoff + depth
            cost = 4.0 * max(forward - want, 0.0) + 2.0 * max(0.0, overhang + 0.25) * (standoff < 0.245)
            # Things in the hand's way: other objects between the robot and the target.
            for o in others:
                ob = to_base((base[0], base[1], yaw), o)
                tb = to_base((base[0], base[1], yaw), xy)
                if 0.0 < ob[0] < tb[0] + 0.05 and abs(ob[1] - tb[1]) < 0.11:
                    cost += 1.0
            cost += 0.05 * float(np.linalg.norm(base - robot_xy))
            if forward > 0.72:
                cost += 10.0
            if kind_g == "top":
                # Out of the arm's reach even with the hand tipped forward: a last resort.
                pb = to_base((base[0], base[1], yaw), top_grasp_point(obj, truth))
                if not top_pitch(pb, side, math.atan2(pb[1] - sgn * 0.12, pb[0]))[1]:
                    cost += 5.0
            out.append((cost, ApproachPose(float(base[0]), float(base[1]), yaw, side, (float(n_world[0]), float(n_world[1])))))
    return sorted(out, key=lambda c: c[0])


def furniture_approaches(scenario: Scenario, state: PrivilegedState, fid: str, arm: str | None = None) -> list[tuple[float, ApproachPose]]:
    """Base poses facing a side of furniture `fid`, with room on the top in front of `arm`."""
    f = state.furniture[fid]
    fkind = scenario.furniture_by_id()[fid].kind
    obs = obstacles(scenario, state)
    skip = {i for i, o in enumerate(obs) if o.kind == "box" and np.allclose(o.centre, f.pos) and abs(o.yaw - f.yaw) < 1e-9}
    half = np.array(f.size[:2]) / 2
    s_min = min_standoff(f, fkind)
    robot_xy = np.array(state.robot.base[:2])
    on_top = [np.asarray(o.pos[:2]) for o in state.objects.values() if o.rests_on == fid or o.inside == fid]
    sgn = 1.0 if (arm or "right") == "left" else -1.0
    out: list[tuple[float, ApproachPose]] = []
    for nl in _sides(fkind):
        nl = np.asarray(nl)
        axis = 0 if nl[0] != 0 else 1
        along = 1 - axis
        n_world = _world(f, nl) - np.asarray(f.pos)
        yaw = math.atan2(-n_world[1], -n_world[0])
        left = np.array([-math.sin(yaw), math.cos(yaw)])
        depth = min(0.2, half[axis] - 0.06) if fkind != "bin" else half[axis]
        standoff = max(s_min, preferred_forward("side") - depth) if fkind != "bin" else s_min
        if f.size[2] > 1.0:
            # Tall furniture: a carried object (0.36 m ahead, below the top) must stay outside it.
            standoff = max(standoff, 0.46)
        span = max(half[along] - 0.12, 0.0)
        for t in np.linspace(-span, span, max(1, int(2 * span / 0.1) + 1)) if fkind != "bin" else [0.0]:
            spot_local = nl * half - nl * depth
            spot_local[along] = t
            spot = _world(f, spot_local)
            base = spot + n_world * (standoff + depth) - left * sgn * (ARM_Y if fkind != "bin" else 0.1)
            clear = _pose_clear(base, obs, scenario.room.size, skip)
            if clear < BASE_CLEARANCE:
                continue
            cost = 0.3 * float(np.linalg.norm(base - robot_xy))
            for o in on_top:
                cost += 2.0 * max(0.0, 0.15 - float(np.linalg.norm(o - spot)))
            out.append((cost, ApproachPose(float(base[0]), float(base[1]), yaw, arm, (float(n_world[0]), float(n_world[1])))))
    return sorted(out, key=lambda c: c[0])


def person_approaches(scenario: Scenario, state: PrivilegedState, pid: str, arm: str | None = None) -> list[tuple[float, ApproachPose]]:
    """Base poses facing the person's palm, with the palm in front of `arm`."""
    p = state.people[pid]
    palm = np.asarray(p.hand[:2])
    obs = obstacles(scenario, state)
    sgn = 1.0 if (arm or "right") == "left" else -1.0
    u0 = palm - np.asarray(p.pos)
    base_ang = math.atan2(u0[1], u0[0])
    out: list[tuple[float, ApproachPose]] = []
    for dang in np.radians([0, 20, -20, 40, -40, 60, -60]):
        ang = base_ang + dang
        u = np.array([math.cos(ang), math.sin(ang)])
        yaw = math.atan2(-u[1], -u[0])
        left = np.array([-math.sin(yaw), math.cos(yaw)])
        base = palm + u * PERSON_DISTANCE - left * sgn * ARM_Y
        skip = {i for i, o in enumerate(obs) if o.kind == "circle" and (np.allclose(o.centre, p.pos) or np.allclose(o.centre, palm))}
        clear = _pose_clear(base, obs, scenario.room.size, skip)
        if clear < BASE_CLEARANCE or np.linalg.norm(base - np.asarray(p.pos)) < 0.62:
            continue
        out.append((abs(float(dang)), ApproachPose(float(base[0]), float(base[1]), yaw, arm, (float(u[0]), float(u[1])))))
    return sorted(out, key=lambda c: c[0])


def approaches(scenario: Scenario, state: PrivilegedState, target: str, arm: str | None = None) -> list[tuple[float, ApproachPose]]:
    if target in state.objects:
        return object_approaches(scenario, state, target, arm)
    if target in state.furniture:
        return furniture_approaches(scenario, state, target, arm)
    if target in state.people:
        return person_approaches(scenario, state, target, arm)
    raise KeyError(target)


def in_reach(scenario: Scenario, state: PrivilegedState, target: str) -> bool:
    """navigate_to's success: near(robot, target) and the target within an arm's reach, in front."""
    if not state.holds(f"near({ROBOT_ID}, {target})"):
        return False
    base = state.robot.base
    if target in state.objects:
        p = to_base(base, state.objects[target].pos[:2])
        return 0.2 <= p[0] <= 0.72 and abs(p[1]) <= 0.42
    if target in state.people:
        p = to_base(base, state.people[target].hand[:2])
        return 0.3 <= p[0] <= 0.75 and abs(p[1]) <= 0.42
    f = state.furniture[target]
    local = _local(f, np.asarray(base[:2]))
    half = np.array(f.size[:2]) / 2
    closest = _world(f, np.clip(local, -half, half))
    p = to_base(base, closest)
    return float(np.linalg.norm(p)) <= 0.55 and p[0] > 0 and abs(math.atan2(p[1], p[0])) <= math.radians(50)
