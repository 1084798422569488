"""The world built from scenarios: gymnasium API, randomisation, ground truth, cameras."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scenarios.loading import builtin_scenarios, load_scenario
from scenarios.predicates import Predicate
from scenarios.schema import Randomisation
from scenarios.world import SimWorld, WorldConfig

NO_CAMERAS = WorldConfig(cameras=(), head_depth=False)


@pytest.fixture(scope="module")
def kitchen() -> SimWorld:
    world = SimWorld("kitchen")
    yield world
    world.close()


def test_observation_matches_space_and_uses_lerobot_keys(kitchen: SimWorld):
    obs, info = kitchen.reset(seed=3, options={"task": "serve a drink to the person"})
    assert kitchen.observation_space.contains(obs)
    assert set(obs) == {
        "observation.state", "observation.images.head", "observation.images.left_wrist",
        "observation.images.right_wrist", "observation.depth.head", "task",
    }
    assert obs["observation.images.head"].dtype == np.uint8 and obs["observation.images.head"].shape == (240, 320, 3)
    assert obs["observation.state"].dtype == np.float32
    assert obs["task"] == "serve a drink to the person"
    assert set(info) == {"time", "step"}, "info must not leak ground truth onto the decision path"
    obs, reward, terminated, truncated, info = kitchen.step(kitchen.hold_action())
    assert info["step"] == 1 and math.isclose(info["time"], 0.05, abs_tol=1e-9)
    assert kitchen.action_space.shape == (19,)


def test_cameras_off_skips_rendering(kitchen: SimWorld):
    kitchen.reset(seed=0)
    with kitchen.cameras_off():
        obs, *_ = kitchen.step(kitchen.hold_action())
    assert set(obs) == {"observation.state", "task"}
    obs, *_ = kitchen.step(kitchen.hold_action())
    assert kitchen.observation_space.contains(obs)


def test_same_seed_same_world_other_seed_other_world():
    world = SimWorld("distractors", NO_CAMERAS)
    try:
        def snapshot(seed):
            world.reset(seed=seed)
            state = world.privileged_state()
            return (np.array([o.pos for o in state.objects.values()]), world.model.geom_rgba.copy(),
                    world.model.light_diffuse.copy(), np.array(state.robot.base))

        a, b, c = snapshot(7), snapshot(7), snapshot(8)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        assert not np.allclose(a[0], c[0]), "object poses vary with the seed"
        assert not np.allclose(a[1], c[1]), "colour shades vary with the seed"
        assert not np.allclose(a[2], c[2]), "lighting varies with the seed"
    finally:
        world.close()


def test_randomisation_stays_within_the_scenario_ranges():
    sc = load_scenario("tidy_table")
    world = SimWorld(sc, NO_CAMERAS)
    nominal = SimWorld(sc.model_copy(update={"randomisation": Randomisation.none()}), NO_CAMERAS)
    try:
        nominal.reset(seed=0)
        base = nominal.privileged_state()
        for seed in range(5):
            world.reset(seed=seed)
            state = world.privileged_state()
            for oid, obj in state.objects.items():
                d = np.abs(np.array(obj.pos[:2]) - np.array(base.objects[oid].pos[:2]))
                assert d.max() <= sc.randomisation.object_xy + 0.01, (oid, d)
                assert state.holds(f"on({oid}, table)"), f"{oid} still rests on the table (seed {seed})"
            r, g, b = world.model.geom_rgba[world.model.geom("red_ball").id, :3]
            assert r > 0.5 and g < 0.3 and b < 0.3, "a shade of red is still red"
    finally:
        world.close()
        nominal.close()


def test_ground_truth_predicates_at_start(kitchen: SimWorld):
    kitchen.reset(seed=0)
    state = kitchen.privileged_state(visibility=True)
    assert state.holds("on(red_cup, table)")
    assert state.holds("on(orange_ball, counter)")
    assert state.holds("not holding(red_cup)")
    assert not state.holds("given(red_cup, person_1)")
    assert state.holds("near(robot, table)")
    assert not state.holds("near(robot, person_1)")
    assert state.holds("visible(red_cup)") and state.holds("visible(yellow_box)")
    assert not state.holds("visible(orange_ball)"), "the counter's ball is out of the head camera's view"
    assert state.robot.holding == {"left": None, "right": None}
    assert state.objects["red_cup"].contacts == ("table",)


def test_given_and_in_are_physical():
    """An object set on a person's palm counts as given; one dropped in a bin is in it."""
    world = SimWorld("tidy_table", NO_CAMERAS)
    try:
        world.reset(seed=0)
        hand = world.privileged_state().people["person_1"].hand
        gt = world._truth  # placing objects by hand is test set-up, not an API
        adr = gt._object_joint_adr
        world.data.qpos[adr["green_box"] : adr["green_box"] + 3] = (hand[0], hand[1], hand[2] + 0.06)
        bin_ = world.scenario.furniture_by_id()["bin"]
        world.data.qpos[adr["red_ball"] : adr["red_ball"] + 3] = (bin_.pos[0], bin_.pos[1], 0.3)
        hold = world.hold_action()
        for _ in range(30):
            world.step(hold)
        state = world.privileged_state()
        assert state.holds("given(green_box, person_1)"), state.objects["green_box"]
        assert state.people["person_1"].holds == ("green_box",)
        assert state.holds("in(red_ball, bin)") and not state.holds("on(red_ball, table)")
        assert state.holds("on(blue_can, table)")
    finally:
        world.close()


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_objects_set_on_furniture_stay_put(name: str):
    world = SimWorld(name, NO_CAMERAS)
    try:
        world.reset(seed=1)
        before = world.privileged_state()
        hold = world.hold_action()
        for _ in range(round(5.0 * world.config.control_hz)):
            world.step(hold)
        after = world.privileged_state()
        for oid, obj in after.objects.items():
            moved = np.linalg.norm(np.array(obj.pos) - np.array(before.objects[oid].pos))
            assert moved < 0.002, f"{oid} moved {moved * 1000:.1f} mm in 5 s"
            assert obj.rests_on == before.objects[oid].rests_on is not None
    finally:
        world.close()


