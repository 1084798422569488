"""Planar frame helpers shared by the skills: world <-> robot base frame, angles, rotations."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation


def wrap(angle: float) -> float:
    """Angle in (-pi, pi]."""
    return float((angle + math.pi) % (2 * math.pi) - math.pi)


def to_base(base: tuple[float, float, float], point: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """A world point (x, y[, z]) in the robot base frame (z unchanged)."""
    x, y, yaw = base
    p = np.asarray(point, dtype=float)
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = p[0] - x, p[1] - y
    out = np.array([c * dx + s * dy, -s * dx + c * dy])
    return np.concatenate([out, p[2:]]) if p.shape[0] > 2 else out


def to_world(base: tuple[float, float, float], point: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """A base-frame point (x, y[, z]) in the world frame."""
    x, y, yaw = base
    p = np.asarray(point, dtype=float)
    c, s = math.cos(yaw), math.sin(yaw)
    out = np.array([x + c * p[0] - s * p[1], y + s * p[0] + c * p[1]])
    return np.concatenate([out, p[2:]]) if p.shape[0] > 2 else out


def quat_yaw(quat: tuple[float, float, float, float]) -> float:
    """Heading (rotation about z) of a MuJoCo (w, x, y, z) quaternion."""
    w, x, y, z = quat
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def rotvec_step(current: np.ndarray, goal: np.ndarray, max_angle: float) -> np.ndarray:
    """Turn rotation vector `current` towards `goal` by at most `max_angle` radians."""
    rc, rg = Rotation.from_rotvec(current), Rotation.from_rotvec(goal)
    delta = (rg * rc.inv()).as_rotvec()
    angle = float(np.linalg.norm(delta))
    if angle > max_angle:
        delta *= max_angle / angle
    return (Rotation.from_rotvec(delta) * rc).as_rotvec()


def rotvec_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm((Rotation.from_rotvec(b) * Rotation.from_rotvec(a).inv()).as_rotvec()))


def side_grasp_rotvec(yaw: float, pitch: float = 0.0) -> np.ndarray:
    """Grasp-site orientation: approach heading `yaw` in the base frame, tipped down by `pitch`."""
    return Rotation.from_euler("ZY", [yaw, pitch]).as_rotvec()


def approach_axis(rotvec: np.ndarray) -> np.ndarray:
    """The grasp site's x axis (approach direction) for a rotation vector, base frame."""
    return Rotation.from_rotvec(rotvec).apply([1.0, 0.0, 0.0])
