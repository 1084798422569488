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

from policy.expert.geometry import quat_yaw, side_grasp_rotvec, wrap
from scenarios.catalog import CATEGORIES
from scenarios.ground_truth import ObjectTruth
from scenarios.schema import SceneObject

TOP_DOWN_BELOW = 0.62  # m: grasp points lower than this are taken from above
SIDE_FORWARD = 0.47  # m: preferred forward distance of a side grasp from the base centre
TOP_FORWARD = 0.36  # m: preferred forward distance of a top-down grasp
PREGRASP_BACK = 0.13  # m behind the grasp point along the approach (side grasps)
PREGRASP_UP = 0.12
SIDE_PITCH = 0.2  # rad: side grasps tip the hand down a little
SIDE_PITCH_LOW = 0.5  # m above the grasp point (top-down grasps)


@dataclass(frozen=True)
class Grasp:
    kind: str  # 'side' or 'top'
    point: np.ndarray  # grasp-site target, world frame (x, y, z)
    heading: float  # world yaw of the approach (side) or of the closing axis normal (top)
    pitch: float = 0.0  # side grasps: hand tipped down so the wrist and forearm clear the edge

    def rotvec(self, base_yaw: float) -> np.ndarray:
        """Grasp-site orientation in the base frame."""
        yaw = wrap(self.heading - base_yaw)
        return side_grasp_rotvec(yaw, math.pi / 2 if self.kind == "top" else self.pitch)


def grasp_kind(obj: SceneObject, truth: ObjectTruth) -> str:
    return "top" if truth.pos[2] < TOP_DOWN_BELOW else "side"


def preferred_forward(kind: str) -> float:
    return TOP_FORWARD if kind == "top" else SIDE_FORWARD


def choose_grasp(obj: SceneObject, truth: ObjectTruth, approach_heading: float, support_z: float) -> Grasp:
    """The grasp for `obj`, approached along world heading `approach_heading` (the robot's facing)."""
    cat = CATEGORIES[obj.category]
    kind = grasp_kind(obj, truth)
    centre = np.asarray(truth.pos, float)
    heading = approach_heading
    if cat.shape == "box":
        box_yaw = quat_yaw(truth.quat)
        # Nearest face normal to the desired approach (multiples of 90 degrees).
        k = round(wrap(approach_heading - box_yaw) / (math.pi / 2))
        heading = wrap(box_yaw + k * math.pi / 2)
    point = centre.copy()
    if kind == "top" and cat.shape != "sphere":
        point[2] = centre[2] + obj.height / 2 - 0.03
    # Low grasp points (a ball, a can) tip the hand down so the forearm clears the edge.
    pitch = SIDE_PITCH_LOW if point[2] - support_z < 0.055 else SIDE_PITCH
    return Grasp(kind, point, heading, pitch if kind == "side" else 0.0)
