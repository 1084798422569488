"""The per-pixel part of a belief update as one compiled pass (numba).

Labelling colours, back-projecting depth, removing the static map and the robot's own body
were a dozen whole-image numpy operations and temporaries; at 120x160 pixels each costs
more in dispatch and memory traffic than in arithmetic, and together they were half of an
update. Here one loop visits each pixel once. The numpy code it replaced (`ColourTable.classify`,
back-projection, the static-map and robot-body tests) is kept as the reference in
`tests/test_perception_kernels.py`, which checks that both give the same masks.
Compiled code is cached beside this file (`cache=True`), so only the first run compiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from perception.colours import BITS
from perception.geometry import MAX_DEPTH, MIN_DEPTH
from perception.static_map import RASTER_RES, StaticMap
from scenarios.kinematics import GEOM_CAPSULE, GEOM_CYLINDER, GEOM_SPHERE, Pose, RobotGeoms

FLOOR_MARGIN = 0.012  # m above the floor still counts as floor
WALL_MARGIN = 0.015
ROBOT_MARGIN = 0.015  # m from the robot's own geoms still counts as the robot


@dataclass(frozen=True)
class StaticArrays:
    """The static map's raster in the flat arrays the kernel reads."""

    half_x: float
    half_y: float
    wall_top: float
    origin: np.ndarray  # (2,) float64
    shape: tuple[int, int]
    occupied: np.ndarray  # (nx * ny,) bool
    lo: np.ndarray  # (layers, nx * ny) float32, NaN where empty
    hi: np.ndarray

    @classmethod
    def from_map(cls, static: StaticMap) -> StaticArrays:
        raster = static._raster
        assert raster is not None and static._origin is not None
        return cls(static.room[0] / 2 - WALL_MARGIN, static.room[1] / 2 - WALL_MARGIN, static.wall_height - 0.05,
                   np.asarray(static._origin, dtype=np.float64), (raster.shape[0], raster.shape[1]), static._occupied,
                   np.ascontiguousarray(np.stack([lo for lo, _ in static._layers])),
                   np.ascontiguousarray(np.stack([hi for _, hi in static._layers])))