def test_head_camera_sees_table_cup_person_and_hands(kitchen: SimWorld):
    kitchen.reset(seed=0)
    seg = kitchen.render_camera("head", kind="segmentation")
    m = kitchen.model
    bodies = {m.body(int(b)).name for b in np.unique(m.geom_bodyid[seg[seg >= 0]])}
    assert {"table", "red_cup", "person_1"} <= bodies
    assert any(b.startswith(("left_", "right_")) for b in bodies), f"a hand is in view: {sorted(bodies)}"
    rgb = kitchen.render_camera("head")
    cup = seg == m.geom("red_cup").id
    r, g, b = rgb[cup].mean(axis=0)
    assert r > 1.5 * g and r > 1.5 * b, "the red cup renders red"
    depth = kitchen.render_camera("head", kind="depth")
    cup_depth = float(np.median(depth[cup]))
    truth = kitchen.privileged_state()
    cam = m.camera("head_camera").id
    offset = np.array(truth.objects["red_cup"].pos) - kitchen.data.cam_xpos[cam]
    along_axis = -(kitchen.data.cam_xmat[cam].reshape(3, 3).T @ offset)[2]  # depth is planar, not radial
    assert along_axis - 0.05 < cup_depth < along_axis, "depth sees the cup's near side, in metres"


def test_bad_action_is_refused(kitchen: SimWorld):
    kitchen.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        kitchen.step(np.zeros(5))
    bad = kitchen.hold_action()
    bad[4] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        kitchen.step(bad)


def test_predicate_on_unknown_entity_raises(kitchen: SimWorld):
    kitchen.reset(seed=0)
    with pytest.raises(KeyError, match="unknown entity"):
        kitchen.privileged_state().holds(Predicate.parse("near(robot, sofa)"))


def _to_base(world: SimWorld, p) -> np.ndarray:
    x, y, yaw = world.privileged_state().robot.base
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = p[0] - x, p[1] - y
    return np.array([c * dx + s * dy, -s * dx + c * dy, p[2]])


@pytest.mark.parametrize("seed", [0, 1])
def test_grasp_and_lift_in_the_kitchen_by_friction(seed: int):
    """Ground truth follows a physical grasp: holding while lifted, on the table once put back."""
    world = SimWorld("kitchen", NO_CAMERAS)
    try:
        world.reset(seed=seed)
        cup = _to_base(world, world.privileged_state().objects["red_cup"].pos)
        side = "left" if cup[1] > 0 else "right"
        s = world.controller.layout.slices
        action = world.hold_action()
        action[s[f"{side}.rot"]] = 0.0
        action[s[f"{side}.gripper"]] = 0.0

        def move(target, seconds, gripper=None):
            action[s[f"{side}.pos"]] = target
            if gripper is not None:
                action[s[f"{side}.gripper"]] = gripper
            for _ in range(round(seconds * world.config.control_hz)):
                world.step(action)

        move(cup - [0.14, 0, 0], 1.5)
        move(cup, 1.5)
        move(cup, 0.8, gripper=1.0)
        assert world.holds("not holding(red_cup)"), "still on the table: grasped, not yet holding"
        move(cup + [0, 0, 0.10], 1.0)
        state = world.privileged_state()
        assert state.holds("holding(red_cup)") and state.robot.holding[side] == "red_cup"
        assert not state.holds("on(red_cup, table)")
        z0 = state.objects["red_cup"].pos[2]
        move(cup + [0, 0, 0.10], 2.0)
        assert abs(world.privileged_state().objects["red_cup"].pos[2] - z0) < 0.005, "held by friction for 2 s"
        move(cup + [0, 0, 0.005], 1.0)
        move(cup + [0, 0, 0.005], 0.5, gripper=0.0)
        move(cup - [0.14, 0, -0.005], 1.0)
        assert world.holds("on(red_cup, table)") and world.holds("not holding(red_cup)")
    finally:
        world.close()
