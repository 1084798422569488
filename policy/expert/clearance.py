"""Exact clearance of the robot's body at one base pose, and ways in and out of tight spots.

The occupancy grid (`navigation.OccupancyGrid`) treats the robot as a disc and every piece of
furniture as a solid block, which is right for driving across a room but shuts the robot out
of tight places it fits into: the slot between a low coffee table and a sofa, where the
wheeled base slides under the table top between its legs. Here the robot is a rectangle
(the base, up to 0.28 m) under a column, pelvis and torso, and each piece of furniture is
what it is at those heights: a table is four legs and a slab, a counter, shelf, bin or sofa
a block from the floor. `escape_path` finds a short way from a pose to a free grid cell
(straight back, or a little back and then sideways, heading held); driven backwards it is
the way in.
"""

from __future__ import annotations

import math

import numpy as np

from policy.expert.navigation import OccupancyGrid
from scenarios.ground_truth import PrivilegedState
from scenarios.robot import BASE_HALF_EXTENTS, BASE_TOP_HEIGHT
from scenarios.schema import PERSON_FOOTPRINT_RADIUS, Scenario

# Above the base: (bottom z, top z, radius about the base centre) of the column, pelvis and chest.
UPPER_BODY = ((0.27, 0.73, 0.075), (0.70, 0.82, 0.14), (0.80, 1.25, 0.20))
MARGIN = 0.025  # m kept from everything
TABLE_SLAB = 0.04
LEG_HALF = 0.025
LEG_INSET = 0.05


def _rect_rect_gap(c1, h1, yaw1, c2, h2, yaw2) -> float:
    """Separation of two oriented rectangles along the best separating axis (negative: overlap)."""
    axes = []
    for yaw in (yaw1, yaw2):
        c, s = math.cos(yaw), math.sin(yaw)
        axes += [np.array([c, s]), np.array([-s, c])]
    d = np.asarray(c2, float) - np.asarray(c1, float)
    best = -math.inf

    def radius(h, yaw, axis):
        c, s = math.cos(yaw), math.sin(yaw)
        return h[0] * abs(axis @ np.array([c, s])) + h[1] * abs(axis @ np.array([-s, c]))

    for ax in axes:
        gap = abs(float(d @ ax)) - radius(h1, yaw1, ax) - radius(h2, yaw2, ax)
        best = max(best, gap)
    return best


def _rect_point_distance(c, h, yaw, p) -> float:
    cs, sn = math.cos(yaw), math.sin(yaw)
    d = np.asarray(p, float) - np.asarray(c, float)
    lx, ly = cs * d[0] + sn * d[1], -sn * d[0] + cs * d[1]
    return float(math.hypot(max(abs(lx) - h[0], 0.0), max(abs(ly) - h[1], 0.0)))


def body_clearance(scenario: Scenario, state: PrivilegedState, x: float, y: float, yaw: float) -> float:
    """Smallest gap (m) between the robot at base pose (x, y, yaw) and walls, furniture and people."""
    centre = np.array([x, y])
    half = BASE_HALF_EXTENTS
    hx, hy = scenario.room.size[0] / 2, scenario.room.size[1] / 2
    c, s = math.cos(yaw), math.sin(yaw)
    ex = half[0] * abs(c) + half[1] * abs(s)
    ey = half[0] * abs(s) + half[1] * abs(c)
    gap = min(hx - abs(x) - ex, hy - abs(y) - ey)
    kinds = scenario.furniture_by_id()
    for fid, f in state.furniture.items():
        L, D, H = f.size
        fc, fs = math.cos(f.yaw), math.sin(f.yaw)
        if kinds[fid].kind == "table":
            for sx in (-1, 1):
                for sy in (-1, 1):
                    lx, ly = sx * (L / 2 - LEG_INSET), sy * (D / 2 - LEG_INSET)
                    leg = (f.pos[0] + fc * lx - fs * ly, f.pos[1] + fs * lx + fc * ly)
                    gap = min(gap, _rect_rect_gap(centre, half, yaw, leg, (LEG_HALF, LEG_HALF), f.yaw))
            lo = H - TABLE_SLAB
            if lo < BASE_TOP_HEIGHT:
                gap = min(gap, _rect_rect_gap(centre, half, yaw, f.pos, (L / 2, D / 2), f.yaw))
            for bottom, top, r in UPPER_BODY:
                if bottom < H and top > lo:
                    gap = min(gap, _rect_point_distance(f.pos, (L / 2, D / 2), f.yaw, centre) - r)
        else:
            gap = min(gap, _rect_rect_gap(centre, half, yaw, f.pos, (L / 2, D / 2), f.yaw))
    for p in state.people.values():
        gap = min(gap, _rect_point_distance(centre, half, yaw, p.pos[:2]) - PERSON_FOOTPRINT_RADIUS)
    for o in state.objects.values():
        if o.rests_on == "floor":
            gap = min(gap, _rect_point_distance(centre, half, yaw, o.pos[:2]) - 0.05)
    return gap


def segment_clear(scenario: Scenario, state: PrivilegedState, a: np.ndarray, b: np.ndarray, yaw: float,
                  margin: float = MARGIN) -> bool:
    """Can the base slide from a to b with heading `yaw` without coming within `margin` of anything
    (or nearer than it is at a, when a is closer than that already)?"""
    n = max(2, int(np.linalg.norm(b - a) / 0.02) + 1)
    need = min(margin, body_clearance(scenario, state, *a, yaw) - 0.002)
    return all(body_clearance(scenario, state, *(a + t * (b - a)), yaw) >= need for t in np.linspace(0, 1, n)[1:])


def escape_path(scenario: Scenario, state: PrivilegedState, grid: OccupancyGrid, xy: np.ndarray, yaw: float,
                max_side: float = 1.6) -> list[np.ndarray] | None:
    """Waypoints from `xy` to a free grid cell with the heading held at `yaw`: straight back, or
    back a little and then sideways; the shortest that stays clear. [xy] when xy is free already;
    None when there is no such way out."""
    xy = np.asarray(xy, float)
    if grid.is_free(xy):
        return [xy]
    fwd = np.array([math.cos(yaw), math.sin(yaw)])
    left = np.array([-fwd[1], fwd[0]])
    best: tuple[float, list[np.ndarray]] | None = None
    # Straight back.
    for b in np.arange(0.05, 1.01, 0.05):
        q = xy - fwd * b
        if grid.is_free(q):
            if segment_clear(scenario, state, xy, q, yaw):
                best = (float(b), [xy, q])
            break
    # Back a little, then sideways.
    for b in np.arange(0.0, 0.205, 0.02):
        q = xy - fwd * b
        if b > 0 and not segment_clear(scenario, state, xy, q, yaw):
            break
        for sgn in (1.0, -1.0):
            for t in np.arange(0.1, max_side + 1e-9, 0.05):
                r = q + left * sgn * t
                length = b + t
                if best is not None and length >= best[0]:
                    break
                if not grid.is_free(r):
                    continue
                if segment_clear(scenario, state, q, r, yaw):
                    best = (length, [xy, q, r] if b > 0 else [xy, r])
                break
    return None if best is None else best[1]
