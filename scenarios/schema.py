"""Scenario files as pydantic models: the contract between scenario authors and the world.

A scenario lays out a room (furniture, graspable objects, people, lights), the robot's
start, how much to randomise, and example goals with the predicates that define their
success. Field checks live on the fields; checks that relate several parts of a scene
(overlaps, supports, references in goals) live in `consistency_issues`, which reports
every problem with the path of the field it concerns so the loader can point at the
line in the YAML file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scenarios.catalog import CATEGORIES, COLOURS, FURNITURE, SHELF_BOARD_HEIGHTS, nearest
from scenarios.predicates import Predicate

Id = str
ROBOT_ID = "robot"
FLOOR_ID = "floor"
RESERVED_IDS = (ROBOT_ID, FLOOR_ID)
ROBOT_FOOTPRINT_RADIUS = 0.3
PERSON_FOOTPRINT_RADIUS = 0.25
_SUPPORT_MARGIN = 0.01


def _check_id(value: str) -> str:
    import re

    if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise ValueError(f"{value!r} is not a valid id: use lower case letters, digits and _, starting with a letter")
    if value in RESERVED_IDS:
        raise ValueError(f"{value!r} is reserved; choose another id")
    return value


def _check_name(value: str, known: dict, what: str) -> str:
    """`value` if it names an entry of `known`, else an error with the nearest valid name."""
    if value not in known:
        hint = nearest(value, list(known))
        raise ValueError(
            f"unknown {what} {value!r}" + (f"; did you mean {hint!r}?" if hint else "") + f" (known: {', '.join(known)})"
        )
    return value


def _check_colour(value: str) -> str:
    return _check_name(value, COLOURS, "colour")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Room(_Strict):
    """The room is centred on the world origin: x spans ±size[0]/2, y spans ±size[1]/2."""

    size: tuple[float, float] = Field(description="room length along x and width along y, metres")
    wall_height: float = Field(2.6, gt=0.5, le=6.0)
    floor_colour: str = "grey"
    wall_colour: str = "white"

    @field_validator("size")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if min(v) < 2.0 or max(v) > 30.0:
            raise ValueError(f"room size {v} must be between 2 and 30 metres on each side")
        return v

    check_colours = field_validator("floor_colour", "wall_colour")(classmethod(lambda cls, v: _check_colour(v)))


class Pose2D(_Strict):
    x: float
    y: float
    yaw_deg: float = Field(0.0, ge=-360.0, le=360.0, description="heading in degrees, counter-clockwise from +x")

    @property
    def yaw(self) -> float:
        return math.radians(self.yaw_deg)


class RobotStart(_Strict):
    start: Pose2D = Field(description="where the robot's base centre starts, facing yaw_deg")


class Furniture(_Strict):
    id: Id
    kind: str = Field(description="table, counter, shelf, bin or sofa")
    pos: tuple[float, float] = Field(description="centre of the footprint on the floor, world x y in metres")
    yaw_deg: float = Field(0.0, ge=-360.0, le=360.0)
    size: tuple[float, float, float] | None = Field(
        None, description="length (along its own x), depth, height in metres; defaults per kind"
    )
    colour: str | None = None

    check_id = field_validator("id")(classmethod(lambda cls, v: _check_id(v)))

    check_kind = field_validator("kind")(classmethod(lambda cls, v: _check_name(v, FURNITURE, "furniture kind")))

    @field_validator("colour")
    @classmethod
    def _colour(cls, v: str | None) -> str | None:
        return None if v is None else _check_colour(v)

    @field_validator("size")
    @classmethod
    def _size(cls, v: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if v is not None and (min(v) < 0.1 or max(v) > 4.0):
            raise ValueError(f"furniture size {v} must be between 0.1 and 4 metres on each side")
        return v

    @property
    def dims(self) -> tuple[float, float, float]:
        return self.size or FURNITURE[self.kind].size

    @property
    def yaw(self) -> float:
        return math.radians(self.yaw_deg)

    @property
    def look(self) -> str:
        return self.colour or FURNITURE[self.kind].colour

    def surface_heights(self) -> tuple[float, ...]:
        """Heights (m) of the levels objects can rest on; a shelf has several, a bin its floor."""
        defaults = FURNITURE[self.kind]
        height = self.dims[2]
        if self.kind == "shelf":
            return tuple(height * f for f in SHELF_BOARD_HEIGHTS) + (height,)
        if defaults.container:
            return (BIN_WALL,)
        return (height,) if defaults.surface else ()

    def to_world(self, local_xy: tuple[float, float]) -> tuple[float, float]:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return (self.pos[0] + c * local_xy[0] - s * local_xy[1], self.pos[1] + s * local_xy[0] + c * local_xy[1])

    def footprint_corners(self) -> list[tuple[float, float]]:
        hx, hy = self.dims[0] / 2, self.dims[1] / 2
        return [self.to_world((sx * hx, sy * hy)) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]


BIN_WALL = 0.012
"""Thickness of a bin's walls and floor (m); objects in a bin rest on its floor at this height."""


