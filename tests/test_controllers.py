"""The action vector and the controllers: layout, validation, IK reach, joint and base control."""

from __future__ import annotations

import math

import gymnasium
import mujoco
import numpy as np
import pytest

from scenarios import robot as R
from scenarios.controllers import (
    ActionLayout,
    ArmMode,
    RobotController,
    orientation_error,
    quat_to_rotvec,
    rotvec_to_quat,
)
from robot_scene import home_scene

SIDE_GRASP = np.zeros(3)
TOP_GRASP = np.array([0.0, math.pi / 2, 0.0])


@pytest.fixture(scope="module")
def table() -> tuple[mujoco.MjModel, mujoco.MjData]:
    """Robot at the origin, 0.75 m table whose near edge is 0.40 m in front of the base."""
    return home_scene(cup_pos=None, table_x=0.75)


@pytest.fixture(scope="module")
def counter() -> tuple[mujoco.MjModel, mujoco.MjData]:
    """Robot at the origin, 0.9 m counter whose near edge is 0.35 m in front of the base."""
    return home_scene(cup_pos=None, table_x=0.65, table_height=0.9, table_size=(0.3, 0.8))


# ---------------------------------------------------------------------------- layout
def test_ee_pose_layout(table: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    layout = ActionLayout.build(table[0], ArmMode.EE_POSE)
    assert layout.dim == 19 == len(layout.names)
    assert layout.names[:3] == ("base.vx", "base.vy", "base.wz")
    assert layout.names[3:10] == ("left.x", "left.y", "left.z", "left.rx", "left.ry", "left.rz", "left.gripper")
    assert layout.names[17:] == ("head.pan", "head.tilt")
    assert layout.slices["right"] == slice(10, 17)
    assert layout.slices["right.gripper"] == slice(16, 17)
    assert layout.slices["left.pos"] == slice(3, 6) and layout.slices["left.rot"] == slice(6, 9)
    space = layout.space()
    assert isinstance(space, gymnasium.spaces.Box) and space.dtype == np.float32
    assert space.shape == (19,)
    assert layout.high[0] == pytest.approx(0.5) and layout.high[2] == pytest.approx(1.0)
    assert layout.low[9] == 0.0 and layout.high[9] == 1.0


def test_joint_layout(table: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    model = table[0]
    layout = ActionLayout.build(model, ArmMode.JOINT)
    assert layout.dim == 21 == len(layout.names)
    assert layout.names[3:11] == tuple(f"left.{j}" for j in R.ARM_JOINT_SUFFIXES) + ("left.gripper",)
    assert layout.slices["left.joints"] == slice(3, 10)
    assert layout.slices["head"] == slice(19, 21)
    lo, hi = model.jnt_range[model.joint("left_elbow").id]
    assert layout.low[6] == pytest.approx(lo) and layout.high[6] == pytest.approx(hi)


def test_controller_basics(table: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    model, data = table
    ctrl = RobotController(model, data)
    assert ctrl.n_substeps == 25
    assert ctrl.layout.mode is ArmMode.EE_POSE
    assert ctrl.action_space.contains(ctrl.hold_action())
    assert RobotController(model, data, mode="joint", control_hz=10.0).n_substeps == 50
    names = ctrl.proprioception_names()
    obs = ctrl.proprioception()
    assert obs.dtype == np.float32 and obs.shape == (len(names),) == (52,)
    assert len(set(names)) == len(names)
    pos, quat = ctrl.ee_pose("left")
    i = names.index("left.ee.x")
    assert np.allclose(obs[i : i + 3], pos, atol=1e-6)
    assert np.allclose(abs(np.dot(obs[i + 3 : i + 7], quat)), 1.0, atol=1e-5)
    assert obs[names.index("left.gripper_opening")] == pytest.approx(0.1, abs=1e-4)


def test_rotation_helpers_round_trip() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        rv = rng.uniform(-1.0, 1.0, 3) * 1.5
        assert np.allclose(quat_to_rotvec(rotvec_to_quat(rv)), rv, atol=1e-9)
        q = rotvec_to_quat(rv)
        assert np.linalg.norm(orientation_error(q, q)) < 1e-9


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(18), "shape (18,), expected (19,)"),
        (np.zeros((1, 19)), "shape (1, 19)"),
        ([], "shape (0,)"),
        ("go", "numeric"),
    ],
)
def test_bad_action_shape_is_rejected(table: tuple[mujoco.MjModel, mujoco.MjData], action: object, message: str) -> None:
    ctrl = RobotController(*table)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ctrl.apply(action)