def foreground(rgb: np.ndarray, depth: np.ndarray, rays: np.ndarray, lut: np.ndarray, interesting: np.ndarray,
               neutral: np.ndarray, block: int, cam: Pose, static: StaticArrays,
               geoms: RobotGeoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, world points, foreground) of one strided head frame.

    labels: int8 (H, W) colour class per pixel (UNKNOWN = -1). points: float32 (H, W, 3), world
    points where a pixel is interesting (zeros elsewhere). foreground: bool (H, W), interesting
    pixels off the static map and off the robot. `interesting` and `neutral` are look-ups by
    label + 1; a neutral pixel counts only within one `block` of an interesting coloured one
    (`tests/test_perception_kernels.py` has the numpy form)."""
    return _foreground(np.ascontiguousarray(rgb), np.ascontiguousarray(depth), rays, lut, interesting, neutral,
                       bool(neutral.any()), int(block), cam.rot.astype(np.float32), cam.pos.astype(np.float32),
                       static.half_x, static.half_y, static.wall_top, FLOOR_MARGIN, static.origin, RASTER_RES,
                       static.shape[0], static.shape[1], static.occupied, static.lo, static.hi,
                       geoms.kind.astype(np.int64), geoms.size.astype(np.float64), geoms.pos.astype(np.float64),
                       geoms.rot.astype(np.float32), geoms.radius.astype(np.float64), ROBOT_MARGIN)


@njit(cache=True, nogil=True)
def _foreground(rgb, depth, rays, lut, interesting_lut, neutral_lut, any_neutral, block, rot, pos,
                half_x, half_y, wall_top, floor_margin, origin, res, nx, ny, occupied, lo, hi,
                g_kind, g_size, g_pos, g_rot, g_radius, margin):  # pragma: no cover - compiled
    h, w = depth.shape
    shift = 8 - BITS
    labels = np.empty((h, w), np.int8)
    keep = np.zeros((h, w), np.bool_)
    # Pass 1: labels, and which blocks hold an interesting coloured (non-neutral) pixel.
    bh, bw = (h + block - 1) // block, (w + block - 1) // block
    coloured = np.zeros((bh, bw), np.bool_)
    for r in range(h):
        for c in range(w):
            q0 = np.int32(rgb[r, c, 0]) >> shift
            q1 = np.int32(rgb[r, c, 1]) >> shift
            q2 = np.int32(rgb[r, c, 2]) >> shift
            lab = lut[(q0 << (2 * BITS)) | (q1 << BITS) | q2]
            labels[r, c] = lab
            d = depth[r, c]
            if d > MIN_DEPTH and d < MAX_DEPTH and interesting_lut[lab + 1]:
                keep[r, c] = True
                if any_neutral and not neutral_lut[lab + 1]:
                    coloured[r // block, c // block] = True
    # Pass 2: neutral pixels count only in or next to a block with a coloured one.
    if any_neutral:
        grown = np.zeros((bh, bw), np.bool_)
        for i in range(bh):
            for j in range(bw):
                if coloured[i, j]:
                    for di in range(-1, 2):
                        for dj in range(-1, 2):
                            ii, jj = i + di, j + dj
                            if 0 <= ii < bh and 0 <= jj < bw:
                                grown[ii, jj] = True
        for r in range(h):
            for c in range(w):
                if keep[r, c] and neutral_lut[labels[r, c] + 1] and not grown[r // block, c // block]:
                    keep[r, c] = False
    # Pass 3: world points of the kept pixels; off the static map and off the robot is foreground.
    points = np.zeros((h, w, 3), np.float32)
    fg = np.zeros((h, w), np.bool_)
    n_geoms = g_kind.shape[0]
    for r in range(h):
        for c in range(w):
            if not keep[r, c]:
                continue
            d = depth[r, c]
            px = rays[r, c, 0] * d
            py = rays[r, c, 1] * d
            pz = rays[r, c, 2] * d
            x = px * rot[0, 0] + py * rot[0, 1] + pz * rot[0, 2] + pos[0]
            y = px * rot[1, 0] + py * rot[1, 1] + pz * rot[1, 2] + pos[1]
            z = px * rot[2, 0] + py * rot[2, 1] + pz * rot[2, 2] + pos[2]
            points[r, c, 0] = x
            points[r, c, 1] = y
            points[r, c, 2] = z
            if z < floor_margin or abs(x) > half_x or abs(y) > half_y or z > wall_top:
                continue
            i = int(np.floor((x - origin[0]) / res))
            j = int(np.floor((y - origin[1]) / res))
            i = min(max(i, 0), nx - 1)
            j = min(max(j, 0), ny - 1)
            flat = i * ny + j
            if occupied[flat]:
                solid = False
                for k in range(lo.shape[0]):
                    if z >= lo[k, flat] and z <= hi[k, flat]:  # NaN (no interval) compares false
                        solid = True
                        break
                if solid:
                    continue
            own = False
            for g in range(n_geoms):
                rad = g_radius[g] + margin
                dx, dy, dz = x - g_pos[g, 0], y - g_pos[g, 1], z - g_pos[g, 2]
                if abs(dx) >= rad or abs(dy) >= rad or abs(dz) >= rad:
                    continue
                fx, fy, fz = np.float32(dx), np.float32(dy), np.float32(dz)
                ax = abs(fx * g_rot[g, 0, 0] + fy * g_rot[g, 1, 0] + fz * g_rot[g, 2, 0])
                ay = abs(fx * g_rot[g, 0, 1] + fy * g_rot[g, 1, 1] + fz * g_rot[g, 2, 1])
                az = abs(fx * g_rot[g, 0, 2] + fy * g_rot[g, 1, 2] + fz * g_rot[g, 2, 2])
                kind = g_kind[g]
                if kind == GEOM_SPHERE:
                    dist = np.sqrt(ax * ax + ay * ay + az * az) - g_size[g, 0]
                elif kind == GEOM_CAPSULE:
                    e = max(az - g_size[g, 1], 0.0)
                    dist = np.sqrt(ax * ax + ay * ay + e * e) - g_size[g, 0]
                elif kind == GEOM_CYLINDER:
                    dist = max(np.sqrt(ax * ax + ay * ay) - g_size[g, 0], az - g_size[g, 1])
                else:  # boxes, and ellipsoids by their box
                    dist = max(max(ax - g_size[g, 0], ay - g_size[g, 1]), az - g_size[g, 2])
                if dist < margin:
                    own = True
                    break
            if not own:
                fg[r, c] = True
    return labels, points, fg


def segments(candidates: np.ndarray, labels: np.ndarray, used: np.ndarray, label: int,
             min_segment: int) -> tuple[int, list[np.ndarray]]:
    """8-connected segments of the candidate, not yet used pixels with colour class `label`.

    Returns the number of such pixels and the segments of at least `min_segment` pixels, each
    an (N, 2) int64 array of (row, col) in raster order, segments in the order of their first
    pixel in raster order: what `scipy.ndimage.label` with a 3x3 structure, then `np.nonzero`
    per component, gives (the reference in `tests/test_perception_kernels.py`), in one pass."""
    count, pixels, starts = _segments(candidates, labels, used, np.int8(label), int(min_segment))
    return int(count), [pixels[starts[k]:starts[k + 1]] for k in range(len(starts) - 1)]


@njit(cache=True, nogil=True)
def _find(parent, i):  # pragma: no cover - compiled
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def _segments(candidates, labels, used, label, min_segment):  # pragma: no cover - compiled
    h, w = labels.shape
    ids = np.full((h, w), -1, np.int64)
    parent = np.empty(h * w, np.int64)
    n = 0
    for r in range(h):
        for c in range(w):
            if not candidates[r, c] or labels[r, c] != label or used[r, c]:
                continue
            ids[r, c] = n
            parent[n] = n
            # join the already visited neighbours: left, and the three above
            for dr, dc in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):
                rr, cc = r + dr, c + dc
                if rr >= 0 and 0 <= cc < w and ids[rr, cc] >= 0:
                    a, b = _find(parent, n), _find(parent, ids[rr, cc])
                    if a != b:
                        if a < b:
                            parent[b] = a
                        else:
                            parent[a] = b
            n += 1
    # roots are each component's first pixel in raster order (the smaller index always wins)
    size = np.zeros(n, np.int64)
    for i in range(n):
        size[_find(parent, i)] += 1
    rank = np.full(n, -1, np.int64)
    kept = 0
    for i in range(n):
        if parent[i] == i and size[i] >= min_segment:
            rank[i] = kept
            kept += 1
    starts = np.zeros(kept + 1, np.int64)
    for i in range(n):
        if rank[i] >= 0:
            starts[rank[i] + 1] = size[i]
    for k in range(kept):
        starts[k + 1] += starts[k]
    fill = starts[:-1].copy()
    pixels = np.empty((starts[kept], 2), np.int64)
    for r in range(h):
        for c in range(w):
            i = ids[r, c]
            if i < 0:
                continue
            k = rank[_find(parent, i)]
            if k >= 0:
                pixels[fill[k], 0] = r
                pixels[fill[k], 1] = c
                fill[k] += 1
    return n, pixels, starts
