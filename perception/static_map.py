"""The static map a robot is given before it starts: room, furniture solids and surfaces.

Perception uses it for three things: to remove pixels that belong to known furniture,
floor and walls (what is left is objects, people and the robot itself), to know which
surface an object rests on or which bin it lies in, and to register the head camera
against known planes (the camera mount has calibration error). It is built from the
scenario's furniture (ids, kinds, poses, sizes) through the scene builder's own geometry,
never from the simulator's live state.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from scenarios.catalog import FURNITURE
from scenarios.schema import BIN_WALL, FLOOR_ID, Scenario

RASTER_RES = 0.02  # m per cell of the occupancy raster
RASTER_LAYERS = 4  # z-intervals kept per cell
SOLID_MARGIN = 0.012  # m: a point this close to a solid counts as part of it


@dataclass(frozen=True)
class Box:
    """An oriented solid box of the static map (world frame)."""

    owner: str  # furniture id, or 'wall'
    name: str
    centre: np.ndarray  # (3,)
    rot: np.ndarray  # (3, 3) columns = box axes in the world
    half: np.ndarray  # (3,) half extents


@dataclass(frozen=True)
class Surface:
    """A horizontal surface objects can rest on: a furniture id (or floor) and its top height."""

    owner: str
    z: float
    centre: np.ndarray  # (2,)
    yaw: float
    half: np.ndarray  # (2,) half extents of the top

    def contains(self, xy: np.ndarray, margin: float = 0.0) -> bool:
        d = np.asarray(xy[:2]) - self.centre
        lx, ly = turned(d[0], d[1], self.yaw)
        return abs(lx) <= self.half[0] + margin and abs(ly) <= self.half[1] + margin


@dataclass(frozen=True)
class Plane:
    """A bounded planar face of the static map, for camera registration."""

    normal: np.ndarray  # (3,) unit, world
    offset: float  # normal . p = offset on the plane
    centre: np.ndarray  # (3,)
    axes: np.ndarray  # (2, 3) in-plane unit axes
    half: np.ndarray  # (2,) half extents along axes


@dataclass
class StaticMap:
    """Room, furniture boxes, surfaces, containers and an occupancy raster for fast look-ups."""

    room: tuple[float, float]
    wall_height: float
    boxes: list[Box]
    surfaces: list[Surface]
    containers: dict[str, tuple[np.ndarray, float, np.ndarray, float]]  # id -> (centre xy, yaw, half xy, height)
    furniture: dict[str, tuple[np.ndarray, float, np.ndarray]]  # id -> (centre xy, yaw, (L, D, H))
    people_priors: dict[str, np.ndarray] = field(default_factory=dict)  # id -> xy where the person was said to stand
    hand_priors: dict[str, np.ndarray] = field(default_factory=dict)  # id -> where the person was said to hold out a palm
    planes: list[Plane] = field(default_factory=list)
    _raster: np.ndarray | None = None  # (nx, ny, LAYERS, 2) z intervals, NaN where empty
    _occupied: np.ndarray | None = None  # (nx * ny,) cells holding any interval
    _layers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # per layer: flat lo, hi
    _origin: np.ndarray | None = None

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> StaticMap:
        """The static map of a scenario: its furniture and room, without objects or live state."""
        from scenarios.builder import build_mjcf

        xml, _ = build_mjcf(scenario)
        root = ET.fromstring(xml)
        furniture_ids = {f.id for f in scenario.furniture}
        boxes: list[Box] = []
        world = root.find("worldbody")
        assert world is not None
        for geom in world.findall("geom"):
            name = geom.get("name", "")
            if geom.get("type") == "box" and name.startswith("wall"):
                boxes.append(_box("wall", name, np.zeros(3), 0.0, geom))
        for body in world.findall("body"):
            fid = body.get("name", "")
            if fid not in furniture_ids:
                continue
            pos = np.array([float(v) for v in body.get("pos", "0 0 0").split()])
            quat = [float(v) for v in body.get("quat", "1 0 0 0").split()]
            yaw = 2.0 * math.atan2(quat[3], quat[0])
            for geom in body.findall("geom"):
                if geom.get("type") == "box" and geom.get("class") != "decoration":
                    boxes.append(_box(fid, geom.get("name", ""), pos, yaw, geom))
        surfaces: list[Surface] = []
        containers: dict[str, tuple[np.ndarray, float, np.ndarray, float]] = {}
        furniture: dict[str, tuple[np.ndarray, float, np.ndarray]] = {}
        for f in scenario.furniture:
            kind = FURNITURE[f.kind]
            dims = np.array(f.dims)
            furniture[f.id] = (np.array(f.pos), f.yaw, dims)
            for z in f.surface_heights():
                if kind.surface:
                    surfaces.append(Surface(f.id, float(z), np.array(f.pos), f.yaw, dims[:2] / 2))
            if kind.container:
                containers[f.id] = (np.array(f.pos), f.yaw, dims[:2] / 2, float(dims[2]))
        surfaces.append(Surface(FLOOR_ID, 0.0, np.zeros(2), 0.0, np.array(scenario.room.size) / 2))
        m = cls(
            room=tuple(scenario.room.size),  # type: ignore[arg-type]
            wall_height=scenario.room.wall_height,
            boxes=boxes,
            surfaces=surfaces,
            containers=containers,
            furniture=furniture,
            people_priors={p.id: np.array(p.pos) for p in scenario.people},
            hand_priors={p.id: np.array(p.hand_position()) for p in scenario.people},
        )
        m.planes = m._planes()
        m._build_raster()
        return m

    # -- occupancy ------------------------------------------------------------------------
    def _build_raster(self) -> None:
        sx, sy = self.room
        self._origin = np.array([-sx / 2, -sy / 2])
        nx, ny = int(math.ceil(sx / RASTER_RES)) + 1, int(math.ceil(sy / RASTER_RES)) + 1
        cells: dict[tuple[int, int], list[tuple[float, float]]] = {}
        gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        centres = np.stack([gx, gy], -1).reshape(-1, 2) * RASTER_RES + self._origin + RASTER_RES / 2
        for b in self.boxes:
            if b.owner == "wall":
                continue
            # Cells whose centre lies within the footprint grown by half a diagonal cell.
            d = centres - b.centre[:2]
            local = d @ b.rot[:2, :2]
            grow = RASTER_RES * 0.75
            inside = (np.abs(local[:, 0]) <= b.half[0] + grow) & (np.abs(local[:, 1]) <= b.half[1] + grow)
            zlo, zhi = float(b.centre[2] - b.half[2]), float(b.centre[2] + b.half[2])
            for idx in np.flatnonzero(inside):
                cells.setdefault((int(idx // ny), int(idx % ny)), []).append((zlo, zhi))
        raster = np.full((nx, ny, RASTER_LAYERS, 2), np.nan, dtype=np.float32)
        for (i, j), intervals in cells.items():
            merged = _merge(sorted(intervals))
            while len(merged) > RASTER_LAYERS:  # join the closest pair
                gaps = [merged[k + 1][0] - merged[k][1] for k in range(len(merged) - 1)]
                k = int(np.argmin(gaps))
                merged[k : k + 2] = [(merged[k][0], merged[k + 1][1])]
            for k, (lo, hi) in enumerate(merged):
                raster[i, j, k] = (lo - SOLID_MARGIN, hi + SOLID_MARGIN)
        self._raster = raster
        self._occupied = ~np.isnan(raster[..., 0, 0]).reshape(-1)
        self._layers = [(np.ascontiguousarray(raster[..., k, 0]).reshape(-1), np.ascontiguousarray(raster[..., k, 1]).reshape(-1))
                        for k in range(RASTER_LAYERS)]

    def support_below(self, xy: np.ndarray, z: float, tolerance: float = 0.03) -> Surface:
        """The highest surface under (x, y) whose top is at or below z + tolerance (the floor at worst)."""
        best: Surface | None = None
        for s in self.surfaces:
            if s.z <= z + tolerance and s.contains(xy) and (best is None or s.z > best.z):
                best = s
        assert best is not None or True
        return best if best is not None else self.surfaces[-1]

    def container_at(self, xyz: np.ndarray, tolerance: float = 0.0) -> str | None:
        """The bin whose inside holds the point, as ground truth defines 'in'."""
        for cid, (centre, yaw, half, height) in self.containers.items():
            d = np.asarray(xyz[:2]) - centre
            lx, ly = turned(d[0], d[1], yaw)
            if abs(lx) < half[0] + tolerance and abs(ly) < half[1] + tolerance and -tolerance < xyz[2] < height + 0.02 + tolerance:
                return cid
        return None

    def walls_hide(self, points: np.ndarray, eye: np.ndarray) -> np.ndarray:
        """Which points (N, 3) a container's walls hide from an eye at `eye`.

        A point inside a container and below its rim is seen only along a line that leaves
        through the opening: where that line crosses the rim's plane must lie inside the walls
        (`BIN_WALL` thick); any other line passes through a wall. Points outside every
        container are not the walls' to hide (the depth image tells what else is nearer)."""
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        hidden = np.zeros(len(pts), dtype=bool)
        for centre, yaw, half, height in self.containers.values():
            lx, ly = turned(pts[:, 0] - centre[0], pts[:, 1] - centre[1], yaw)
            inside = (np.abs(lx) < half[0]) & (np.abs(ly) < half[1]) & (pts[:, 2] < height)
            if not inside.any():
                continue
            if eye[2] <= height:  # from below the rim every line to the inside meets a wall
                hidden |= inside
                continue
            s = (height - pts[:, 2]) / (eye[2] - pts[:, 2])
            rim = pts + s[:, None] * (np.asarray(eye, dtype=float) - pts)  # where each line of sight crosses the rim's plane
            rx, ry = turned(rim[:, 0] - centre[0], rim[:, 1] - centre[1], yaw)
            through_opening = (np.abs(rx) < half[0] - BIN_WALL) & (np.abs(ry) < half[1] - BIN_WALL)
            hidden |= inside & ~through_opening
        return hidden

    def distance_to_furniture(self, xy: np.ndarray, fid: str) -> float:
        """Planar distance from a point to a furniture footprint (0 inside), as ground truth measures 'near'."""
        centre, yaw, dims = self.furniture[fid]
        d = np.asarray(xy[:2]) - centre
        lx, ly = turned(d[0], d[1], yaw)
        return math.hypot(max(abs(lx) - dims[0] / 2, 0.0), max(abs(ly) - dims[1] / 2, 0.0))

    # -- registration planes ----------------------------------------------------------------
    def _planes(self) -> list[Plane]:
        """Floor, walls and the large faces of furniture boxes."""
        sx, sy = self.room
        planes = [Plane(np.array([0.0, 0.0, 1.0]), 0.0, np.zeros(3), np.array([[1.0, 0, 0], [0, 1.0, 0]]), np.array([sx / 2, sy / 2]))]
        h = self.wall_height
        for sign, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
            n = np.zeros(3)
            n[axis] = -sign  # facing into the room
            half_room = self.room[axis] / 2
            centre = np.zeros(3)
            centre[axis] = sign * half_room
            centre[2] = h / 2
            along = np.zeros(3)
            along[1 - axis] = 1.0
            planes.append(Plane(n, float(n @ centre), centre, np.stack([along, np.array([0, 0, 1.0])]),
                                np.array([self.room[1 - axis] / 2, h / 2])))
        for b in self.boxes:
            if b.owner == "wall":
                continue
            for k in range(3):
                for sign in (1.0, -1.0):
                    n = sign * b.rot[:, k]
                    others = [a for a in range(3) if a != k]
                    if b.half[others[0]] * b.half[others[1]] < 0.004 or (k == 2 and sign < 0):
                        continue  # too small to matter, or a bottom face
                    centre = b.centre + n * b.half[k]
                    planes.append(Plane(n, float(n @ centre), centre, np.stack([b.rot[:, a] for a in others]),
                                        np.array([b.half[a] for a in others])))
        return planes


def turned(dx, dy, yaw: float):
    """An offset from a footprint's centre (scalars or arrays) in the footprint's own frame,
    which is turned by `yaw`: one rotation for every footprint test."""
    c, s = math.cos(yaw), math.sin(yaw)
    return c * dx + s * dy, -s * dx + c * dy


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for lo, hi in intervals:
        if out and lo <= out[-1][1] + 1e-6:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _box(owner: str, name: str, body_pos: np.ndarray, yaw: float, geom: ET.Element) -> Box:
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    local = np.array([float(v) for v in geom.get("pos", "0 0 0").split()])
    half = np.array([float(v) for v in geom.get("size", "0 0 0").split()])
    return Box(owner, name, body_pos + rot @ local, rot, half)