def test_non_finite_action_is_rejected_by_name(table: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    model, data = table
    ctrl = RobotController(model, data)
    before = data.ctrl.copy()
    action = ctrl.hold_action()
    action[4] = np.nan
    action[18] = np.inf
    with pytest.raises(ValueError, match=r"non-finite.*left\.y \(index 4\).*head\.tilt \(index 18\)"):
        ctrl.step(action)
    assert np.array_equal(data.ctrl, before), "a rejected action changes nothing"


def test_out_of_range_action_is_clipped() -> None:
    model, data = home_scene(cup_pos=None, table_x=5.0)
    ctrl = RobotController(model, data)
    action = ctrl.hold_action()
    action[0] = 50.0  # base.vx
    action[9] = 7.0  # left.gripper
    ctrl.apply(action)
    assert data.ctrl[model.actuator(R.gripper_actuator("left")).id] == pytest.approx(0.0)
    for _ in range(20):
        ctrl.step(action)
    assert data.qvel[0] == pytest.approx(0.5, abs=0.01)


# ---------------------------------------------------------------------------- EE reach
def _reach(model: mujoco.MjModel, data: mujoco.MjData, side: str, pos: np.ndarray, rotvec: np.ndarray,
           seconds: float = 3.0) -> tuple[float, float]:
    """From home, command one grasp-site pose; return (position error m, orientation error deg)."""
    mujoco.mj_resetData(model, data)
    R.set_home_posture(model, data)
    mujoco.mj_forward(model, data)
    ctrl = RobotController(model, data)
    action = ctrl.hold_action()
    action[ctrl.layout.slices[f"{side}.pos"]] = pos
    action[ctrl.layout.slices[f"{side}.rot"]] = rotvec
    for _ in range(round(seconds / ctrl.control_dt)):
        ctrl.step(action)
    reached, quat = ctrl.ee_pose(side)
    angle = math.degrees(float(np.linalg.norm(orientation_error(rotvec_to_quat(rotvec), quat))))
    return float(np.linalg.norm(reached - pos)), angle


def _grid(xs: tuple[float, ...], ys: tuple[float, ...], z: float) -> list[np.ndarray]:
    return [np.array([x, y, z]) for x in xs for y in ys]


TABLE_SIDE = _grid((0.45, 0.55, 0.62), (0.05, 0.22, 0.40), 0.82)  # 7 cm above the top
TABLE_TOP_DOWN = _grid((0.45, 0.55), (0.05, 0.22, 0.40), 0.85)  # 10 cm above the top


@pytest.mark.parametrize(
    ("grasp", "points"),
    [(SIDE_GRASP, TABLE_SIDE), (TOP_GRASP, TABLE_TOP_DOWN)],
    ids=["side_grasp", "top_down"],
)
def test_left_arm_reaches_across_the_table(table: tuple[mujoco.MjModel, mujoco.MjData], grasp: np.ndarray,
                                           points: list[np.ndarray]) -> None:
    for point in points:
        err, angle = _reach(*table, "left", point, grasp)
        assert err < 0.01 and angle < 3.0, f"{point}: {err * 100:.1f} cm, {angle:.1f} deg"


@pytest.mark.parametrize("grasp", [SIDE_GRASP, TOP_GRASP], ids=["side_grasp", "top_down"])
def test_right_arm_reaches_mirrored_points(table: tuple[mujoco.MjModel, mujoco.MjData], grasp: np.ndarray) -> None:
    for point in (np.array([0.45, -0.05, 0.84]), np.array([0.55, -0.30, 0.84])):
        err, angle = _reach(*table, "right", point, grasp)
        assert err < 0.01 and angle < 3.0, f"{point}: {err * 100:.1f} cm, {angle:.1f} deg"


def test_arms_reach_above_a_counter(counter: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    cases = [
        ("left", np.array([0.50, 0.22, 0.97]), SIDE_GRASP),
        ("left", np.array([0.62, 0.05, 0.97]), SIDE_GRASP),
        ("right", np.array([0.55, -0.22, 1.00]), TOP_GRASP),
    ]
    for side, point, grasp in cases:
        err, angle = _reach(*counter, side, point, grasp)
        assert err < 0.01 and angle < 3.0, f"{side} {point}: {err * 100:.1f} cm, {angle:.1f} deg"


def test_ee_motion_is_rate_limited(table: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    model, data = table
    mujoco.mj_resetData(model, data)
    R.set_home_posture(model, data)
    mujoco.mj_forward(model, data)
    ctrl = RobotController(model, data)
    action = ctrl.hold_action()
    action[ctrl.layout.slices["left.pos"]] = [0.62, 0.4, 0.82]
    act = [model.actuator(j).id for j in R.arm_joints("left")]
    before = data.ctrl[act].copy()
    ctrl.apply(action)
    assert np.max(np.abs(data.ctrl[act] - before)) <= ctrl.max_joint_speed * ctrl.control_dt + 1e-9


def test_hold_after_reaching_keeps_the_pose(table: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    model, data = table
    _reach(model, data, "left", np.array([0.5, 0.2, 0.85]), TOP_GRASP, seconds=2.0)
    ctrl = RobotController(model, data)  # a fresh controller: targets := current state
    p0, _ = ctrl.ee_pose("left")
    for _ in range(20):
        ctrl.step(ctrl.hold_action())
    assert np.linalg.norm(ctrl.ee_pose("left")[0] - p0) < 1e-3


# ---------------------------------------------------------------------------- joint mode
def test_joint_mode_tracks_joint_targets() -> None:
    model, data = home_scene(cup_pos=None, table_x=5.0)  # free space: no contact disturbs it
    ctrl = RobotController(model, data, mode=ArmMode.JOINT)
    action = ctrl.hold_action()
    s = ctrl.layout.slices
    left = np.array([0.6, 0.3, -0.4, 1.2, 0.3, -0.5, 0.8])
    right = np.array([0.2, 0.5, 0.3, 0.9, -0.2, 0.4, -1.0])
    action[s["left.joints"]] = left
    action[s["right.joints"]] = right
    action[s["head"]] = [0.4, 0.3]
    for _ in range(round(2.5 / ctrl.control_dt)):
        ctrl.step(action)
    for side, target in (("left", left), ("right", right)):
        q = np.array([data.qpos[model.jnt_qposadr[model.joint(j).id]] for j in R.arm_joints(side)])
        assert np.max(np.abs(q - target)) < 0.01, f"{side}: {q - target}"
    head = [data.qpos[model.jnt_qposadr[model.joint(j).id]] for j in R.HEAD_JOINTS]
    assert np.allclose(head, [0.4, 0.3], atol=0.01)
    # targets beyond the limits are clipped, not an error
    action[s["left.joints"]] = 10.0
    ctrl.apply(action)


# ---------------------------------------------------------------------------- base
def test_base_velocity_moves_by_v_times_t_and_stops() -> None:
    model, data = home_scene(cup_pos=None, table_x=5.0)
    R.set_base_pose(model, data, 0.5, -0.3, 0.6)
    mujoco.mj_forward(model, data)
    ctrl = RobotController(model, data)
    action = ctrl.hold_action()
    action[ctrl.layout.slices["base"]] = [0.4, 0.0, 0.0]
    start = ctrl.base_pose()
    seconds = 2.0
    for _ in range(round(seconds / ctrl.control_dt)):
        ctrl.step(action)
    speed = ctrl.proprioception()[3:6]
    assert speed == pytest.approx([0.4, 0.0, 0.0], abs=0.02), "velocity reported in the robot frame"
    action[ctrl.layout.slices["base"]] = 0.0
    for _ in range(10):  # 0.5 s to stop
        ctrl.step(action)
    moved = ctrl.base_pose() - start
    assert np.linalg.norm(moved[:2]) == pytest.approx(0.4 * seconds, rel=0.03)
    heading = math.atan2(moved[1], moved[0])
    assert heading == pytest.approx(0.6, abs=0.02), "vx is along the robot's heading"
    assert abs(moved[2]) < 1e-3
    stopped = ctrl.base_pose()
    for _ in range(20):
        ctrl.step(action)
    assert np.linalg.norm(ctrl.base_pose()[:2] - stopped[:2]) < 2e-3
    assert np.linalg.norm(data.qvel[:3]) < 1e-3


def test_base_turns_and_strafes() -> None:
    model, data = home_scene(cup_pos=None, table_x=5.0)
    ctrl = RobotController(model, data)
    action = ctrl.hold_action()
    for command, seconds, expected in (
        ([0.0, 0.3, 0.0], 1.0, [0.0, 0.3, 0.0]),
        ([0.0, 0.0, 1.0], 1.5, [0.0, 0.3, 1.5]),
    ):
        action[ctrl.layout.slices["base"]] = command
        for _ in range(round(seconds / ctrl.control_dt)):
            ctrl.step(action)
        action[ctrl.layout.slices["base"]] = 0.0
        for _ in range(10):
            ctrl.step(action)
        assert ctrl.base_pose() == pytest.approx(expected, abs=0.01)


def test_base_pushing_against_furniture_does_not_wind_up() -> None:
    model, data = home_scene(cup_pos=None, table_x=0.75)
    ctrl = RobotController(model, data)
    action = ctrl.hold_action()
    action[ctrl.layout.slices["base"]] = [0.5, 0.0, 0.0]
    for _ in range(60):  # 3 s into the table
        ctrl.step(action)
    blocked_at = ctrl.base_pose()[0]
    assert blocked_at < 0.5
    lead = data.ctrl[model.actuator("base_x").id] - data.qpos[0]
    assert lead < 0.02, f"setpoint leads the base by {lead:.3f} m"
    action[ctrl.layout.slices["base"]] = [-0.3, 0.0, 0.0]
    for _ in range(10):
        ctrl.step(action)
    assert ctrl.base_pose()[0] < blocked_at - 0.1, "backs off at once, no wound-up setpoint"
