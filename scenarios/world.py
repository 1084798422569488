"""The simulated world: a scenario's room with the humanoid in it, as a gymnasium Env.

Observations use LeRobot's keys (`observation.images.<camera>`, `observation.depth.head`,
`observation.state`, `task`); actions are the controller's documented vector. `info`
carries only time and step counts: ground truth is available solely through
`privileged_state()`, which the decision path must never call, so a real robot can stand
in behind the same `reset`/`step` interface.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import mujoco
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scenarios.builder import compile_model
from scenarios.controllers import ArmMode, RobotController
from scenarios.ground_truth import GroundTruth, PrivilegedState
from scenarios.loading import load_scenario
from scenarios.predicates import Predicate
from scenarios.randomisation import Randomiser
from scenarios.rendering import CameraRenderer, camera_intrinsics
from scenarios.robot import set_home_posture
from scenarios.schema import Scenario

CameraName = Literal["head", "left_wrist", "right_wrist"]
CAMERA_MJCF = {"head": "head_camera", "left_wrist": "left_wrist_camera", "right_wrist": "right_wrist_camera"}
SETTLE_SECONDS = 0.3
VISIBLE_PIXELS_AT_240x320 = 30


class WorldConfig(BaseModel):
    """How the world is stepped and observed (not what is in it: that is the scenario)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    control_hz: float = Field(20.0, ge=1.0, le=500.0)
    arm_mode: ArmMode = ArmMode.EE_POSE
    cameras: tuple[CameraName, ...] = ("head", "left_wrist", "right_wrist")
    image_size: tuple[int, int] = Field((240, 320), description="(height, width) of every camera image")
    head_depth: bool = True
    randomise: bool = True


class SimWorld(gym.Env):
    """A MuJoCo scenario behind gymnasium's Env API.

    `reset(seed=..., options={"task": "pick up the red cup"})` draws a randomised variant of
    the scenario; `step(action)` runs one control period (1/control_hz s) of physics.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, scenario: Scenario | str | Path, config: WorldConfig | None = None, render_mode: str | None = "rgb_array") -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.config = config or WorldConfig()
        self.render_mode = render_mode
        self.model, self.index = compile_model(self.scenario)
        self.data = mujoco.MjData(self.model)
        self.controller = RobotController(self.model, self.data, mode=self.config.arm_mode, control_hz=self.config.control_hz)
        self._truth = GroundTruth(self.model, self.scenario, self.index)
        self._randomiser = Randomiser(self.model, self.scenario, self.index)
        self._renderers: dict[tuple[int, int], CameraRenderer] = {}
        self.task = ""
        self.steps = 0
        self._render_cameras = True
        self.metadata = {**self.metadata, "render_fps": self.config.control_hz}
        self.action_space = self.controller.action_space
        self.observation_space = self._observation_space()

    # -- gymnasium API -----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        mujoco.mj_resetData(self.model, self.data)
        self._randomiser.apply(self.data, self.np_random if self.config.randomise else None)
        set_home_posture(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)
        self.controller.reset()
        hold = self.controller.hold_action()
        for _ in range(max(1, round(SETTLE_SECONDS * self.config.control_hz))):
            self.controller.step(hold)
        self.data.time = 0.0
        self.controller.reset()
        self.task = str(options.get("task", ""))
        self.steps = 0
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        self.controller.step(np.asarray(action, dtype=np.float64))
        self.steps += 1
        return self._observation(), 0.0, False, False, self._info()

    def render(self) -> np.ndarray:
        """The overview camera's picture of the room (render_mode 'rgb_array')."""
        h, w = self.config.image_size
        return self.render_camera("overview", (h * 2, w * 2))

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    # -- extras --------------------------------------------------------------------------
    @property
    def time(self) -> float:
        """Simulated seconds since reset: the clock that timeouts must use."""
        return float(self.data.time)

    @property
    def control_period(self) -> float:
        return 1.0 / self.config.control_hz

    @contextmanager
    def cameras_off(self) -> Iterator[None]:
        """Step without rendering (observations carry only state and task), e.g. for set-up
        steps nobody records; rendering is most of a step's cost."""
        saved, self._render_cameras = self._render_cameras, False
        try:
            yield
        finally:
            self._render_cameras = saved

    def hold_action(self) -> np.ndarray:
        """The action that keeps the robot where it is."""
        return self.controller.hold_action()

    def renderer(self, size: tuple[int, int]) -> CameraRenderer:
        if size not in self._renderers:
            self._renderers[size] = CameraRenderer(self.model, *size)
        return self._renderers[size]

    def render_camera(self, camera: str, size: tuple[int, int] | None = None, kind: Literal["rgb", "depth", "segmentation"] = "rgb") -> np.ndarray:
        """Render any MJCF camera (`overview`, `head_camera`, ...) or observation camera name."""
        r = self.renderer(size or self.config.image_size)
        cam = CAMERA_MJCF.get(camera, camera)
        return getattr(r, kind)(self.data, cam)

    def intrinsics(self, camera: CameraName = "head") -> np.ndarray:
        return camera_intrinsics(self.model, CAMERA_MJCF[camera], *self.config.image_size)

    def privileged_state(self, visibility: bool = False) -> PrivilegedState:
        """Ground truth. For tests, the scripted expert and measuring perception only."""
        visible = None
        if visibility:
            # 30 pixels at 240x320, scaled with the image, so "visible" means the same at any size.
            h, w = self.config.image_size
            min_pixels = max(3, round(VISIBLE_PIXELS_AT_240x320 * h * w / (240 * 320)))
            visible = self._truth.visible_objects(self.render_camera("head", kind="segmentation"), min_pixels)
        return self._truth.state(self.data, visible)

    def holds(self, predicate: Predicate | str) -> bool:
        """Ground-truth value of a predicate (privileged; see `privileged_state`)."""
        pred = Predicate.parse(predicate) if isinstance(predicate, str) else predicate
        return self.privileged_state(visibility=pred.name == "visible").holds(pred)

    # -- internals -----------------------------------------------------------------------
    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {"observation.state": self.controller.proprioception()}
        if not self._render_cameras or not self.config.cameras:
            obs["task"] = self.task
            return obs
        renderer = self.renderer(self.config.image_size)
        for cam in self.config.cameras:
            obs[f"observation.images.{cam}"] = renderer.rgb(self.data, CAMERA_MJCF[cam])
        if self.config.head_depth and "head" in self.config.cameras:
            obs["observation.depth.head"] = renderer.depth(self.data, CAMERA_MJCF["head"])
        obs["task"] = self.task
        return obs

    def _info(self) -> dict[str, Any]:
        return {"time": self.time, "step": self.steps}

    def _observation_space(self) -> gym.spaces.Dict:
        h, w = self.config.image_size
        n_state = len(self.controller.proprioception_names())
        spaces: dict[str, gym.Space] = {
            "observation.state": gym.spaces.Box(-np.inf, np.inf, (n_state,), np.float32),
        }
        for cam in self.config.cameras:
            spaces[f"observation.images.{cam}"] = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        if self.config.head_depth and "head" in self.config.cameras:
            spaces["observation.depth.head"] = gym.spaces.Box(0.0, np.inf, (h, w), np.float32)
        spaces["task"] = gym.spaces.Text(min_length=0, max_length=1000, charset=string.printable)
        return gym.spaces.Dict(spaces)
