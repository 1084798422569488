"""Grasp choice by object shape and height: side grasps at table height, top-down grasps low down.

A side grasp (hand horizontal, approaching along its x axis) suits a cup, bottle or can
anywhere around its axis, a ball through its centre and a box across a pair of faces
(so its approach heading is one of the box's four face normals). Below about 0.62 m the
arm cannot keep the hand horizontal, so the hand points down instead, turned so the
fingers close across the box or the cylinder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from policy.expert.geometry import quat_yaw, side_grasp_rotvec, to_base, wrap
from scenarios.catalog import CATEGORIES
from scenarios.robot import HAND_LENGTH, SHOULDER_HEIGHT, SHOULDER_OFFSET
from scenarios.ground_truth import ObjectTruth
from scenarios.schema import SceneObject

TOP_DOWN_BELOW = 0.62  # m: grasp points lower than this are taken from above
SIDE_FORWARD = 0.47  # m: preferred forward distance of a side grasp from the base centre
TOP_FORWARD = 0.36  # m: preferred forward distance of a top-down grasp
PREGRASP_BACK = 0.13  # m behind the grasp point along the approach (side grasps)
PREGRASP_UP = 0.12
SIDE_PITCH = 0.2  # rad: side grasps tip the hand down a little
SIDE_PITCH_LOW = 0.5  # rad: side grasps of low points (a ball, a can)
WRIST_REACH = 0.605  # m from shoulder to wrist the arm reaches reliably (it stalls at about 0.625)
# Top grasps tip the hand forward from straight down when the point is too far for straight down
# (a cup at the far side of a low coffee table): the wrist then stays nearer the shoulder.
TOP_PITCHES = tuple(np.linspace(math.pi / 2, 0.8, 12))


@dataclass(frozen=True)
class Grasp:
    kind: str  # 'side' or 'top'
    point: np.ndarray  # grasp-site target, world frame (x, y, z)
    heading: float  # world yaw of the approach (side) or of the closing axis normal (top)
    pitch: float = 0.0  # side grasps: hand tipped down so the wrist and forearm clear the edge; top: pi/2 or less

    def rotvec(self, base_yaw: float) -> np.ndarray:
        """Grasp-site orientation in the base frame."""
        yaw = wrap(self.heading - base_yaw)
        return side_grasp_rotvec(yaw, self.pitch)


def wrist_distance(point_b: np.ndarray, side: str, yaw_b: float, pitch: float) -> float:
    """Shoulder-to-wrist distance with the grasp site at `point_b` (base frame), approaching along
    base-frame heading `yaw_b` tipped down by `pitch`."""
    approach = np.array([math.cos(pitch) * math.cos(yaw_b), math.cos(pitch) * math.sin(yaw_b), -math.sin(pitch)])
    shoulder = np.array([SHOULDER_OFFSET[0], SHOULDER_OFFSET[1] * (1.0 if side == "left" else -1.0), SHOULDER_HEIGHT])
    return float(np.linalg.norm(np.asarray(point_b, float) - approach * HAND_LENGTH - shoulder))


def top_pitch(point_b: np.ndarray, side: str, yaw_b: float) -> tuple[float, bool]:
    """The steepest top-grasp pitch whose wrist is within reach, and whether one is; else the
    pitch that comes nearest."""
    dists = [(wrist_distance(point_b, side, yaw_b, p), p) for p in TOP_PITCHES]
    for d, p in dists:
        if d <= WRIST_REACH:
            return p, True
    return min(dists)[1], False


SPHERE_CRADLE = 0.012  # m: a ball is gripped this far below its centre, so the pads hold it from beneath


def top_grasp_point(obj: SceneObject, truth: ObjectTruth) -> np.ndarray:
    point = np.asarray(truth.pos, float).copy()
    if CATEGORIES[obj.category].shape != "sphere":
        point[2] += obj.height / 2 - 0.03
    else:
        point[2] -= SPHERE_CRADLE
    return point


def grasp_kind(obj: SceneObject, truth: ObjectTruth) -> str:
    return "top" if truth.pos[2] < TOP_DOWN_BELOW else "side"


def preferred_forward(kind: str) -> float:
    return TOP_FORWARD if kind == "top" else SIDE_FORWARD


def choose_grasp(obj: SceneObject, truth: ObjectTruth, approach_heading: float, support_z: float,
                 base: tuple[float, float, float] | None = None, side: str = "left") -> Grasp:
    """The grasp for `obj`, approached along world heading `approach_heading` (the robot's facing);
    with the base pose, a top grasp out of straight-down reach is tipped forward."""
    cat = CATEGORIES[obj.category]
    kind = grasp_kind(obj, truth)
    centre = np.asarray(truth.pos, float)
    heading = approach_heading
    if cat.shape == "box":
        box_yaw = quat_yaw(truth.quat)
        # Nearest face normal to the desired approach (multiples of 90 degrees).
        k = round(wrap(approach_heading - box_yaw) / (math.pi / 2))
        heading = wrap(box_yaw + k * math.pi / 2)
    point = top_grasp_point(obj, truth) if kind == "top" else centre.copy()
    if kind == "side" and cat.shape == "sphere":
        point[2] -= SPHERE_CRADLE
    if kind == "top":
        pitch = math.pi / 2
        if base is not None:
            pitch, _ = top_pitch(to_base(base, point), side, wrap(heading - base[2]))
        return Grasp(kind, point, heading, pitch)
    # Low grasp points (a ball, a can) tip the hand down so the forearm clears the edge.
    pitch = SIDE_PITCH_LOW if point[2] - support_z < 0.055 else SIDE_PITCH
    return Grasp(kind, point, heading, pitch)
