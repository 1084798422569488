"""Base navigation: an occupancy grid of the room, A* on it (networkx), and a path follower.

The grid comes from the scenario's walls, the furniture footprints and the people (from
privileged state), inflated by the robot's radius. Tall things (shelves, people, walls)
are inflated more, because the arms reach out over low furniture but not through a shelf.
A* finds a path between free cells; the path is shortened by line-of-sight smoothing and
followed by a pure-pursuit controller with bounded speed and acceleration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from policy.expert.geometry import to_base, wrap
from scenarios.ground_truth import PrivilegedState
from scenarios.schema import PERSON_FOOTPRINT_RADIUS, Scenario

CELL = 0.05  # m
ROBOT_RADIUS = 0.36  # base circumradius (0.245 x 0.255 half extents) plus margin
TALL_RADIUS = 0.56  # clearance from tall obstacles (the hands reach ~0.55 m forward)
TALL_HEIGHT = 0.95  # obstacles at least this high are tall (above the arms' home height)
SOFT_MARGIN = 0.25  # extra band around obstacles that A* avoids when it can
MAX_SPEED = 0.5  # m/s (the controller's per-axis limit)
MAX_TURN = 1.0  # rad/s
MAX_ACCEL = 0.8  # m/s^2
MAX_ANG_ACCEL = 1.6  # rad/s^2
LOOKAHEAD = 0.35  # m


class NavigationError(RuntimeError):
    """No path to the goal."""


@dataclass
class Obstacle:
    kind: str  # 'box' or 'circle'
    centre: tuple[float, float]
    half: tuple[float, float]  # box half extents, or (radius, 0)
    yaw: float
    tall: bool

    def distance(self, pts: np.ndarray) -> np.ndarray:
        """Distance from points (N, 2) to the obstacle (0 inside)."""
        d = pts - np.asarray(self.centre)
        if self.kind == "circle":
            return np.maximum(np.linalg.norm(d, axis=1) - self.half[0], 0.0)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        lx, ly = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
        ex, ey = np.maximum(np.abs(lx) - self.half[0], 0), np.maximum(np.abs(ly) - self.half[1], 0)
        return np.hypot(ex, ey)


def obstacles(scenario: Scenario, state: PrivilegedState) -> list[Obstacle]:
    """Furniture footprints, people (body and outstretched hand) and objects lying on the floor."""
    out = [Obstacle("box", f.pos, (f.size[0] / 2, f.size[1] / 2), f.yaw, f.size[2] >= TALL_HEIGHT) for f in state.furniture.values()]
    for p in state.people.values():
        out.append(Obstacle("circle", p.pos, (PERSON_FOOTPRINT_RADIUS, 0.0), 0.0, True))
        out.append(Obstacle("circle", p.hand[:2], (0.08, 0.0), 0.0, True))
    for o in state.objects.values():
        if o.rests_on == "floor":
            out.append(Obstacle("circle", o.pos[:2], (0.05, 0.0), 0.0, False))
    return out


class OccupancyGrid:
    """Clearance of every cell of the room from walls and obstacles."""

    def __init__(self, scenario: Scenario, state: PrivilegedState, ignore: tuple[str, ...] = ()) -> None:
        hx, hy = scenario.room.size[0] / 2, scenario.room.size[1] / 2
        self.origin = np.array([-hx, -hy])
        self.shape = (int(round(2 * hx / CELL)), int(round(2 * hy / CELL)))
        ix, iy = np.meshgrid(np.arange(self.shape[0]), np.arange(self.shape[1]), indexing="ij")
        centres = self.origin + (np.stack([ix, iy], -1).reshape(-1, 2) + 0.5) * CELL
        walls = np.minimum.reduce([centres[:, 0] + hx, hx - centres[:, 0], centres[:, 1] + hy, hy - centres[:, 1]])
        low = np.full(len(centres), np.inf)
        tall = walls.copy()
        for ob in obstacles(scenario, state):
            d = ob.distance(centres)
            if ob.tall:
                tall = np.minimum(tall, d)
            else:
                low = np.minimum(low, d)
        self.low = low.reshape(self.shape)
        self.tall = tall.reshape(self.shape)
        self.free = (self.low >= ROBOT_RADIUS) & (self.tall >= TALL_RADIUS)
        # Cost of entering a cell: 1 plus a penalty that grows closer than SOFT_MARGIN to the limit.
        slack = np.minimum(self.low - ROBOT_RADIUS, self.tall - TALL_RADIUS)
        self.cost = 1.0 + 4.0 * np.clip(1.0 - slack / SOFT_MARGIN, 0.0, 1.0)
        self._graph: nx.Graph | None = None

    def __deepcopy__(self, memo: dict) -> "OccupancyGrid":
        return self  # never changed after construction; a copy of the graph would cost more than a chunk

    def cell(self, xy: np.ndarray) -> tuple[int, int]:
        i = np.clip(((np.asarray(xy[:2]) - self.origin) / CELL).astype(int), 0, np.array(self.shape) - 1)
        return int(i[0]), int(i[1])

    def centre(self, cell: tuple[int, int]) -> np.ndarray:
        return self.origin + (np.asarray(cell) + 0.5) * CELL

    def is_free(self, xy: np.ndarray) -> bool:
        return bool(self.free[self.cell(xy)])

    def nearest_free(self, xy: np.ndarray) -> tuple[int, int]:
        """The free cell closest to a point (the point's own cell if free)."""
        c = self.cell(xy)
        if self.free[c]:
            return c
        idx = np.argwhere(self.free)
        if len(idx) == 0:
            raise NavigationError("the room has no free cell for the robot")
        k = int(np.argmin(np.sum((idx - np.asarray(c)) ** 2, axis=1)))
        return int(idx[k][0]), int(idx[k][1])

    def segment_free(self, a: np.ndarray, b: np.ndarray) -> bool:
        n = max(2, int(np.linalg.norm(b - a) / (CELL / 2)))
        for t in np.linspace(0, 1, n):
            if not self.free[self.cell(a + t * (b - a))]:
                return False
        return True

    def graph(self) -> nx.Graph:
        """The free cells as a weighted networkx graph (8-connected), built once per grid."""
        if self._graph is None:
            free = self.free
            edges = []
            for di, dj in ((1, 0), (0, 1), (1, 1), (1, -1)):
                a = free[max(0, -di):free.shape[0] - max(0, di), max(0, -dj):free.shape[1] - max(0, dj)]
                b = free[max(0, di):, max(0, dj):][:a.shape[0], :a.shape[1]] if dj >= 0 else free[di:, :free.shape[1] + dj][:a.shape[0], :a.shape[1]]
                ii, jj = np.nonzero(a & b)
                if dj < 0:
                    jj = jj - dj  # a starts at column -dj
                ci, cj = ii + max(0, -di), jj if dj < 0 else jj + max(0, -dj)
                ni, nj = ci + di, cj + dj
                w = math.hypot(di, dj) * 0.5 * (self.cost[ci, cj] + self.cost[ni, nj])
                edges.extend(zip(zip(ci.tolist(), cj.tolist()), zip(ni.tolist(), nj.tolist()), w.tolist()))
            g = nx.Graph()
            g.add_nodes_from(map(tuple, np.argwhere(free).tolist()))
            g.add_weighted_edges_from(edges)
            self._graph = g
        return self._graph

    def plan(self, start: np.ndarray, goal: np.ndarray) -> list[np.ndarray]:
        """A* path of waypoints (world xy) from start to goal through free cells, smoothed."""
        s, g = self.nearest_free(start), self.nearest_free(goal)
        graph = self.graph()
        try:
            cells = nx.astar_path(graph, s, g, heuristic=lambda a, b: math.dist(a, b), weight="weight")
        except (nx.NetworkXNoPath, nx.NodeNotFound) as exc:
            raise NavigationError(f"no free path from {tuple(np.round(start, 2))} to {tuple(np.round(goal, 2))}") from exc
        pts = [np.asarray(start[:2], float)] + [self.centre(c) for c in cells[1:-1]] + [np.asarray(goal[:2], float)]
        return smooth(pts, self)


_GRIDS: dict[tuple, "OccupancyGrid"] = {}


def grid_for(scenario: Scenario, state: PrivilegedState) -> OccupancyGrid:
    """An occupancy grid for this room and these obstacles, reused while they stay put (the
    graph A* searches is the costly part)."""
    key = (id(scenario), scenario.room.size,
           tuple((o.kind, tuple(np.round(o.centre, 3)), tuple(np.round(o.half, 3)), round(o.yaw, 3), o.tall) for o in obstacles(scenario, state)))
    grid = _GRIDS.get(key)
    if grid is None:
        if len(_GRIDS) > 16:
            _GRIDS.clear()
        grid = _GRIDS[key] = OccupancyGrid(scenario, state)
    return grid


def smooth(points: list[np.ndarray], grid: OccupancyGrid) -> list[np.ndarray]:
    """Drop waypoints that a straight free segment can skip (string pulling)."""
    if len(points) <= 2:
        return points
    out = [points[0]]
    i = 0
    while i < len(points) - 1:
        j = len(points) - 1
        while j > i + 1 and not grid.segment_free(points[i], points[j]):
            j -= 1
        out.append(points[j])
        i = j
    return out


class PathFollower:
    """Pure pursuit for a holonomic base: robot-frame (vx, vy, wz) with bounded speed and acceleration.

    Drives along the waypoints, turning to face the direction of travel, then to the goal
    heading over the last metre; stops within `tol` of the goal.
    """

    def __init__(self, waypoints: list[np.ndarray], goal_yaw: float, dt: float, tol: float = 0.02, yaw_tol: float = 0.03,
                 max_speed: float = MAX_SPEED, hold_heading: bool = False) -> None:
        self.waypoints = [np.asarray(w, float) for w in waypoints]
        self.goal_yaw = goal_yaw
        self.dt, self.tol, self.yaw_tol = dt, tol, yaw_tol
        self.max_speed = max_speed
        self.hold_heading = hold_heading  # keep facing goal_yaw all the way (sliding in and out of tight spots)
        self.velocity = np.zeros(3)  # robot frame command last sent
        self.segment = 0
        self.done = False

    def _lookahead(self, pos: np.ndarray) -> np.ndarray:
        while self.segment < len(self.waypoints) - 2 and np.linalg.norm(self.waypoints[self.segment + 1] - pos) < LOOKAHEAD:
            self.segment += 1
        a, b = self.waypoints[self.segment], self.waypoints[min(self.segment + 1, len(self.waypoints) - 1)]
        ab = b - a
        t = float(np.clip(np.dot(pos - a, ab) / max(np.dot(ab, ab), 1e-9), 0.0, 1.0))
        closest = a + t * ab
        target = closest + LOOKAHEAD * ab / max(np.linalg.norm(ab), 1e-9)
        if np.dot(target - a, ab) > np.dot(ab, ab):
            overshoot = np.linalg.norm(target - a) - np.linalg.norm(ab)
            nxt = self.waypoints[min(self.segment + 2, len(self.waypoints) - 1)]
            bc = nxt - b
            target = b + (overshoot * bc / np.linalg.norm(bc) if np.linalg.norm(bc) > 1e-9 else 0.0)
        return target

    def command(self, base: tuple[float, float, float]) -> np.ndarray:
        pos = np.array(base[:2])
        goal = self.waypoints[-1]
        dist_goal = float(np.linalg.norm(goal - pos))
        yaw_err_goal = wrap(self.goal_yaw - base[2])
        if dist_goal < self.tol and abs(yaw_err_goal) < self.yaw_tol:
            self.done = True
        if self.done:
            return self._limit(np.zeros(3))
        target = self._lookahead(pos)
        direction = target - pos
        norm = float(np.linalg.norm(direction))
        # Speed that can still stop at the goal under the acceleration limit.
        speed = min(self.max_speed, math.sqrt(2 * 0.6 * MAX_ACCEL * dist_goal), 1.5 * dist_goal + 0.02)
        v_world = direction / max(norm, 1e-9) * speed if dist_goal > 0.5 * self.tol else np.zeros(2)
        heading = math.atan2(direction[1], direction[0]) if dist_goal > 1.0 and not self.hold_heading else self.goal_yaw
        yaw_err = wrap(heading - base[2])
        wz = float(np.clip(2.0 * yaw_err, -MAX_TURN, MAX_TURN))
        # Turn first when badly misaligned, so the robot drives mostly forwards.
        if abs(yaw_err) > 0.8 and dist_goal > 1.0 or self.hold_heading and abs(yaw_err) > 0.1:
            v_world *= 0.3
        v = to_base((0.0, 0.0, base[2]), v_world)
        return self._limit(np.array([v[0], v[1], wz]))

    def _limit(self, cmd: np.ndarray) -> np.ndarray:
        step = np.array([MAX_ACCEL, MAX_ACCEL, MAX_ANG_ACCEL]) * self.dt
        self.velocity = self.velocity + np.clip(cmd - self.velocity, -step, step)
        return self.velocity.copy()

    @property
    def stopped(self) -> bool:
        return self.done and bool(np.all(np.abs(self.velocity) < 1e-6))
