"""Names, dimensions and home posture of the wheeled humanoid in ``assets/humanoid.xml``.

Other code (controllers, scenario builder, perception, the scripted expert) refers to the
robot only through the names here, so the MJCF can change without breaking them.

Scene requirements. ``humanoid.xml`` is included with ``<include file="humanoid.xml"/>`` as
a child of the scene's top ``<mujoco>``; the scene provides floor, lights, ``<visual>`` and

    <option timestep="0.002" cone="elliptic" impratio="10" noslip_iterations="10"
            integrator="implicitfast"/>

(:data:`REQUIRED_OPTIONS`). Elliptic cones with impratio 10 keep a frictional grasp firm,
and the noslip post-solver removes the slow creep that MuJoCo's soft friction otherwise
lets through: a ball held while the arm swings slid 3.7 cm along the fingers and left the
closed hand without it (about 25% more physics time per step); implicitfast integrates the servos' damping implicitly (the robot also runs with
the default Euler integrator). Hinge ranges are in degrees, MuJoCo's default
``<compiler angle="degree"/>`` (:data:`REQUIRED_COMPILER`).

Collision bits. Every robot geom has ``contype=2 conaffinity=1``: the robot never collides
with itself but does with world geoms, which must use ``contype=1 conaffinity=3``. Robot
geoms are in geom group 1 (so a renderer can hide the robot); sites are in group 4.

Frames. The robot faces +x, left is +y. The root body ``base`` stays at the world origin and
its pose is given only by the joints ``base_x``, ``base_y``, ``base_yaw``; the base geoms
stay at least 1 cm above the floor. The grasp site frame has x = approach direction,
y = finger closing direction; identity in the base frame is a forward side grasp and a
rotation of +90 degrees about y is a top-down grasp.
"""

from __future__ import annotations

import math
import pathlib
from typing import Literal

import mujoco
import numpy as np

Side = Literal["left", "right"]

HUMANOID_XML: pathlib.Path = pathlib.Path(__file__).resolve().parent / "assets" / "humanoid.xml"

REQUIRED_OPTIONS: dict[str, str] = {
    "timestep": "0.002",
    "cone": "elliptic",
    "impratio": "10",
    "noslip_iterations": "10",
    "integrator": "implicitfast",
}
REQUIRED_COMPILER: dict[str, str] = {"angle": "degree"}

# --- collision bits ---------------------------------------------------------------------
ROBOT_CONTYPE = 2
ROBOT_CONAFFINITY = 1
WORLD_CONTYPE = 1
WORLD_CONAFFINITY = 3
ROBOT_GEOM_GROUP = 1

# --- names ------------------------------------------------------------------------------
SIDES: tuple[Side, Side] = ("left", "right")
BASE_BODY = "base"
TORSO_BODY = "torso"
HEAD_BODY = "head"
BASE_JOINTS: tuple[str, str, str] = ("base_x", "base_y", "base_yaw")
BASE_POSITION_ACTUATORS: tuple[str, str, str] = ("base_x", "base_y", "base_yaw")
BASE_VELOCITY_ACTUATORS: tuple[str, str, str] = ("base_x_vel", "base_y_vel", "base_yaw_vel")
HEAD_JOINTS: tuple[str, str] = ("head_pan", "head_tilt")
HEAD_ACTUATORS: tuple[str, str] = ("head_pan", "head_tilt")
HEAD_CAMERA = "head_camera"
ARM_JOINT_SUFFIXES: tuple[str, ...] = (
    "shoulder_pitch",
    "shoulder_roll",
    "shoulder_yaw",
    "elbow",
    "wrist_yaw",
    "wrist_pitch",
    "wrist_roll",
)
CAMERAS: tuple[str, ...] = ("head_camera", "left_wrist_camera", "right_wrist_camera")


def arm_joints(side: Side) -> tuple[str, ...]:
    """The seven arm joint names of one side, shoulder to wrist (also the actuator names)."""
    return tuple(f"{side}_{s}" for s in ARM_JOINT_SUFFIXES)


def finger_joints(side: Side) -> tuple[str, str]:
    """The two coupled finger slide joints (each 0 = closed to 0.05 m = open)."""
    return (f"{side}_finger_a_joint", f"{side}_finger_b_joint")


def pad_geoms(side: Side) -> tuple[str, str]:
    """The two finger-pad geoms (the surfaces that hold an object)."""
    return (f"{side}_pad_a", f"{side}_pad_b")


def hand_body(side: Side) -> str:
    return f"{side}_hand"


def finger_bodies(side: Side) -> tuple[str, str]:
    return (f"{side}_finger_a", f"{side}_finger_b")


def grasp_site(side: Side) -> str:
    """Site at the grasp centre between the pads (x approach, y closing direction)."""
    return f"{side}_grasp_site"


def wrist_camera(side: Side) -> str:
    return f"{side}_wrist_camera"


