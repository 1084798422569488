"""The robot's own kinematics: proprioception → camera, grasp-site and link poses in the world.

A robot legitimately knows its own body. Perception needs it to turn head-camera pixels
into world points (through the head pan/tilt and the odometry pose) and to tell its own
arms apart from the things it looks at. This module compiles the humanoid MJCF *alone*
(no room, no objects) so nothing about the scene leaks through it, and exposes only
numpy arrays, so perception never imports mujoco.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from scenarios import robot as R

GEOM_SPHERE, GEOM_CAPSULE, GEOM_ELLIPSOID, GEOM_CYLINDER, GEOM_BOX = (
    int(mujoco.mjtGeom.mjGEOM_SPHERE),
    int(mujoco.mjtGeom.mjGEOM_CAPSULE),
    int(mujoco.mjtGeom.mjGEOM_ELLIPSOID),
    int(mujoco.mjtGeom.mjGEOM_CYLINDER),
    int(mujoco.mjtGeom.mjGEOM_BOX),
)


@dataclass(frozen=True)
class Pose:
    """A rigid pose in the world: position (3,) and rotation matrix (3, 3) whose columns are the frame's axes."""

    pos: np.ndarray
    rot: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Frame coordinates (N, 3) → world coordinates."""
        return points @ self.rot.T + self.pos

    def inverse_apply(self, points: np.ndarray) -> np.ndarray:
        """World coordinates (N, 3) → frame coordinates."""
        return (points - self.pos) @ self.rot


@dataclass(frozen=True)
class RobotGeoms:
    """The robot's collision/visual shapes in the world, for telling its own pixels apart."""

    kind: np.ndarray  # (G,) mujoco geom type ids (GEOM_* above)
    size: np.ndarray  # (G, 3) mujoco geom sizes
    pos: np.ndarray  # (G, 3)
    rot: np.ndarray  # (G, 3, 3)
    radius: np.ndarray  # (G,) bounding-sphere radius
    names: tuple[str, ...]


@dataclass(frozen=True)
class RobotFrames:
    """Where the robot's sensors and hands are, for one proprioception vector."""

    base: tuple[float, float, float]  # x, y, yaw
    head_camera: Pose  # MuJoCo camera convention: looks along -z, image up is +y
    wrist_cameras: dict[str, Pose]
    grasp_sites: dict[str, Pose]  # x approach, y closing direction
    gripper_opening: dict[str, float]
    geoms: RobotGeoms


class RobotKinematics:
    """Forward kinematics of the humanoid from its proprioception vector (see controllers.py).

    `names` are the proprioception names (`controller.proprioception_names()`); the vector
    is read by name, so the layout may grow without breaking this.
    """

    def __init__(self, names: tuple[str, ...] | list[str]) -> None:
        self.model = mujoco.MjModel.from_xml_path(str(R.HUMANOID_XML))
        self.data = mujoco.MjData(self.model)
        m = self.model
        index = {n: i for i, n in enumerate(names)}
        self._state_idx: list[int] = []
        self._qpos_adr: list[int] = []

        def bind(state_name: str, joint: str) -> None:
            self._state_idx.append(index[state_name])
            self._qpos_adr.append(int(m.jnt_qposadr[m.joint(joint).id]))

        for name, joint in zip(("base.x", "base.y", "base.yaw"), R.BASE_JOINTS):
            bind(name, joint)
        for side in R.SIDES:
            for suffix, joint in zip(R.ARM_JOINT_SUFFIXES, R.arm_joints(side)):
                bind(f"{side}.q.{suffix}", joint)
        for name, joint in zip(("head.pan", "head.tilt"), R.HEAD_JOINTS):
            bind(name, joint)
        self._state_idx_arr = np.array(self._state_idx)
        self._qpos_adr_arr = np.array(self._qpos_adr)
        self._opening_idx = {s: index[f"{s}.gripper_opening"] for s in R.SIDES}
        self._finger_adr = {s: [int(m.jnt_qposadr[m.joint(j).id]) for j in R.finger_joints(s)] for s in R.SIDES}
        self._head_cam = m.camera(R.HEAD_CAMERA).id
        self._wrist_cam = {s: m.camera(R.wrist_camera(s)).id for s in R.SIDES}
        self._site = {s: m.site(R.grasp_site(s)).id for s in R.SIDES}
        self.head_fovy_deg = float(m.cam_fovy[self._head_cam])
        self.wrist_fovy_deg = float(m.cam_fovy[self._wrist_cam["left"]])
        # Shapes that can appear in the head camera: not the head itself, which carries it.
        head_bodies = {int(m.body(R.HEAD_BODY).id), int(m.body_parentid[m.body(R.HEAD_BODY).id])}
        self._geoms = np.array([g for g in range(m.ngeom) if int(m.geom_bodyid[g]) not in head_bodies])
        self._geom_names = tuple(m.geom(int(g)).name for g in self._geoms)

    def frames(self, state: np.ndarray) -> RobotFrames:
        """Poses of the head camera, wrist cameras, grasp sites and robot geoms in the world."""
        m, d = self.model, self.data
        state = np.asarray(state, dtype=np.float64)
        d.qpos[self._qpos_adr_arr] = state[self._state_idx_arr]
        opening = {s: float(state[i]) for s, i in self._opening_idx.items()}
        for s, adrs in self._finger_adr.items():
            d.qpos[adrs] = opening[s] / 2.0
        mujoco.mj_kinematics(m, d)
        mujoco.mj_camlight(m, d)  # camera poses are not part of mj_kinematics

        def cam(i: int) -> Pose:
            return Pose(d.cam_xpos[i].copy(), d.cam_xmat[i].reshape(3, 3).copy())

        def site(i: int) -> Pose:
            return Pose(d.site_xpos[i].copy(), d.site_xmat[i].reshape(3, 3).copy())

        g = self._geoms
        geoms = RobotGeoms(
            kind=m.geom_type[g].astype(int).copy(),
            size=m.geom_size[g].copy(),
            pos=d.geom_xpos[g].copy(),
            rot=d.geom_xmat[g].reshape(-1, 3, 3).copy(),
            radius=m.geom_rbound[g].copy(),
            names=self._geom_names,
        )
        return RobotFrames(
            base=(float(state[self._state_idx[0]]), float(state[self._state_idx[1]]), float(state[self._state_idx[2]])),
            head_camera=cam(self._head_cam),
            wrist_cameras={s: cam(i) for s, i in self._wrist_cam.items()},
            grasp_sites={s: site(i) for s, i in self._site.items()},
            gripper_opening=opening,
            geoms=geoms,
        )


def pinhole_intrinsics(fovy_deg: float, height: int, width: int) -> np.ndarray:
    """3x3 pinhole matrix of a MuJoCo camera (square pixels, vertical field of view)."""
    f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