class SceneObject(_Strict):
    """A graspable object resting on a support (a furniture id or `floor`)."""

    id: Id
    category: str = Field(description="cup, bottle, can, box or ball")
    colour: str
    on: str = Field(description="id of the furniture it rests on or lies in, or 'floor'")
    level: int | None = Field(None, ge=0, description="shelf level, 0 = lowest board; default: the top")
    at: tuple[float, float] = Field(
        (0.0, 0.0),
        description="position in the support's own frame, from its centre (metres); world x y when on the floor",
    )
    yaw_deg: float = Field(0.0, ge=-360.0, le=360.0)
    size: tuple[float, ...] | None = Field(None, description="MuJoCo geom size for the category's shape")
    mass: float | None = Field(None, gt=0.005, le=5.0)

    check_id = field_validator("id")(classmethod(lambda cls, v: _check_id(v)))
    check_colour = field_validator("colour")(classmethod(lambda cls, v: _check_colour(v)))

    check_category = field_validator("category")(classmethod(lambda cls, v: _check_name(v, CATEGORIES, "object category")))

    @model_validator(mode="after")
    def _size_matches_shape(self) -> SceneObject:
        if self.size is not None:
            want = len(CATEGORIES[self.category].size)
            if len(self.size) != want or min(self.size) <= 0.005 or max(self.size) > 0.3:
                raise ValueError(
                    f"size {self.size} does not fit a {self.category}: give {want} value(s) between 0.005 and 0.3 m"
                )
        return self

    @property
    def dims(self) -> tuple[float, ...]:
        return self.size or CATEGORIES[self.category].size

    @property
    def height(self) -> float:
        return CATEGORIES[self.category].height(self.dims)

    @property
    def footprint_radius(self) -> float:
        return CATEGORIES[self.category].footprint_radius(self.dims)

    @property
    def weight(self) -> float:
        return self.mass or CATEGORIES[self.category].mass

    @property
    def yaw(self) -> float:
        return math.radians(self.yaw_deg)

    @property
    def description(self) -> str:
        return f"{self.colour} {self.category}"


class Person(_Strict):
    """A standing figure that holds out one hand, palm up, to receive objects."""

    id: Id
    pos: tuple[float, float]
    yaw_deg: float = Field(0.0, ge=-360.0, le=360.0, description="the direction the person faces")
    height: float = Field(1.7, ge=1.2, le=2.1)
    shirt_colour: str = "green"
    hand: Literal["left", "right"] = "right"

    check_id = field_validator("id")(classmethod(lambda cls, v: _check_id(v)))
    check_colour = field_validator("shirt_colour")(classmethod(lambda cls, v: _check_colour(v)))

    @property
    def yaw(self) -> float:
        return math.radians(self.yaw_deg)

    def hand_position(self) -> tuple[float, float, float]:
        """World position of the centre of the open palm (where handed objects rest)."""
        side = -1.0 if self.hand == "right" else 1.0
        local = (0.42, side * 0.2)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return (
            self.pos[0] + c * local[0] - s * local[1],
            self.pos[1] + s * local[0] + c * local[1],
            round(0.59 * self.height, 4),
        )


class Light(_Strict):
    pos: tuple[float, float, float]
    intensity: float = Field(0.6, gt=0.0, le=2.0, description="diffuse intensity, 0..2")
    directional: bool = False
    cast_shadow: bool = Field(False, description="shadows cost ~20 ms a frame per light in software rendering")


class CameraJitter(_Strict):
    pos: float = Field(0.005, ge=0.0, le=0.05, description="metres, uniform per axis")
    rot_deg: float = Field(1.0, ge=0.0, le=5.0, description="degrees, uniform per axis")


