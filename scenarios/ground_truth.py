"""Privileged ground truth: what is really where, and which predicates really hold.

This reads the simulator's state directly. It exists for the scripted expert, for tests
and for measuring perception; nothing on the decision path (planner, behaviour tree,
policy at run time) may call it. A real robot has no such thing.
"""

from __future__ import annotations

import math
from typing import Literal

import mujoco
import numpy as np
from pydantic import BaseModel, ConfigDict

from scenarios.builder import SceneIndex
from scenarios.predicates import Predicate
from scenarios.robot import SIDES
from scenarios.schema import FLOOR_ID, PERSON_FOOTPRINT_RADIUS, ROBOT_ID, Scenario

REACH_DISTANCE = 0.75
"""near(robot, x): the robot's base centre is within this many metres of x's closest point."""
SUPPORT_TOLERANCE = 0.015
"""A contact counts as resting on a surface when it lies this close to the surface's top."""

Side = Literal["left", "right"]


class ObjectTruth(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]
    speed: float
    held_by: Side | None = None  # both finger pads of that gripper touch it
    touched_by: tuple[Side, ...] = ()  # any finger pad touches it
    rests_on: str | None = None  # furniture id, 'floor' or a person id (their palm)
    inside: str | None = None  # container id
    contacts: tuple[str, ...] = ()  # everything it touches: entity ids, 'floor', 'wall', 'robot'


