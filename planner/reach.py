"""Can the robot get within reach of a thing? A free-space grid over the static map.

The room minus furniture and people (grown by the robot's footprint radius) is rasterised
once per layout; the cells connected to the robot's position are where its base can go.
A target is reachable when some such cell is within arm's reach of it (of an object's
position, a person's hand, or a piece of furniture's footprint) and it is not higher than
the hand reaches. This is what turns "the bin is boxed in by counters" into a refusal
with a reason, before anything runs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from planner.library import RobotReach
from planner.scene import Scene
from scenarios.catalog import FURNITURE

_cache: dict[tuple, FreeSpace] = {}


class FreeSpace:
    def __init__(self, scene: Scene, robot: RobotReach) -> None:
        sc = scene.scenario
        self.robot = robot
        r, g = robot.radius, robot.grid
        hx, hy = sc.room.size[0] / 2 - r, sc.room.size[1] / 2 - r
        xs = np.arange(-hx, hx + 1e-9, g)
        ys = np.arange(-hy, hy + 1e-9, g)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        free = np.ones(gx.shape, dtype=bool)
        for f in sc.furniture:
            free &= _rect_distance(f.pos, f.yaw, f.dims[0], f.dims[1], gx, gy) >= r
        for pid in scene.people_ids:
            p = scene.position(pid)
            if p is not None:
                free &= np.hypot(gx - p[0], gy - p[1]) >= r + robot.person_radius
        labels, _ = ndimage.label(free, structure=np.ones((3, 3), dtype=int))
        rx, ry, _ = scene.belief.robot.pose
        d = np.hypot(gx - rx, gy - ry)
        d[~free] = np.inf
        start = np.unravel_index(int(np.argmin(d)), d.shape)
        self.start_ok = bool(np.isfinite(d[start]) and d[start] <= r + robot.leave)
        mask = labels == labels[start] if self.start_ok else np.zeros_like(free)
        self.cells = np.stack([gx[mask], gy[mask]], axis=1)

    def distance_to_point(self, xy: tuple[float, float]) -> float:
        if not len(self.cells):
            return math.inf
        return float(np.min(np.hypot(self.cells[:, 0] - xy[0], self.cells[:, 1] - xy[1])))

    def distance_to_rect(self, pos: tuple[float, float], yaw: float, length: float, depth: float) -> float:
        if not len(self.cells):
            return math.inf
        return float(np.min(_rect_distance(pos, yaw, length, depth, self.cells[:, 0], self.cells[:, 1])))


def _rect_distance(pos, yaw, length, depth, x, y):
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = x - pos[0], y - pos[1]
    lx, ly = c * dx + s * dy, -s * dx + c * dy
    ex = np.maximum(np.abs(lx) - length / 2, 0.0)
    ey = np.maximum(np.abs(ly) - depth / 2, 0.0)
    return np.hypot(ex, ey)


def free_space(scene: Scene, robot: RobotReach) -> FreeSpace:
    """The grid for this layout and robot position (cached; furniture does not move)."""
    sc = scene.scenario
    pose = scene.belief.robot.pose
    key = (
        sc.name, tuple((f.id, f.pos, f.yaw_deg, f.dims) for f in sc.furniture), sc.room.size,
        tuple((pid, tuple(round(v, 2) for v in (scene.position(pid) or (0.0, 0.0)))) for pid in scene.people_ids),
        round(pose[0], 1), round(pose[1], 1), robot,
    )
    space = _cache.get(key)
    if space is None:
        if len(_cache) > 64:
            _cache.clear()
        space = _cache[key] = FreeSpace(scene, robot)
    return space


def unreachable_reason(entity: str, scene: Scene, robot: RobotReach) -> str | None:
    """Why the robot cannot get within reach of `entity`, or None if it can."""
    space = free_space(scene, robot)
    name = scene.the(entity)
    if not space.start_ok:
        return "the robot has no free floor to move on where it stands"
    kind = scene.kind(entity)
    if kind == "object":
        x, y, z = scene.belief.objects[entity].position
        if z > robot.max_height:
            return f"{name} is out of reach: {z:.2f} m up, higher than the hand reaches ({robot.max_height:.2f} m)"
        d = space.distance_to_point((x, y))
    elif kind == "person":
        person = scene.belief.people.get(entity)
        hand = person.hand if person is not None and person.hand is not None else None
        d = space.distance_to_point(hand[:2] if hand else scene.position(entity))  # type: ignore[arg-type]
    elif kind in FURNITURE:
        f = scene.furniture[entity]
        top = f.dims[2]
        if FURNITURE[kind].surface and kind != "shelf" and top > robot.max_height:
            return f"the top of {name} is out of reach ({top:.2f} m up)"
        if FURNITURE[kind].container:
            d = space.distance_to_point(f.pos)
        else:
            d = space.distance_to_rect(f.pos, f.yaw, f.dims[0], f.dims[1]) + 0.1
    else:
        return None
    if d > robot.reach:
        return f"{name} is not reachable: the robot cannot get within {robot.reach:.2f} m of it from where it is"
    return None