class Randomisation(_Strict):
    """Ranges that `reset(seed)` draws from; all zero reproduces the file exactly."""

    object_xy: float = Field(0.05, ge=0.0, le=0.5, description="± metres around each object's `at`")
    object_yaw_deg: float = Field(180.0, ge=0.0, le=180.0)
    colour_shade: float = Field(1.0, ge=0.0, le=1.0, description="0 = base colour, 1 = the whole band of the name")
    light_intensity: tuple[float, float] = Field((0.8, 1.2), description="scale range of every light's intensity")
    camera: CameraJitter = CameraJitter()
    robot_xy: float = Field(0.05, ge=0.0, le=1.0)
    robot_yaw_deg: float = Field(5.0, ge=0.0, le=180.0)

    @field_validator("light_intensity")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.1 <= v[0] <= v[1] <= 3.0:
            raise ValueError(f"light_intensity {v} must be an increasing pair between 0.1 and 3.0")
        return v

    @classmethod
    def none(cls) -> Randomisation:
        return cls(
            object_xy=0.0, object_yaw_deg=0.0, colour_shade=0.0, light_intensity=(1.0, 1.0),
            camera=CameraJitter(pos=0.0, rot_deg=0.0), robot_xy=0.0, robot_yaw_deg=0.0,
        )


class GoalExample(_Strict):
    """A goal a user might type in this scene and the predicates that define its success."""

    text: str = Field(min_length=3, max_length=300)
    success: list[Predicate] = Field(min_length=1)


class OverviewCamera(_Strict):
    pos: tuple[float, float, float]
    look_at: tuple[float, float, float]
    fovy: float = Field(60.0, ge=20.0, le=120.0)


class Scenario(_Strict):
    name: str = Field(description="identifier used on the command line")
    description: str = ""
    room: Room
    robot: RobotStart
    furniture: list[Furniture] = Field(default_factory=list)
    objects: list[SceneObject] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)
    lights: list[Light] = Field(
        default_factory=lambda: [Light(pos=(0.0, 0.0, 2.5), intensity=0.5), Light(pos=(1.0, -1.0, 2.5), intensity=0.3)]
    )
    randomisation: Randomisation = Randomisation()
    overview_camera: OverviewCamera | None = None
    goals: list[GoalExample] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[a-z][a-z0-9_\-]*", v):
            raise ValueError(f"{v!r} is not a valid scenario name: lower case letters, digits, _ and -")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        issues = consistency_issues(self)
        if issues:
            raise ScenarioConsistencyError(issues)
        return self

    # Lookups used by the world builder and ground truth.
    def furniture_by_id(self) -> dict[str, Furniture]:
        return {f.id: f for f in self.furniture}

    def object_by_id(self) -> dict[str, SceneObject]:
        return {o.id: o for o in self.objects}

    def person_by_id(self) -> dict[str, Person]:
        return {p.id: p for p in self.people}

    def entity_ids(self) -> list[str]:
        return [f.id for f in self.furniture] + [o.id for o in self.objects] + [p.id for p in self.people]


@dataclass(frozen=True)
class Issue:
    """One problem in a scenario, located by the path of the field it concerns."""

    path: tuple[str | int, ...]
    message: str
    value: Any = None


