"""The robot's action vector, its gymnasium spaces, and the controllers that execute it.

A policy acts at the control rate (20 Hz by default); MuJoCo integrates at 2 ms underneath,
``n_substeps = round(1 / (control_hz * timestep))`` physics steps per action.

Action layout, ``ArmMode.EE_POSE`` (19 values)::

    index  name                      unit     meaning
    0-2    base.vx base.vy base.wz   m/s,rad/s base velocity in the robot frame (|v|<=0.5, |w|<=1.0)
    3-5    left.x left.y left.z      m        grasp-site target position in the robot base frame
    6-8    left.rx left.ry left.rz   rad      grasp-site target orientation, rotation vector, base frame
    9      left.gripper              -        0 = open (10 cm), 1 = closed (force limited, 25 N)
    10-12  right.x right.y right.z   m        as for the left arm
    13-15  right.rx right.ry right.rz rad
    16     right.gripper             -
    17-18  head.pan head.tilt        rad      head joint targets (positive tilt looks down)

Action layout, ``ArmMode.JOINT`` (21 values)::

    index  name                               meaning
    0-2    base.vx base.vy base.wz            as above
    3-9    left.shoulder_pitch ... left.wrist_roll   arm joint position targets (rad)
    10     left.gripper                       0 open .. 1 closed
    11-17  right.shoulder_pitch ... right.wrist_roll
    18     right.gripper
    19-20  head.pan head.tilt

Grasp-site orientation: site x = approach direction, y = finger closing direction; the zero
rotation vector is a forward, horizontal side grasp and ``[0, pi/2, 0]`` points the gripper
down (top grasp).

How each part is executed:

* Base: the velocity command is rotated into the world frame through the current yaw,
  acceleration-limited (4 m/s^2, 8 rad/s^2) and integrated into the setpoints of stiff
  position servos on ``base_x/base_y/base_yaw``, with the reference velocity fed forward to
  velocity servos. Idle drift is therefore zero and a command of ``v`` for ``t`` seconds
  followed by zero moves the base by ``v * t``. A setpoint never gets more than 5 cm
  (0.15 rad) from the measured pose; when furniture blocks the base, it is held 1 cm ahead
  and the feed-forward is dropped, so the base pushes with about 100 N and never winds up.
* Arms, EE_POSE: damped least-squares differential IK on ``mujoco.mj_jacSite`` with a 6-D
  (position + orientation) error, iterated on a kinematics-only scratch ``MjData`` whose base
  is at the origin (so world = base frame), clamped to joint limits, with a null-space pull
  towards the home posture. The joint setpoints move at most ``max_joint_speed`` per second.
* Arms, JOINT: targets are clipped to joint limits and approached at ``max_joint_speed``.
* Gripper: position servo on the finger tendon, setpoint ``0.1 m * (1 - g)``; on an object
  it squeezes with the actuator force limit.
* Head: position servos on pan and tilt.

Within a control period ``step`` ramps the arm and head setpoints linearly from their
previous values and moves the base reference at constant acceleration, so the servos see a
smooth reference. (``apply`` alone writes the end-of-period setpoints, for callers that step
the physics themselves.)

Proprioception (``proprioception()``, float32, names from ``proprioception_names()``)::

    base.x base.y base.yaw            odometry pose in the world frame (m, rad)
    base.vx base.vy base.wz           base velocity in the robot frame
    left.q.<joint> x7                 arm joint positions (rad), then right arm
    left.qd.<joint> x7                arm joint velocities (rad/s), then right arm
    left.gripper_opening              pad opening (m), then right
    head.pan head.tilt                head joint angles (rad)
    left.ee.x/y/z, left.ee.qw/qx/qy/qz  grasp-site pose in the base frame (quaternion w >= 0),
                                      then right
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import gymnasium
import mujoco
import numpy as np

from scenarios import robot as R

MAX_BASE_SPEED = 0.5  # m/s, per axis
MAX_BASE_TURN = 1.0  # rad/s
EE_POS_LOW = (-0.3, -0.9, 0.2)  # grasp-site target bounds in the base frame (m)
EE_POS_HIGH = (1.0, 0.9, 1.8)
BASE_ACCEL_LIMIT = (4.0, 4.0, 8.0)  # m/s^2, m/s^2, rad/s^2 on the base reference velocity
BASE_LEAD_LIMIT = (0.01, 0.01, 0.03)  # m, m, rad: setpoint lead kept while blocked by furniture
BASE_MAX_LEAD = (0.05, 0.05, 0.15)  # m, m, rad: setpoint never further than this from the base


class ArmMode(str, Enum):
    """How the arm part of the action is interpreted."""

    EE_POSE = "ee_pose"
    JOINT = "joint"


def _arm_names(side: str, mode: ArmMode) -> tuple[str, ...]:
    if mode is ArmMode.EE_POSE:
        return tuple(f"{side}.{c}" for c in ("x", "y", "z", "rx", "ry", "rz", "gripper"))
    return tuple(f"{side}.{j}" for j in R.ARM_JOINT_SUFFIXES) + (f"{side}.gripper",)


@dataclass(frozen=True, eq=False)
class ActionLayout:
    """Where each quantity lives in the flat action vector, and its bounds."""

    mode: ArmMode
    dim: int
    names: tuple[str, ...]
    slices: dict[str, slice] = field(repr=False)
    low: np.ndarray = field(repr=False)
    high: np.ndarray = field(repr=False)

    @classmethod
    def build(cls, model: mujoco.MjModel, mode: ArmMode = ArmMode.EE_POSE) -> ActionLayout:
        """Layout for ``mode``; joint bounds are read from the model's joint ranges."""
        mode = ArmMode(mode)
        names: list[str] = ["base.vx", "base.vy", "base.wz"]
        low: list[float] = [-MAX_BASE_SPEED, -MAX_BASE_SPEED, -MAX_BASE_TURN]
        high: list[float] = [MAX_BASE_SPEED, MAX_BASE_SPEED, MAX_BASE_TURN]
        slices: dict[str, slice] = {"base": slice(0, 3)}
        for side in R.SIDES:
            start = len(names)
            names += _arm_names(side, mode)
            if mode is ArmMode.EE_POSE:
                low += [*EE_POS_LOW, -math.pi, -math.pi, -math.pi, 0.0]
                high += [*EE_POS_HIGH, math.pi, math.pi, math.pi, 1.0]
                slices[f"{side}.pos"] = slice(start, start + 3)
                slices[f"{side}.rot"] = slice(start + 3, start + 6)
            else:
                for joint in R.arm_joints(side):
                    lo, hi = model.jnt_range[model.joint(joint).id]
                    low.append(float(lo))
                    high.append(float(hi))
                low.append(0.0)
                high.append(1.0)
                slices[f"{side}.joints"] = slice(start, start + 7)
            slices[side] = slice(start, len(names))
            slices[f"{side}.gripper"] = slice(len(names) - 1, len(names))
        start = len(names)
        names += ["head.pan", "head.tilt"]
        for joint in R.HEAD_JOINTS:
            lo, hi = model.jnt_range[model.joint(joint).id]
            low.append(float(lo))
            high.append(float(hi))
        slices["head"] = slice(start, start + 2)
        return cls(
            mode=mode,
            dim=len(names),
            names=tuple(names),
            slices=slices,
            low=np.asarray(low, dtype=np.float32),
            high=np.asarray(high, dtype=np.float32),
        )

    def space(self) -> gymnasium.spaces.Box:
        """The gymnasium action space (float32)."""
        return gymnasium.spaces.Box(low=self.low.copy(), high=self.high.copy(), dtype=np.float32)


def rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle) to a unit quaternion (w, x, y, z)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    axis = rotvec / angle
    return np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis])


def quat_to_rotvec(quat: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) to the shortest rotation vector."""
    q = np.asarray(quat, dtype=np.float64)
    if q[0] < 0:
        q = -q
    vec = np.zeros(3)
    mujoco.mju_quat2Vel(vec, q, 1.0)
    return vec


def _mat_to_quat(mat: np.ndarray) -> np.ndarray:
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(mat, dtype=np.float64).reshape(9))
    return quat


def orientation_error(target_quat: np.ndarray, current_quat: np.ndarray) -> np.ndarray:
    """Rotation vector (world frame) that turns ``current_quat`` into ``target_quat``."""
    conj = np.zeros(4)
    mujoco.mju_negQuat(conj, np.asarray(current_quat, dtype=np.float64))
    err = np.zeros(4)
    mujoco.mju_mulQuat(err, np.asarray(target_quat, dtype=np.float64), conj)
    return quat_to_rotvec(err)


class _Arm:
    """Index bookkeeping for one arm."""

    def __init__(self, model: mujoco.MjModel, side: R.Side) -> None:
        joints = R.arm_joints(side)
        ids = [model.joint(j).id for j in joints]
        self.side = side
        self.qpos_adr = np.array([model.jnt_qposadr[i] for i in ids])
        self.dof_adr = np.array([model.jnt_dofadr[i] for i in ids])
        self.lo = np.array([model.jnt_range[i][0] for i in ids])
        self.hi = np.array([model.jnt_range[i][1] for i in ids])
        self.actuators = np.array([model.actuator(j).id for j in joints])
        self.home = np.array([R.HOME_QPOS[j] for j in joints])
        self.site = model.site(R.grasp_site(side)).id
        self.gripper_actuator = model.actuator(R.gripper_actuator(side)).id
        self.tendon = model.tendon(R.gripper_tendon(side)).id


class RobotController:
    """Turns one action per control period into actuator setpoints (see module docstring).

    Call :meth:`reset` whenever the world has set qpos and run ``mj_forward``; until the next
    action the robot then holds its current state.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        mode: ArmMode = ArmMode.EE_POSE,
        control_hz: float = 20.0,
        *,
        max_joint_speed: float = 1.5,
        ik_iterations: int = 10,
    ) -> None:
        if control_hz <= 0:
            raise ValueError(f"control_hz must be positive, got {control_hz}")
        self.model = model
        self.data = data
        self.mode = ArmMode(mode)
        self.layout = ActionLayout.build(model, self.mode)
        self.action_space = self.layout.space()
        self.n_substeps = max(1, round(1.0 / (control_hz * model.opt.timestep)))
        self.control_dt = self.n_substeps * model.opt.timestep
        self.max_joint_speed = float(max_joint_speed)
        self.ik_iterations = int(ik_iterations)
        self.ik_damping = 0.02
        self.ik_nullspace_gain = 0.05
        self.ik_rotation_weight = 0.3  # metres per radian in the IK error norm

        self._base_qpos = np.array([model.jnt_qposadr[model.joint(j).id] for j in R.BASE_JOINTS])
        self._base_dof = np.array([model.jnt_dofadr[model.joint(j).id] for j in R.BASE_JOINTS])
        self._base_pos_act = np.array([model.actuator(a).id for a in R.BASE_POSITION_ACTUATORS])
        self._base_vel_act = np.array([model.actuator(a).id for a in R.BASE_VELOCITY_ACTUATORS])
        self._base_body = model.body(R.BASE_BODY).id
        self._head_qpos = np.array([model.jnt_qposadr[model.joint(j).id] for j in R.HEAD_JOINTS])
        self._head_dof = np.array([model.jnt_dofadr[model.joint(j).id] for j in R.HEAD_JOINTS])
        self._head_act = np.array([model.actuator(a).id for a in R.HEAD_ACTUATORS])
        self._arms = {side: _Arm(model, side) for side in R.SIDES}
        # Arm and head setpoints are ramped linearly within a control period; the base
        # follows its constant-acceleration reference exactly (see step).
        self._ramped = np.concatenate([*[a.actuators for a in self._arms.values()], self._head_act])
        self._scratch = mujoco.MjData(model)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self.reset()

    # ------------------------------------------------------------------ state and targets
    def reset(self) -> None:
        """Make the current state the target of every servo (no motion follows)."""
        d = self.data
        self._base_setpoint = d.qpos[self._base_qpos].astype(np.float64).copy()
        self._base_velocity = np.zeros(3)  # world frame feed-forward
        self._base_period_start = (self._base_setpoint.copy(), np.zeros(3))
        self._arm_cmd: dict[str, np.ndarray] = {}
        self._joint_target: dict[str, np.ndarray] = {}
        self._ee_target: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._gripper_cmd: dict[str, float] = {}
        for side, arm in self._arms.items():
            q = np.clip(d.qpos[arm.qpos_adr], arm.lo, arm.hi)
            self._arm_cmd[side] = q.copy()
            self._joint_target[side] = q.copy()
            self._ee_target[side] = self._fk(arm, q)
            opening = float(d.ten_length[arm.tendon])
            self._gripper_cmd[side] = float(np.clip(1.0 - opening / R.GRIPPER_MAX_OPENING, 0.0, 1.0))
        self._head_cmd = d.qpos[self._head_qpos].astype(np.float64).copy()
        self._write_ctrl()
        self._ramp_start = d.ctrl[self._ramped].copy()

    def hold_action(self) -> np.ndarray:
        """The action that changes nothing: zero base velocity, every other target as now.

        Right after :meth:`reset` that is the current state; afterwards it repeats the last
        (clipped) targets, so a closed gripper stays closed.
        """
        a = np.zeros(self.layout.dim, dtype=np.float64)
        s = self.layout.slices
        for side in R.SIDES:
            if self.mode is ArmMode.EE_POSE:
                pos, quat = self._ee_target[side]
                a[s[f"{side}.pos"]] = pos
                a[s[f"{side}.rot"]] = quat_to_rotvec(quat)
            else:
                a[s[f"{side}.joints"]] = self._joint_target[side]
            a[s[f"{side}.gripper"]] = self._gripper_cmd[side]
        a[s["head"]] = self._head_cmd
        return np.clip(a, self.layout.low, self.layout.high).astype(np.float32)

    def validate(self, action: object) -> np.ndarray:
        """Check shape and finiteness, then clip to the action space (float64 copy)."""
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action must be a numeric array of shape ({self.layout.dim},): {exc}") from exc
        if a.shape != (self.layout.dim,):
            raise ValueError(
                f"action has shape {a.shape}, expected ({self.layout.dim},) for arm mode "
                f"'{self.mode.value}' (layout: {', '.join(self.layout.names)})"
            )
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            where = ", ".join(f"{self.layout.names[i]} (index {i}) = {a[i]}" for i in bad)
            raise ValueError(f"action has non-finite values: {where}")
        return np.clip(a, self.layout.low, self.layout.high)

    def apply(self, action: object) -> None:
        """Validate and clip ``action`` and set the actuator setpoints for the next period."""
        a = self.validate(action)
        s = self.layout.slices
        self._ramp_start = self.data.ctrl[self._ramped].copy()
        self._base_period_start = (self._base_setpoint.copy(), self._base_velocity.copy())
        self._apply_base(a[s["base"]])
        for side, arm in self._arms.items():
            if self.mode is ArmMode.EE_POSE:
                pos = a[s[f"{side}.pos"]].copy()
                quat = rotvec_to_quat(a[s[f"{side}.rot"]])
                self._ee_target[side] = (pos, quat)
                goal = self.solve_ik(side, pos, quat, self._arm_cmd[side])
            else:
                goal = np.clip(a[s[f"{side}.joints"]], arm.lo, arm.hi)
                self._joint_target[side] = goal.copy()
            self._arm_cmd[side] = self._rate_limit(self._arm_cmd[side], goal)
            self._gripper_cmd[side] = float(a[s[f"{side}.gripper"]][0])
        self._head_cmd = a[s["head"]].copy()
        self._write_ctrl()

    def step(self, action: object) -> None:
        """Apply ``action`` and advance the physics by one control period."""
        self.apply(action)
        d = self.data
        end = d.ctrl[self._ramped].copy()
        start = self._ramp_start
        p0, v0 = self._base_period_start
        p1, v1 = self._base_setpoint, self._base_velocity
        # Base reference: constant acceleration from (p0, v0); it ends at p1 unless the
        # anti-windup clamp moved p1, in which case the difference is blended in linearly.
        accel = (v1 - v0) / self.control_dt
        correction = p1 - (p0 + 0.5 * (v0 + v1) * self.control_dt)
        for k in range(self.n_substeps):
            alpha = (k + 1) / self.n_substeps
            t = alpha * self.control_dt
            d.ctrl[self._ramped] = start + (end - start) * alpha
            d.ctrl[self._base_pos_act] = p0 + v0 * t + 0.5 * accel * t * t + correction * alpha
            d.ctrl[self._base_vel_act] = v0 + accel * t
            mujoco.mj_step(self.model, d)

    # ------------------------------------------------------------------ sensing
    def base_pose(self) -> np.ndarray:
        """Base (x, y, yaw) in the world frame."""
        return self.data.qpos[self._base_qpos].astype(np.float64).copy()

    def ee_pose(self, side: R.Side) -> tuple[np.ndarray, np.ndarray]:
        """Grasp-site position and quaternion (w, x, y, z) in the robot base frame."""
        arm = self._arms[side]
        d = self.data
        rot_base = d.xmat[self._base_body].reshape(3, 3)
        pos = rot_base.T @ (d.site_xpos[arm.site] - d.xpos[self._base_body])
        mat = rot_base.T @ d.site_xmat[arm.site].reshape(3, 3)
        return pos, _mat_to_quat(mat)

    def gripper_opening(self, side: R.Side) -> float:
        """Distance between the finger pads (m)."""
        return float(self.data.ten_length[self._arms[side].tendon])

    def proprioception_names(self) -> tuple[str, ...]:
        """Names of the entries of :meth:`proprioception` (see module docstring)."""
        names = ["base.x", "base.y", "base.yaw", "base.vx", "base.vy", "base.wz"]
        for kind in ("q", "qd"):
            for side in R.SIDES:
                names += [f"{side}.{kind}.{j}" for j in R.ARM_JOINT_SUFFIXES]
        names += [f"{side}.gripper_opening" for side in R.SIDES]
        names += ["head.pan", "head.tilt"]
        for side in R.SIDES:
            names += [f"{side}.ee.{c}" for c in ("x", "y", "z", "qw", "qx", "qy", "qz")]
        return tuple(names)

    def proprioception(self) -> np.ndarray:
        """The robot's own state as float32 (layout in the module docstring)."""
        d = self.data
        pose = self.base_pose()
        vel = d.qvel[self._base_dof]
        c, s = math.cos(pose[2]), math.sin(pose[2])
        parts: list[np.ndarray] = [
            pose,
            np.array([c * vel[0] + s * vel[1], -s * vel[0] + c * vel[1], vel[2]]),
        ]
        parts += [d.qpos[arm.qpos_adr] for arm in self._arms.values()]
        parts += [d.qvel[arm.dof_adr] for arm in self._arms.values()]
        parts.append(np.array([self.gripper_opening(side) for side in R.SIDES]))
        parts.append(d.qpos[self._head_qpos])
        for side in R.SIDES:
            pos, quat = self.ee_pose(side)
            parts += [pos, quat if quat[0] >= 0 else -quat]
        return np.concatenate(parts).astype(np.float32)

    # ------------------------------------------------------------------ kinematics
    def _fk(self, arm: _Arm, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grasp-site pose in the base frame for arm joints ``q`` (scratch data)."""
        sc = self._scratch
        sc.qpos[self._base_qpos] = 0.0
        sc.qpos[arm.qpos_adr] = q
        mujoco.mj_kinematics(self.model, sc)
        return sc.site_xpos[arm.site].copy(), _mat_to_quat(sc.site_xmat[arm.site])

    def solve_ik(
        self,
        side: R.Side,
        target_pos: np.ndarray,
        target_quat: np.ndarray,
        q_start: np.ndarray,
        iterations: int | None = None,
    ) -> np.ndarray:
        """Joint positions that bring the grasp site to the target (base frame), from ``q_start``.

        Damped least squares with a null-space pull towards the home posture, clamped to
        joint limits; kinematics only, the simulation state is not touched.
        """
        arm = self._arms[side]
        m, sc = self.model, self._scratch
        sc.qpos[self._base_qpos] = 0.0
        q = np.clip(np.asarray(q_start, dtype=np.float64), arm.lo, arm.hi)
        w = self.ik_rotation_weight
        lam2 = self.ik_damping**2
        for _ in range(self.ik_iterations if iterations is None else iterations):
            sc.qpos[arm.qpos_adr] = q
            mujoco.mj_kinematics(m, sc)
            err_p = target_pos - sc.site_xpos[arm.site]
            err_r = orientation_error(target_quat, _mat_to_quat(sc.site_xmat[arm.site]))
            if np.linalg.norm(err_p) < 1e-4 and np.linalg.norm(err_r) < 1e-3:
                break
            mujoco.mj_comPos(m, sc)
            mujoco.mj_jacSite(m, sc, self._jacp, self._jacr, arm.site)
            jac = np.vstack([self._jacp[:, arm.dof_adr], w * self._jacr[:, arm.dof_adr]])
            err = np.concatenate([err_p, w * err_r])
            inv = np.linalg.solve(jac @ jac.T + lam2 * np.eye(6), np.eye(6))
            pinv = jac.T @ inv
            dq = pinv @ err
            dq += (np.eye(7) - pinv @ jac) @ (self.ik_nullspace_gain * (arm.home - q))
            largest = float(np.max(np.abs(dq)))
            if largest > 0.4:
                dq *= 0.4 / largest
            q = np.clip(q + dq, arm.lo, arm.hi)
        return q

    # ------------------------------------------------------------------ actuation
    def _rate_limit(self, current: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Move towards ``goal`` by at most max_joint_speed * control_dt (uniform scaling)."""
        delta = goal - current
        cap = self.max_joint_speed * self.control_dt
        largest = float(np.max(np.abs(delta)))
        if largest > cap:
            delta *= cap / largest
        return current + delta

    def _apply_base(self, command: np.ndarray) -> None:
        """Integrate the robot-frame velocity into world-frame servo setpoints.

        The reference velocity follows the command under an acceleration limit, so the
        base starts and stops without overshoot and ends ``v * t`` from where it started.
        """
        actual = self.data.qpos[self._base_qpos]
        speed = np.abs(self.data.qvel[self._base_dof])
        yaw = float(actual[2])
        c, s = math.cos(yaw), math.sin(yaw)
        world = np.array([c * command[0] - s * command[1], s * command[0] + c * command[1], command[2]])
        dt = self.control_dt
        accel = np.asarray(BASE_ACCEL_LIMIT) * dt
        previous = self._base_velocity
        velocity = previous + np.clip(world - previous, -accel, accel)
        slack = np.asarray(BASE_LEAD_LIMIT)
        setpoint = self._base_setpoint + 0.5 * (previous + velocity) * dt
        lead = setpoint - actual
        limit = np.abs(velocity) * dt + np.asarray(BASE_MAX_LEAD)
        # Blocked: the setpoint ran ahead and the base is not following (furniture in the
        # way). Hold the setpoint just ahead of the base and drop the feed-forward, so the
        # push stays at kp * slack instead of winding up. Otherwise the setpoint may never
        # get further than ``limit`` from the measured pose.
        blocked = (np.abs(lead) > slack) & (speed < 0.25 * np.abs(velocity))
        setpoint = np.where(blocked, actual + np.sign(lead) * slack, actual + np.clip(lead, -limit, limit))
        self._base_setpoint = setpoint
        self._base_velocity = np.where(blocked, 0.0, velocity)

    def _write_ctrl(self) -> None:
        d = self.data
        d.ctrl[self._base_pos_act] = self._base_setpoint
        d.ctrl[self._base_vel_act] = self._base_velocity
        for side, arm in self._arms.items():
            d.ctrl[arm.actuators] = self._arm_cmd[side]
            d.ctrl[arm.gripper_actuator] = R.GRIPPER_MAX_OPENING * (1.0 - self._gripper_cmd[side])
        d.ctrl[self._head_act] = self._head_cmd
