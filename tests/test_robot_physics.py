"""Physics of the humanoid model: names, frames, collision bits, stability, a frictional grasp."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from scenarios import robot as R
from scenarios.controllers import RobotController
from robot_scene import TABLE_HEIGHT, build_scene, geom_contact, home_scene


@pytest.fixture(scope="module")
def scene() -> tuple[mujoco.MjModel, mujoco.MjData]:
    return home_scene(cup_pos=None)


def test_humanoid_xml_is_a_standalone_mjcf_file() -> None:
    model = mujoco.MjModel.from_xml_path(str(R.HUMANOID_XML))
    assert model.body(1).name == R.BASE_BODY
    assert model.nu == 24


def test_required_names_exist(scene: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    model, _ = scene
    base = model.body(R.BASE_BODY)
    assert base.parentid[0] == 0, "base must be a child of the world"
    assert np.allclose(base.pos, 0.0), "base sits at the world origin; its pose is in its joints"
    jnt = [model.joint(j) for j in R.BASE_JOINTS]
    assert [j.bodyid[0] for j in jnt] == [base.id] * 3
    assert [int(j.type[0]) for j in jnt] == [
        mujoco.mjtJoint.mjJNT_SLIDE,
        mujoco.mjtJoint.mjJNT_SLIDE,
        mujoco.mjtJoint.mjJNT_HINGE,
    ]
    assert [int(j.qposadr[0]) for j in jnt] == [0, 1, 2], "base joints come first, in order"
    model.body(R.TORSO_BODY)
    for joint, actuator in zip(R.HEAD_JOINTS, R.HEAD_ACTUATORS):
        assert model.joint(joint).limited[0]
        model.actuator(actuator)
    for side in R.SIDES:
        for joint in R.arm_joints(side):
            assert model.joint(joint).limited[0]
            model.actuator(joint)
        model.body(R.hand_body(side))
        for body in R.finger_bodies(side):
            model.body(body)
        for joint in R.finger_joints(side):
            assert int(model.joint(joint).type[0]) == mujoco.mjtJoint.mjJNT_SLIDE
        for pad in R.pad_geoms(side):
            assert model.geom(pad).friction[0] >= 1.5
            assert model.geom(pad).condim[0] in (4, 6)
        model.site(R.grasp_site(side))
        model.camera(R.wrist_camera(side))
        model.actuator(R.gripper_actuator(side))
    model.camera(R.HEAD_CAMERA)


def test_robot_geoms_use_the_robot_collision_bits(scene: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    model, _ = scene
    robot_bodies = {model.body(R.BASE_BODY).id}
    for b in range(model.nbody):
        if model.body_rootid[b] == model.body(R.BASE_BODY).id:
            robot_bodies.add(b)
    robot_geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] in robot_bodies]
    assert len(robot_geoms) > 30
    for g in robot_geoms:
        assert model.geom_contype[g] == R.ROBOT_CONTYPE, model.geom(g).name
        assert model.geom_conaffinity[g] == R.ROBOT_CONAFFINITY, model.geom(g).name
    assert R.ROBOT_CONTYPE & R.ROBOT_CONAFFINITY == 0, "the robot must not collide with itself"
    assert R.ROBOT_CONTYPE & R.WORLD_CONAFFINITY, "the robot must collide with the world"


def test_arm_head_and_finger_bodies_are_gravity_compensated(scene: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    model, _ = scene
    for side in R.SIDES:
        for joint in (*R.arm_joints(side), *R.finger_joints(side)):
            assert model.body_gravcomp[model.jnt_bodyid[model.joint(joint).id]] == 1.0, joint
    for joint in R.HEAD_JOINTS:
        assert model.body_gravcomp[model.jnt_bodyid[model.joint(joint).id]] == 1.0, joint


@pytest.mark.parametrize("yaw", [0.0, 0.7, 2.5])
def test_base_stays_clear_of_the_floor(yaw: float) -> None:
    model, data = home_scene(cup_pos=None, table_x=5.0)
    R.set_base_pose(model, data, 1.0, -0.5, yaw)
    mujoco.mj_forward(model, data)
    floor = model.geom("floor").id
    for g in range(model.ngeom):
        if model.geom_bodyid[g] == model.body(R.BASE_BODY).id:
            dist = mujoco.mj_geomDistance(model, data, g, floor, 1.0, None)
            assert dist >= 0.0099, f"{model.geom(g).name} is {dist:.4f} m above the floor"
    assert data.ncon == 0


def test_dimensions_are_human_like(scene: tuple[mujoco.MjModel, mujoco.MjData]) -> None:
    model, data = scene
    top = max(
        data.geom_xpos[g][2] + model.geom_rbound[g]
        for g in range(model.ngeom)
        if model.geom_bodyid[g] == model.body(R.HEAD_BODY).id
    )
    assert 1.5 < top < 1.75
    zero = mujoco.MjData(model)
    mujoco.mj_forward(model, zero)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder = zero.xpos[model.body(f"{side}_upper_arm").id]
        assert 1.15 <= shoulder[2] <= 1.25
        assert sign * shoulder[1] > 0.15, "left is +y, right is -y"
    assert abs(R.MASS - float(model.body_subtreemass[model.body(R.BASE_BODY).id])) < 1.0


def test_head_camera_looks_forward_at_about_1_5_m() -> None:
    model, data = build_scene(cup_pos=None)
    mujoco.mj_forward(model, data)  # head_pan = head_tilt = 0
    cam = model.camera(R.HEAD_CAMERA).id
    assert 1.4 < data.cam_xpos[cam][2] < 1.6
    rot = data.cam_xmat[cam].reshape(3, 3)
    assert np.allclose(-rot[:, 2], [1, 0, 0], atol=1e-6), "camera looks along -z = robot +x"
    assert np.allclose(rot[:, 1], [0, 0, 1], atol=1e-6), "image up is world up"
    assert 55 <= model.cam_fovy[cam] <= 65
    # positive tilt looks down
    data.qpos[model.jnt_qposadr[model.joint("head_tilt").id]] = 0.5
    mujoco.mj_forward(model, data)
    assert (-data.cam_xmat[cam].reshape(3, 3)[:, 2])[2] < -0.4


def test_grasp_site_frame_convention() -> None:
    """Site x points from palm to fingertips, site y along the finger slide direction."""
    model, data = build_scene(cup_pos=None)
    mujoco.mj_forward(model, data)
    for side in R.SIDES:
        site = model.site(R.grasp_site(side)).id
        rot = data.site_xmat[site].reshape(3, 3)
        palm = data.geom_xpos[model.geom(f"{side}_palm").id]
        approach = data.site_xpos[site] - palm
        assert np.dot(rot[:, 0], approach / np.linalg.norm(approach)) > 0.99
        finger_a = model.joint(R.finger_joints(side)[0]).id
        axis_a = data.xaxis[finger_a]
        assert abs(np.dot(rot[:, 1], axis_a)) > 0.99
        pads = [data.geom_xpos[model.geom(p).id] for p in R.pad_geoms(side)]
        assert np.allclose((pads[0] + pads[1]) / 2, data.site_xpos[site], atol=1e-6)
        wrist = model.camera(R.wrist_camera(side)).id
        view = -data.cam_xmat[wrist].reshape(3, 3)[:, 2]
        assert np.dot(view, rot[:, 0]) > 0.85, "wrist camera looks along the approach direction"


def test_gripper_opens_wide_and_closes_with_limited_force() -> None:
    model, data = home_scene(cup_pos=None)
    ctrl = RobotController(model, data)
    action = ctrl.hold_action()
    for side in R.SIDES:
        action[ctrl.layout.slices[f"{side}.gripper"]] = 0.0
    for _ in range(20):
        ctrl.step(action)
    assert ctrl.gripper_opening("left") >= 0.09 and ctrl.gripper_opening("right") >= 0.09
    action[ctrl.layout.slices["left.gripper"]] = 1.0
    for _ in range(20):
        ctrl.step(action)
    assert ctrl.gripper_opening("left") < 0.005
    limit = model.actuator_forcerange[model.actuator(R.gripper_actuator("left")).id]
    assert 20.0 <= limit[1] <= 40.0


@pytest.mark.parametrize("integrator", ["implicitfast", "Euler"])
def test_idle_robot_drifts_less_than_1mm_in_10s(integrator: str) -> None:
    model, data = home_scene(cup_pos=None, integrator=integrator)
    ctrl = RobotController(model, data)
    base0 = ctrl.base_pose()
    sites0 = {s: data.site_xpos[model.site(R.grasp_site(s)).id].copy() for s in R.SIDES}
    steps = round(10.0 / ctrl.control_dt)
    for _ in range(steps):
        ctrl.step(ctrl.hold_action())
    assert data.time == pytest.approx(10.0, abs=1e-6)
    assert np.linalg.norm(ctrl.base_pose()[:2] - base0[:2]) < 1e-3
    assert abs(ctrl.base_pose()[2] - base0[2]) < 1e-3
    for side, p0 in sites0.items():
        assert np.linalg.norm(data.site_xpos[model.site(R.grasp_site(side)).id] - p0) < 1e-3


def test_objects_next_to_the_idle_robot_stay_put() -> None:
    box = """
    <body name="box" pos="0.6 -0.2 0.7805">
      <freejoint/>
      <geom name="box" class="world" type="box" size="0.03 0.04 0.03" mass="0.3" rgba="0.1 0.7 0.2 1"/>
    </body>"""
    model, data = home_scene(cup_pos=(0.55, 0.22), extra=box)
    ctrl = RobotController(model, data)
    for _ in range(2):  # let contacts settle (sub-millimetre)
        ctrl.step(ctrl.hold_action())
    start = {b: data.xpos[model.body(b).id].copy() for b in ("cup", "box")}
    for _ in range(round(5.0 / ctrl.control_dt)):
        ctrl.step(ctrl.hold_action())
    for body, p0 in start.items():
        moved = np.linalg.norm(data.xpos[model.body(body).id] - p0)
        assert moved < 2e-3, f"{body} moved {moved * 1000:.2f} mm"
        assert data.xpos[model.body(body).id][2] > TABLE_HEIGHT


def _move(ctrl: RobotController, action: np.ndarray, side: str, pos: list[float], seconds: float,
          gripper: float | None = None) -> None:
    """Move the grasp-site target linearly to ``pos`` over 70% of ``seconds``, then hold."""
    s = ctrl.layout.slices
    start = action[s[f"{side}.pos"]].copy()
    steps = round(seconds / ctrl.control_dt)
    for i in range(steps):
        alpha = min(1.0, (i + 1) / (0.7 * steps))
        action[s[f"{side}.pos"]] = start + alpha * (np.asarray(pos) - start)
        if gripper is not None:
            action[s[f"{side}.gripper"]] = gripper
        ctrl.step(action)


@pytest.mark.parametrize("side", ["left", "right"])
def test_side_grasp_lifts_a_cup_by_friction_and_holds_it(side: str) -> None:
    sign = 1.0 if side == "left" else -1.0
    y = sign * 0.22
    model, data = home_scene(cup_pos=(0.55, y))
    ctrl = RobotController(model, data)
    # The cup is a free body with no equality constraints: only contact can hold it.
    assert model.neq == 2 and all(model.eq_type[i] == mujoco.mjtEq.mjEQ_JOINT for i in range(model.neq))
    cup = model.body("cup").id
    site = model.site(R.grasp_site(side)).id
    action = ctrl.hold_action()
    s = ctrl.layout.slices
    action[s[f"{side}.rot"]] = 0.0  # forward side grasp
    action[s[f"{side}.gripper"]] = 0.0
    mid = TABLE_HEIGHT + 0.05
    _move(ctrl, action, side, [0.42, y, mid], 1.5)
    _move(ctrl, action, side, [0.55, y, mid], 1.5)
    assert np.linalg.norm(data.xpos[cup][:2] - [0.55, y]) < 5e-3, "approach must not push the cup"
    _move(ctrl, action, side, [0.55, y, mid], 0.8, gripper=1.0)
    assert 0.06 < ctrl.gripper_opening(side) < 0.071, "fingers rest on the cup"
    _move(ctrl, action, side, [0.55, y, mid + 0.10], 1.0)
    lifted = data.xpos[cup][2] - data.site_xpos[site][2]
    assert data.xpos[cup][2] > mid + 0.09
    worst = 0.0
    for _ in range(round(2.0 / ctrl.control_dt)):
        ctrl.step(action)
        worst = max(worst, abs(data.xpos[cup][2] - data.site_xpos[site][2] - lifted))
        assert not geom_contact(model, data, "cup", "table_top")
    assert worst < 0.01, f"cup slid {worst * 1000:.1f} mm in the hand"
    assert data.xpos[cup][2] > mid + 0.09
    # Opening the gripper lets it go (nothing else holds it).
    action[s[f"{side}.gripper"]] = 0.0
    for _ in range(10):
        ctrl.step(action)
    assert data.xpos[cup][2] < mid + 0.05
    assert math.isfinite(float(data.qpos.sum()))


def _held_ball(offset: tuple[float, float, float], seconds: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """The tidy table's ball put between the right pads at `offset` (grasp-site frame), the hand
    closed on it and held still in front of the robot: where it is in the pads' frame once they
    have closed, and `seconds` later."""
    from scenarios.world import SimWorld

    world = SimWorld("tidy_table")
    try:
        world.reset(seed=0)
        m, d = world.model, world.data
        site = m.site(R.grasp_site("right")).id
        ball = m.body("red_ball").id
        adr, dof = m.jnt_qposadr[m.body_jntadr[ball]], m.body_dofadr[ball]
        action = world.hold_action().copy()
        action[world.controller.layout.slices["right.pos"]] = (0.45, -0.25, 1.05)

        def held() -> np.ndarray:
            return d.site_xmat[site].reshape(3, 3).T @ (d.xpos[ball] - d.site_xpos[site])

        with world.cameras_off():
            for _ in range(60):
                world.step(action)
            d.qpos[adr:adr + 3] = d.site_xpos[site] + d.site_xmat[site].reshape(3, 3) @ np.asarray(offset)
            d.qvel[dof:dof + 6] = 0.0
            mujoco.mj_forward(m, d)
            action[world.controller.layout.slices["right.gripper"]] = 1.0
            for _ in range(10):  # the fingers close on it
                world.step(action)
            start = held()
            for _ in range(int(seconds / world.control_period)):
                world.step(action)
            return start, held()
    finally:
        world.close()


def test_a_ball_held_off_the_pads_centre_stays_where_it_is_held() -> None:
    """MuJoCo's soft friction let a held ball creep ~0.2 mm/s through a still, closed hand and
    3.7 cm in 3.5 s while an arm swung it (session 20); the noslip post-solver stops the creep.
    Pads 4.4 cm square hold a ball 1.8 cm off their centre across them where it was put (2.8 cm
    wide ones let it slide to their edge, 2.3 cm, and drop out of a moving hand)."""
    toward_tips = np.array([0.02, 0.0, 0.0])
    start, end = _held_ball(tuple(toward_tips))
    assert np.linalg.norm(start - toward_tips) < 0.005 and np.linalg.norm(end - start) < 0.0005  # 1.3 mm without noslip
    below = np.array([0.0, 0.0, -0.018])  # across the pads, below their centre: gravity pulls it out
    start, end = _held_ball(tuple(below))
    assert np.linalg.norm(end - below) < 0.003 and np.linalg.norm(end - start) < 0.0005


def test_the_pads_half_length_along_the_approach_matches_the_model() -> None:
    model = mujoco.MjModel.from_xml_path(str(R.HUMANOID_XML))
    for side in R.SIDES:
        for pad in R.pad_geoms(side):
            assert model.geom(pad).size[2] == pytest.approx(R.PAD_HALF_LENGTH)  # pad z is the approach (grasp-site x)