class ScenarioConsistencyError(ValueError):
    """Raised from validation when parts of a scene contradict each other."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{'.'.join(map(str, i.path))}: {i.message}" for i in issues))


def support_top(scenario_furniture: dict[str, Furniture], obj: SceneObject) -> float:
    """Height (m) of the surface under an object."""
    if obj.on == FLOOR_ID:
        return 0.0
    levels = scenario_furniture[obj.on].surface_heights()
    return levels[-1 if obj.level is None else obj.level]


def object_world_xy(scenario_furniture: dict[str, Furniture], obj: SceneObject, at: tuple[float, float] | None = None) -> tuple[float, float]:
    at = obj.at if at is None else at
    if obj.on == FLOOR_ID:
        return at
    return scenario_furniture[obj.on].to_world(at)


def support_half_extent(furniture: Furniture) -> tuple[float, float]:
    """Half-size of the region an object centre may occupy on/in the furniture, before its own radius."""
    hx, hy = furniture.dims[0] / 2, furniture.dims[1] / 2
    if FURNITURE[furniture.kind].container:
        return hx - BIN_WALL, hy - BIN_WALL
    return hx, hy


def _rects_overlap(a: Furniture, b: Furniture) -> bool:
    """Separating-axis test of two rotated footprints."""
    polys = [a.footprint_corners(), b.footprint_corners()]
    for poly in polys:
        for i in range(4):
            (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % 4]
            nx, ny = y2 - y1, x1 - x2
            pa = [nx * x + ny * y for x, y in polys[0]]
            pb = [nx * x + ny * y for x, y in polys[1]]
            if max(pa) <= min(pb) + 1e-9 or max(pb) <= min(pa) + 1e-9:
                return False
    return True


def _point_rect_clearance(f: Furniture, xy: tuple[float, float]) -> float:
    """Distance from a point to a furniture footprint (0 inside)."""
    dx, dy = xy[0] - f.pos[0], xy[1] - f.pos[1]
    c, s = math.cos(f.yaw), math.sin(f.yaw)
    lx, ly = c * dx + s * dy, -s * dx + c * dy
    ex = max(abs(lx) - f.dims[0] / 2, 0.0)
    ey = max(abs(ly) - f.dims[1] / 2, 0.0)
    return math.hypot(ex, ey)


def consistency_issues(sc: Scenario) -> list[Issue]:
    """Every way the parts of a scene contradict each other, each with its field path."""
    issues: list[Issue] = []
    half = (sc.room.size[0] / 2, sc.room.size[1] / 2)
    furniture = sc.furniture_by_id()

    seen: dict[str, tuple[str | int, ...]] = {}
    for group, items in (("furniture", sc.furniture), ("objects", sc.objects), ("people", sc.people)):
        for i, item in enumerate(items):
            if item.id in seen:
                issues.append(Issue((group, i, "id"), f"id {item.id!r} is already used at {'.'.join(map(str, seen[item.id]))}", item.id))
            else:
                seen[item.id] = (group, i, "id")

    def inside_room(xy: tuple[float, float], radius: float) -> bool:
        return abs(xy[0]) + radius <= half[0] and abs(xy[1]) + radius <= half[1]

    for i, f in enumerate(sc.furniture):
        if not all(inside_room(c, 0.0) for c in f.footprint_corners()):
            issues.append(Issue(("furniture", i, "pos"), f"{f.id} sticks out of the {sc.room.size[0]} x {sc.room.size[1]} m room", f.pos))
        for j in range(i):
            if _rects_overlap(f, sc.furniture[j]):
                issues.append(Issue(("furniture", i, "pos"), f"{f.id} overlaps {sc.furniture[j].id}", f.pos))

    start = sc.robot.start
    if not inside_room((start.x, start.y), ROBOT_FOOTPRINT_RADIUS):
        issues.append(Issue(("robot", "start"), "the robot starts outside the room", (start.x, start.y)))
    for f in sc.furniture:
        if _point_rect_clearance(f, (start.x, start.y)) < ROBOT_FOOTPRINT_RADIUS:
            issues.append(Issue(("robot", "start"), f"the robot's base would overlap {f.id}", (start.x, start.y)))

    for i, p in enumerate(sc.people):
        if not inside_room(p.pos, PERSON_FOOTPRINT_RADIUS):
            issues.append(Issue(("people", i, "pos"), f"{p.id} stands outside the room", p.pos))
        for f in sc.furniture:
            if _point_rect_clearance(f, p.pos) < PERSON_FOOTPRINT_RADIUS:
                issues.append(Issue(("people", i, "pos"), f"{p.id} stands inside {f.id}", p.pos))
        if math.hypot(p.pos[0] - start.x, p.pos[1] - start.y) < PERSON_FOOTPRINT_RADIUS + ROBOT_FOOTPRINT_RADIUS:
            issues.append(Issue(("people", i, "pos"), f"{p.id} stands where the robot starts", p.pos))

    placed: list[tuple[int, SceneObject, tuple[float, float]]] = []
    for i, o in enumerate(sc.objects):
        if o.on != FLOOR_ID and o.on not in furniture:
            choices = list(furniture) + [FLOOR_ID]
            hint = nearest(o.on, choices)
            issues.append(Issue(("objects", i, "on"), f"there is no furniture {o.on!r} to rest on" + (f"; did you mean {hint!r}?" if hint else ""), o.on))
            continue
        if o.on == FLOOR_ID:
            if o.level is not None:
                issues.append(Issue(("objects", i, "level"), "only shelves have levels", o.level))
                continue
            if not inside_room(o.at, o.footprint_radius):
                issues.append(Issue(("objects", i, "at"), f"{o.id} lies outside the room", o.at))
                continue
            for f in sc.furniture:
                if _point_rect_clearance(f, o.at) < o.footprint_radius:
                    issues.append(Issue(("objects", i, "at"), f"{o.id} on the floor is inside {f.id}", o.at))
        else:
            sup = furniture[o.on]
            kind = FURNITURE[sup.kind]
            if not (kind.surface or kind.container):
                holders = [f.id for f in sc.furniture if FURNITURE[f.kind].surface or FURNITURE[f.kind].container]
                issues.append(Issue(
                    ("objects", i, "on"),
                    f"a {sup.kind} cannot hold objects; put {o.id} on one of: {', '.join(holders + [FLOOR_ID])}",
                    o.on,
                ))
                continue
            levels = sup.surface_heights()
            if o.level is not None and o.level >= len(levels):
                issues.append(Issue(("objects", i, "level"), f"{sup.id} has levels 0..{len(levels) - 1}", o.level))
                continue
            hx, hy = support_half_extent(sup)
            r = o.footprint_radius + _SUPPORT_MARGIN
            if abs(o.at[0]) + r > hx or abs(o.at[1]) + r > hy:
                issues.append(Issue(
                    ("objects", i, "at"),
                    f"{o.id} (radius {o.footprint_radius:.3f} m) is not fully on {sup.id}: keep |at| within "
                    f"({hx - r:.3f}, {hy - r:.3f})",
                    o.at,
                ))
                continue
            if sup.kind == "shelf":
                lvl = len(levels) - 1 if o.level is None else o.level
                if lvl < len(levels) - 1 and levels[lvl] + o.height > levels[lvl + 1] - 0.02:
                    issues.append(Issue(("objects", i, "level"), f"{o.id} is too tall for level {lvl} of {sup.id}", o.level))
        xy = object_world_xy(furniture, o)
        for j, other, oxy in placed:
            same_level = other.on == o.on and (other.level == o.level)
            if same_level and math.hypot(xy[0] - oxy[0], xy[1] - oxy[1]) < o.footprint_radius + other.footprint_radius:
                issues.append(Issue(("objects", i, "at"), f"{o.id} overlaps {other.id} (objects[{j}])", o.at))
        placed.append((i, o, xy))

    issues.extend(_goal_issues(sc))
    return issues


def _goal_issues(sc: Scenario) -> list[Issue]:
    issues: list[Issue] = []
    furniture = sc.furniture_by_id()
    objects, people = sc.object_by_id(), sc.person_by_id()
    known = set(sc.entity_ids()) | set(RESERVED_IDS)
    surfaces = {f.id for f in sc.furniture if FURNITURE[f.kind].surface} | {FLOOR_ID}
    containers = {f.id for f in sc.furniture if FURNITURE[f.kind].container}
    for gi, goal in enumerate(sc.goals):
        for pi, pred in enumerate(goal.success):
            path = ("goals", gi, "success", pi)
            unknown = [a for a in pred.args if a not in known]
            if unknown:
                hint = nearest(unknown[0], sorted(known))
                issues.append(Issue(path, f"{pred} names {unknown[0]!r}, which is not in the scene" + (f"; did you mean {hint!r}?" if hint else ""), str(pred)))
                continue
            a = pred.args
            checks = {
                "holding": lambda: a[0] not in objects,
                "visible": lambda: a[0] not in objects and a[0] not in people and a[0] not in furniture,
                "on": lambda: a[0] not in objects or a[1] not in surfaces,
                "in": lambda: a[0] not in objects or a[1] not in containers,
                "given": lambda: a[0] not in objects or a[1] not in people,
                "near": lambda: a[0] == a[1],
            }
            wrong = checks[pred.name]()
            if wrong:
                from scenarios.predicates import MEANING

                issues.append(Issue(path, f"{pred} does not fit the predicate: {MEANING[pred.name]}", str(pred)))
    return issues