def gripper_actuator(side: Side) -> str:
    """Position actuator on the gripper tendon; ctrl is the pad opening in metres."""
    return f"{side}_gripper"


def gripper_tendon(side: Side) -> str:
    """Fixed tendon whose length is the pad opening (sum of both finger slides), metres."""
    return f"{side}_gripper"


# --- dimensions (metres, kilograms, newtons) --------------------------------------------
HEIGHT = 1.60
SHOULDER_HEIGHT = 1.17
SHOULDER_OFFSET = (0.02, 0.22)  # shoulder joint (x, +-y) in the base frame
HEAD_CAMERA_HEIGHT = 1.49  # with pan = tilt = 0
HEAD_CAMERA_FOVY_DEG = 65.0
WRIST_CAMERA_FOVY_DEG = 75.0
UPPER_ARM_LENGTH = 0.32
FOREARM_LENGTH = 0.30
HAND_LENGTH = 0.15  # wrist centre to grasp site
ARM_REACH = UPPER_ARM_LENGTH + FOREARM_LENGTH + HAND_LENGTH
BASE_HALF_EXTENTS = (0.245, 0.255)  # footprint half length (x) and half width (y)
BASE_TOP_HEIGHT = 0.28
GRIPPER_MAX_OPENING = 0.10
PAD_HALF_LENGTH = 0.022  # the pads' faces reach this far either side of the grasp site along the approach (site x)
GRIPPER_FORCE_LIMIT = 25.0
MASS = 68.8

# --- home posture -----------------------------------------------------------------------
# Grippers open, pointing forward and 30 deg down at about 1 m, at the lower corners of the
# head camera's view (the robot sees its own hands without hiding the table), clear of a
# 0.9 m counter; head tilted down 26 deg so a standing person stays in view.
# Right-arm joints are mirrored in the MJCF, so both sides share values.
_HOME_ARM = {
    "shoulder_pitch": 0.40,
    "shoulder_roll": 0.03,
    "shoulder_yaw": 0.12,
    "elbow": 1.89,
    "wrist_yaw": -0.10,
    "wrist_pitch": -1.22,
    "wrist_roll": -0.07,
}
HOME_QPOS: dict[str, float] = {
    **{f"{side}_{k}": v for side in SIDES for k, v in _HOME_ARM.items()},
    **{j: GRIPPER_MAX_OPENING / 2 for side in SIDES for j in finger_joints(side)},
    "head_pan": 0.0,
    "head_tilt": 0.45,
}


def _qpos_adr(model: mujoco.MjModel, joint: str) -> int:
    return int(model.jnt_qposadr[model.joint(joint).id])


def _dof_adr(model: mujoco.MjModel, joint: str) -> int:
    return int(model.jnt_dofadr[model.joint(joint).id])


def base_pose(model: mujoco.MjModel, data: mujoco.MjData) -> tuple[float, float, float]:
    """Planar base pose (x, y, yaw) in the world frame."""
    return tuple(float(data.qpos[_qpos_adr(model, j)]) for j in BASE_JOINTS)  # type: ignore[return-value]


def set_base_pose(model: mujoco.MjModel, data: mujoco.MjData, x: float, y: float, yaw: float) -> None:
    """Place the base at (x, y, yaw), at rest, with the base servos holding it there.

    Only qpos/qvel/ctrl change; call ``mujoco.mj_forward`` (and ``RobotController.reset``)
    afterwards.
    """
    for joint, actuator, value in zip(BASE_JOINTS, BASE_POSITION_ACTUATORS, (x, y, yaw)):
        data.qpos[_qpos_adr(model, joint)] = value
        data.qvel[_dof_adr(model, joint)] = 0.0
        data.ctrl[model.actuator(actuator).id] = value
    for actuator in BASE_VELOCITY_ACTUATORS:
        data.ctrl[model.actuator(actuator).id] = 0.0


def set_home_posture(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """Put arms, grippers and head in HOME_QPOS at rest, with their servos holding it.

    Only qpos/qvel/ctrl change; call ``mujoco.mj_forward`` (and ``RobotController.reset``)
    afterwards.
    """
    for joint, value in HOME_QPOS.items():
        data.qpos[_qpos_adr(model, joint)] = value
        data.qvel[_dof_adr(model, joint)] = 0.0
    for side in SIDES:
        for joint in arm_joints(side):
            data.ctrl[model.actuator(joint).id] = HOME_QPOS[joint]
        opening = sum(HOME_QPOS[j] for j in finger_joints(side))
        data.ctrl[model.actuator(gripper_actuator(side)).id] = opening
    for joint in HEAD_JOINTS:
        data.ctrl[model.actuator(joint).id] = HOME_QPOS[joint]


def yaw_rotation(yaw: float) -> np.ndarray:
    """3x3 rotation about z, the base frame's orientation in the world."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