class FurnitureTruth(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    pos: tuple[float, float]
    yaw: float
    size: tuple[float, float, float]


class PersonTruth(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    pos: tuple[float, float]
    hand: tuple[float, float, float]
    holds: tuple[str, ...] = ()


class RobotTruth(BaseModel):
    model_config = ConfigDict(frozen=True)

    base: tuple[float, float, float]  # x, y, yaw
    grasp_sites: dict[str, tuple[float, float, float]]
    holding: dict[str, str | None]


class PrivilegedState(BaseModel):
    """A snapshot of the truth; `holds` evaluates predicates on it without the simulator."""

    model_config = ConfigDict(frozen=True)

    time: float
    robot: RobotTruth
    objects: dict[str, ObjectTruth]
    furniture: dict[str, FurnitureTruth]
    people: dict[str, PersonTruth]
    visible: tuple[str, ...] | None = None  # None: visibility was not computed

    def holds(self, predicate: Predicate | str) -> bool:
        pred = Predicate.parse(predicate) if isinstance(predicate, str) else predicate
        return self._positive(pred) != pred.negated

    def _positive(self, pred: Predicate) -> bool:
        a = pred.args
        obj = self.objects.get(a[0])
        if pred.name == "holding":
            return obj is not None and obj.held_by is not None and obj.rests_on is None
        if pred.name == "on":
            return obj is not None and obj.held_by is None and obj.rests_on == a[1]
        if pred.name == "in":
            return obj is not None and obj.held_by is None and obj.inside == a[1]
        if pred.name == "given":
            return obj is not None and not obj.touched_by and obj.rests_on == a[1] and a[1] in self.people
        if pred.name == "visible":
            if self.visible is None:
                raise ValueError("visible(...) needs a state computed with visibility=True")
            return a[0] in self.visible
        if pred.name == "near":
            return self.distance(a[0], a[1]) <= REACH_DISTANCE
        raise ValueError(f"unknown predicate {pred.name}")

    def _point(self, entity: str) -> tuple[float, float]:
        if entity == ROBOT_ID:
            return self.robot.base[0], self.robot.base[1]
        if entity in self.objects:
            return self.objects[entity].pos[:2]
        if entity in self.people:
            return self.people[entity].hand[:2]
        if entity in self.furniture:
            return self.furniture[entity].pos
        raise KeyError(f"unknown entity {entity!r}")

    def distance(self, a: str, b: str) -> float:
        """Planar distance from a's reference point to b's closest point (footprint for furniture)."""
        ax, ay = self._point(a)
        if b in self.furniture:
            f = self.furniture[b]
            dx, dy = ax - f.pos[0], ay - f.pos[1]
            c, s = math.cos(f.yaw), math.sin(f.yaw)
            lx, ly = c * dx + s * dy, -s * dx + c * dy
            return math.hypot(max(abs(lx) - f.size[0] / 2, 0.0), max(abs(ly) - f.size[1] / 2, 0.0))
        bx, by = self._point(b)
        d = math.hypot(ax - bx, ay - by)
        if b in self.people and a != ROBOT_ID:
            d = max(d - PERSON_FOOTPRINT_RADIUS, 0.0)
        return d


class GroundTruth:
    """Reads privileged state out of a compiled scenario model."""

    def __init__(self, model: mujoco.MjModel, scenario: Scenario, index: SceneIndex) -> None:
        self.model, self.scenario, self.index = model, scenario, index

        def body(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)

        def geom(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)

        self._object_body = {o: body(o) for o in index.objects}
        self._body_object = {b: o for o, b in self._object_body.items()}
        self._object_joint_adr = {
            o: model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"{o}/joint")] for o in index.objects
        }
        self._pads = {geom(f"{s}_pad_a"): s for s in SIDES} | {geom(f"{s}_pad_b"): s for s in SIDES}
        self._site = {s: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, f"{s}_grasp_site") for s in SIDES}
        # Support geoms: id -> (support id, top height or None for "measured from geom").
        self._support: dict[int, tuple[str, float]] = {geom("floor"): (FLOOR_ID, 0.0)}
        for fid, surfaces in index.surfaces.items():
            for name, top in surfaces:
                self._support[geom(name)] = (fid, top)
        self._palm_geoms: dict[int, str] = {}
        for p in scenario.people:
            for part in ("palm", "fingers", "thumb"):
                self._palm_geoms[geom(f"{p.id}/{part}")] = p.id
        self._hand_site = {p.id: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, f"{p.id}/hand") for p in scenario.people}
        self._containers = {c: scenario.furniture_by_id()[c] for c in index.containers}
        # Every body's name as the ground truth reports it in contact lists.
        entities = set(scenario.entity_ids())
        robot_root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "base")
        self._entity_of_geom: list[str] = []
        for g in range(model.ngeom):
            b = int(model.geom_bodyid[g])
            name = model.body(b).name
            if b == 0:
                gname = model.geom(g).name
                self._entity_of_geom.append("wall" if gname.startswith("wall") else FLOOR_ID)
            elif int(model.body_rootid[b]) == robot_root:
                self._entity_of_geom.append(ROBOT_ID)
            else:
                self._entity_of_geom.append(name if name in entities else model.body(int(model.body_rootid[b])).name)
        self._base_qpos = [model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j)] for j in ("base_x", "base_y", "base_yaw")]

    def object_pose(self, data: mujoco.MjData, obj: str) -> tuple[np.ndarray, np.ndarray]:
        adr = self._object_joint_adr[obj]
        return data.qpos[adr : adr + 3].copy(), data.qpos[adr + 3 : adr + 7].copy()

    def state(self, data: mujoco.MjData, visible: tuple[str, ...] | None = None) -> PrivilegedState:
        held: dict[str, set[str]] = {o: set() for o in self.index.objects}
        pad_pairs: dict[tuple[str, str], set[int]] = {}
        rests: dict[str, str] = {}
        contacts: dict[str, set[str]] = {o: set() for o in self.index.objects}
        for c in data.contact[: data.ncon]:
            g1, g2 = int(c.geom1), int(c.geom2)
            for g_obj, g_other in ((g1, g2), (g2, g1)):
                obj = self._body_object.get(int(self.model.geom_bodyid[g_obj]))
                if obj is None:
                    continue
                contacts[obj].add(self._entity_of_geom[g_other])
                if g_other in self._pads:
                    side = self._pads[g_other]
                    held[obj].add(side)
                    pad_pairs.setdefault((obj, side), set()).add(g_other)
                elif g_other in self._support:
                    sid, top = self._support[g_other]
                    if abs(float(c.pos[2]) - top) <= SUPPORT_TOLERANCE:
                        rests.setdefault(obj, sid)
                elif g_other in self._palm_geoms:
                    rests[obj] = self._palm_geoms[g_other]
        objects: dict[str, ObjectTruth] = {}
        holding: dict[str, str | None] = {s: None for s in SIDES}
        person_holds: dict[str, list[str]] = {p: [] for p in self._hand_site}
        for obj, body in self._object_body.items():
            pos, quat = self.object_pose(data, obj)
            vel = data.cvel[body][3:]
            both = [s for s in SIDES if len(pad_pairs.get((obj, s), ())) == 2]
            held_by = both[0] if both else None
            if held_by:
                holding[held_by] = obj
            on = rests.get(obj)
            if on in person_holds and not held[obj]:
                person_holds[on].append(obj)
            objects[obj] = ObjectTruth(
                id=obj, pos=tuple(pos), quat=tuple(quat), speed=float(np.linalg.norm(vel)), held_by=held_by,
                touched_by=tuple(sorted(held[obj])), rests_on=on, inside=self._inside(pos),
                contacts=tuple(sorted(contacts[obj])),
            )
        base = tuple(float(data.qpos[a]) for a in self._base_qpos)
        return PrivilegedState(
            time=float(data.time),
            robot=RobotTruth(
                base=base,  # type: ignore[arg-type]
                grasp_sites={s: tuple(data.site_xpos[i]) for s, i in self._site.items()},
                holding=holding,
            ),
            objects=objects,
            furniture={
                f.id: FurnitureTruth(id=f.id, pos=f.pos, yaw=f.yaw, size=f.dims) for f in self.scenario.furniture
            },
            people={
                p: PersonTruth(id=p, pos=self.scenario.person_by_id()[p].pos, hand=tuple(data.site_xpos[i]), holds=tuple(person_holds[p]))
                for p, i in self._hand_site.items()
            },
            visible=visible,
        )

    def _inside(self, pos: np.ndarray) -> str | None:
        for cid, f in self._containers.items():
            dx, dy = pos[0] - f.pos[0], pos[1] - f.pos[1]
            c, s = math.cos(f.yaw), math.sin(f.yaw)
            lx, ly = c * dx + s * dy, -s * dx + c * dy
            if abs(lx) < f.dims[0] / 2 and abs(ly) < f.dims[1] / 2 and 0.0 < pos[2] < f.dims[2] + 0.02:
                return cid
        return None

    def visible_objects(self, segmentation: np.ndarray, min_pixels: int = 30) -> tuple[str, ...]:
        """Objects with at least `min_pixels` pixels in a segmentation image (geom ids)."""
        ids = segmentation[segmentation >= 0]
        if ids.size == 0:
            return ()
        counts = np.bincount(self.model.geom_bodyid[ids], minlength=self.model.nbody)
        return tuple(o for o, b in self._object_body.items() if counts[b] >= min_pixels)
