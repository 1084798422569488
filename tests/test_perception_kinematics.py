"""The robot's own kinematics (scenarios/kinematics.py) agrees with the simulator."""

from __future__ import annotations

import numpy as np
import pytest

from scenarios.kinematics import RobotKinematics, pinhole_intrinsics
from scenarios.loading import load_scenario
from scenarios.world import SimWorld


@pytest.fixture(scope="module")
def world() -> SimWorld:
    sc = load_scenario("kitchen")
    no_jitter = sc.randomisation.model_copy(update={"camera": sc.randomisation.camera.model_copy(update={"pos": 0.0, "rot_deg": 0.0})})
    w = SimWorld(sc.model_copy(update={"randomisation": no_jitter}))
    yield w
    w.close()


@pytest.mark.parametrize("seed,pan,tilt", [(0, 0.0, 0.75), (1, 0.6, 0.4), (2, -1.0, 1.1)])
def test_head_camera_and_grasp_sites_match_the_simulator(world: SimWorld, seed: int, pan: float, tilt: float) -> None:
    world.reset(seed=seed)
    action = world.hold_action()
    action[-2:] = (pan, tilt)
    action[3:6] = (0.45, 0.15, 0.95)  # move the left hand too
    for _ in range(10):
        obs, *_ = world.step(action)
    kin = RobotKinematics(world.controller.proprioception_names())
    frames = kin.frames(obs["observation.state"])
    cam = world.model.camera("head_camera").id
    assert np.allclose(frames.head_camera.pos, world.data.cam_xpos[cam], atol=2e-4)
    assert np.allclose(frames.head_camera.rot, world.data.cam_xmat[cam].reshape(3, 3), atol=2e-4)
    for side in ("left", "right"):
        site = world.model.site(f"{side}_grasp_site").id
        assert np.allclose(frames.grasp_sites[side].pos, world.data.site_xpos[site], atol=2e-4)
        wrist = world.model.camera(f"{side}_wrist_camera").id
        assert np.allclose(frames.wrist_cameras[side].pos, world.data.cam_xpos[wrist], atol=2e-4)


def test_intrinsics_match_the_world(world: SimWorld) -> None:
    kin = RobotKinematics(world.controller.proprioception_names())
    assert np.allclose(pinhole_intrinsics(kin.head_fovy_deg, 240, 320), world.intrinsics("head"))
