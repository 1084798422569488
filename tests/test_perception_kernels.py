"""The compiled per-pixel pass gives what the numpy reference functions give, frame by frame.

The references below are how perception did this before `perception.kernels`: whole-image
numpy operations, kept here (and only here) to check the kernels against."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from perception import kernels
from perception.evaluation import hold, set_head
from perception.geometry import MAX_DEPTH, MIN_DEPTH
from perception.perception import NEIGHBOURHOOD, Perception
from perception.static_map import RASTER_RES, StaticMap
from scenarios.kinematics import GEOM_CAPSULE, GEOM_CYLINDER, GEOM_SPHERE, Pose, RobotGeoms
from scenarios.world import SimWorld


def to_world(q: np.ndarray, pose: Pose) -> np.ndarray:
    """Frame points (N, 3) → world, written out per component (a BLAS call costs more at N x 3)."""
    r = pose.rot.astype(np.float32)
    t = pose.pos.astype(np.float32)
    x, y, z = q[:, 0], q[:, 1], q[:, 2]
    out = np.empty(q.shape, dtype=np.float32)
    for k in range(3):
        out[:, k] = x * r[k, 0] + y * r[k, 1] + z * r[k, 2] + t[k]
    return out


def robot_mask(points: np.ndarray, candidates: np.ndarray, geoms: RobotGeoms, margin: float = 0.015) -> np.ndarray:
    """Which candidate pixels (H, W) show the robot's own body (within `margin` of its geoms).

    Per geom whose bounding sphere can reach the candidates: the points inside its bounding
    cube, then the exact distance to its shape on those only (ellipsoids by their box). A loop
    over the few nearby geoms costs less than gathering a rotation per (geom, point) pair.
    """
    hit = np.zeros(candidates.shape, dtype=bool)
    idx = np.flatnonzero(candidates.reshape(-1))
    if idx.size == 0:
        return hit
    p = points.reshape(-1, 3)[idx]
    cols = np.ascontiguousarray(p.T)
    lo, hi = cols.min(axis=1), cols.max(axis=1)
    rad = geoms.radius + margin
    near = np.flatnonzero(np.all((geoms.pos + rad[:, None] >= lo) & (geoms.pos - rad[:, None] <= hi), axis=1))
    own = np.zeros(len(p), dtype=bool)
    x, y, z = cols
    for g in near:
        c, r = geoms.pos[g], rad[g]
        sel = np.flatnonzero((np.abs(x - c[0]) < r) & (np.abs(y - c[1]) < r) & (np.abs(z - c[2]) < r))
        if sel.size == 0:
            continue
        local = (p[sel] - c.astype(np.float32)) @ geoms.rot[g].astype(np.float32)
        size, kind = geoms.size[g], geoms.kind[g]
        ax, ay, az = np.abs(local[:, 0]), np.abs(local[:, 1]), np.abs(local[:, 2])
        if kind == GEOM_SPHERE:
            d = np.sqrt(ax**2 + ay**2 + az**2) - size[0]
        elif kind == GEOM_CAPSULE:
            d = np.sqrt(ax**2 + ay**2 + np.maximum(az - size[1], 0.0) ** 2) - size[0]
        elif kind == GEOM_CYLINDER:
            d = np.maximum(np.sqrt(ax**2 + ay**2) - size[0], az - size[1])
        else:  # boxes, and ellipsoids by their box
            d = np.maximum(np.maximum(ax - size[0], ay - size[1]), az - size[2])
        own[sel[d < margin]] = True
    hit.reshape(-1)[idx[own]] = True
    return hit


def is_static(static: StaticMap, points: np.ndarray, floor_margin: float = 0.012, wall_margin: float = 0.015) -> np.ndarray:
    """Which world points (N, 3) belong to the floor, walls or furniture solids (StaticMap's raster)."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    hx, hy = static.room[0] / 2 - wall_margin, static.room[1] / 2 - wall_margin
    out = (z < floor_margin) | (np.abs(x) > hx) | (np.abs(y) > hy) | (z > static.wall_height - 0.05)
    rest = np.flatnonzero(~out)
    ij = np.floor((points[rest, :2] - static._origin) / RASTER_RES).astype(np.int32)
    np.clip(ij[:, 0], 0, static._raster.shape[0] - 1, out=ij[:, 0])
    np.clip(ij[:, 1], 0, static._raster.shape[1] - 1, out=ij[:, 1])
    flat = ij[:, 0] * static._raster.shape[1] + ij[:, 1]
    occupied = static._occupied[flat]
    rest, flat = rest[occupied], flat[occupied]
    zr = z[rest]
    hit = np.zeros(len(rest), dtype=bool)
    for lo, hi in static._layers:
        hit |= (zr >= lo[flat]) & (zr <= hi[flat])  # NaN (no interval) compares false
    out[rest] = hit
    return out


def _near_blocks(mask: np.ndarray) -> np.ndarray:
    """Pixels in or next to (8-connected) a NEIGHBOURHOOD-sized block holding any pixel of `mask`."""
    h, w = mask.shape
    b = NEIGHBOURHOOD
    padded = np.zeros((-(-h // b) * b, -(-w // b) * b), dtype=bool)
    padded[:h, :w] = mask
    blocks = padded.reshape(padded.shape[0] // b, b, padded.shape[1] // b, b).any(axis=(1, 3))
    grown = ndimage.binary_dilation(blocks, structure=np.ones((3, 3), dtype=bool))
    return np.repeat(np.repeat(grown, b, axis=0), b, axis=1)[:h, :w]


def reference(perception: Perception, obs: dict, cam) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixel pass written with the numpy functions, as perception did before the kernel."""
    st = perception.stride
    rgb = obs["observation.images.head"][::st, ::st]
    depth = obs["observation.depth.head"][::st, ::st]
    frames = perception.kinematics.frames(np.asarray(obs["observation.state"]))
    valid = (depth > MIN_DEPTH) & (depth < MAX_DEPTH)
    cam_points = perception.rays.rays * depth[..., None]
    labels = perception.colours.classify(rgb)
    interesting = valid & perception._interesting[labels + 1]
    neutral = perception._neutral[labels + 1]
    if neutral.any():
        interesting &= ~neutral | _near_blocks(interesting & ~neutral)
    idx = np.flatnonzero(interesting.reshape(-1))
    points = np.zeros(cam_points.shape, dtype=np.float32)
    points.reshape(-1, 3)[idx] = to_world(cam_points.reshape(-1, 3)[idx], cam)
    fg = np.zeros(interesting.shape, dtype=bool)
    fg.reshape(-1)[idx[~is_static(perception.static, points.reshape(-1, 3)[idx])]] = True
    fg &= ~robot_mask(points, fg, frames.geoms)
    return labels, points, fg


def _frames(world: SimWorld) -> list[dict]:
    """Frames looking around, and one with a hand raised into the view (the robot's own pixels)."""
    out = []
    for pan, tilt in ((0.0, 0.75), (0.35, 0.6), (-0.35, 0.85), (0.0, 0.3)):
        set_head(world, pan, tilt)
        out.append(hold(world, 1))
    set_head(world, 0.0, 0.75)
    out.append(hold(world, 12, ee={"right": np.array([0.45, -0.05, 0.95]), "left": np.array([0.4, 0.15, 0.85])}))
    return out


@pytest.mark.parametrize("scenario", ["kitchen", "living_room", "tidy_table", "distractors"])
def test_compiled_pass_matches_the_numpy_reference(scenario: str):
    world = SimWorld(scenario)
    try:
        world.reset(seed=3)
        perception = Perception.for_world(world)
        robot_pixels = 0
        for obs in _frames(world):
            perception.update(obs)
            cam = perception.debug.camera
            labels, points, fg = kernels.foreground(
                obs["observation.images.head"][:: perception.stride, :: perception.stride],
                obs["observation.depth.head"][:: perception.stride, :: perception.stride], perception.rays.rays,
                perception.colours.table, perception._interesting, perception._neutral, NEIGHBOURHOOD, cam,
                perception._static_arrays, perception.kinematics.frames(np.asarray(obs["observation.state"])).geoms)
            ref_labels, ref_points, ref_fg = reference(perception, obs, cam)
            np.testing.assert_array_equal(labels, ref_labels)
            np.testing.assert_array_equal(points, ref_points)  # the same float32 operations in the same order
            np.testing.assert_array_equal(fg, ref_fg)
            off_static = points.any(axis=-1) & ~ref_fg
            robot_pixels += int(np.count_nonzero(off_static))
        assert robot_pixels > 0, "some interesting pixels were removed (static map or the robot's body)"
    finally:
        world.close()


def test_the_kernel_removes_the_hands_in_front_of_the_camera():
    """With both grippers held up before the head, their dark parts lie among the objects'
    pixels: many kept pixels are the robot's own, and none of them may be foreground."""
    world = SimWorld("kitchen")
    try:
        world.reset(seed=1)
        perception = Perception.for_world(world)
        obs = _frames(world)[-1]
        perception.update(obs)
        geoms = perception.kinematics.frames(np.asarray(obs["observation.state"])).geoms
        _, points, fg = kernels.foreground(
            obs["observation.images.head"][::2, ::2], obs["observation.depth.head"][::2, ::2], perception.rays.rays,
            perception.colours.table, perception._interesting, perception._neutral, NEIGHBOURHOOD, perception.debug.camera,
            perception._static_arrays, geoms)
        own = robot_mask(points, points.any(axis=-1), geoms)
        assert np.count_nonzero(own) > 200, "the hands are in view and kept as interesting"
        assert not (fg & own).any()
    finally:
        world.close()


def reference_segments(candidates: np.ndarray, labels: np.ndarray, used: np.ndarray, label: int,
                       min_segment: int) -> tuple[int, list[np.ndarray]]:
    """Segments as perception found them before the kernel: scipy labelling in the pixels' box."""
    full = candidates & (labels == label) & ~used
    rows, cols = np.nonzero(full)
    if rows.size == 0:
        return 0, []
    r0, c0 = rows.min(), cols.min()
    comp, n = ndimage.label(full[r0 : rows.max() + 1, c0 : cols.max() + 1], structure=np.ones((3, 3)))
    sizes = np.bincount(comp.reshape(-1), minlength=n + 1)[1:]
    slices = ndimage.find_objects(comp)
    groups = []
    for k in np.flatnonzero(sizes >= min_segment):
        sl = slices[k]
        rr, cc = np.nonzero(comp[sl] == k + 1)
        groups.append(np.stack([rr + sl[0].start + r0, cc + sl[1].start + c0], 1))
    return int(rows.size), groups


def test_segments_match_scipy_labelling():
    """Random label images, dense and sparse: same pixel count, same segments, same order."""
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(3, 70, 2))
        labels = rng.integers(-1, 4, (h, w)).astype(np.int8)
        candidates = rng.random((h, w)) < rng.uniform(0.3, 1.0)
        used = rng.random((h, w)) < 0.1
        for label in (-1, 0, 2):
            for min_segment in (1, 3):
                count, groups = kernels.segments(candidates, labels, used, label, min_segment)
                ref_count, ref_groups = reference_segments(candidates, labels, used, label, min_segment)
                assert count == ref_count and len(groups) == len(ref_groups)
                for g, r in zip(groups, ref_groups):
                    np.testing.assert_array_equal(g, r)
                checked += len(groups)
    assert checked > 1000
