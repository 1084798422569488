"""Offscreen camera rendering: colour, depth and segmentation from named MJCF cameras.

One `mujoco.Renderer` is kept per image size, because creating a GL context costs far
more than a frame. Depth comes back in metres along the camera axis (MuJoCo converts the
z-buffer), which is what an RGB-D sensor reports.
"""

from __future__ import annotations

import mujoco
import numpy as np


class CameraRenderer:
    """Renders one model's cameras at a fixed image size."""

    def __init__(self, model: mujoco.MjModel, height: int, width: int) -> None:
        self.model = model
        self.height, self.width = height, width
        try:
            self._renderer = mujoco.Renderer(model, height, width)
        except Exception as exc:  # mujoco raises FatalError or a GL error, depending on backend
            raise RuntimeError(
                f"cannot create an offscreen renderer ({exc}). Offscreen rendering needs "
                "MUJOCO_GL=egl (or osmesa) set before mujoco is first imported, and Mesa's "
                "libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 (scripts/setup.sh installs them)"
            ) from exc
        self._mode = "rgb"

    def _set_mode(self, mode: str) -> None:
        if mode == self._mode:
            return
        self._renderer.disable_depth_rendering()
        self._renderer.disable_segmentation_rendering()
        if mode == "depth":
            self._renderer.enable_depth_rendering()
        elif mode == "segmentation":
            self._renderer.enable_segmentation_rendering()
        self._mode = mode

    def _render(self, data: mujoco.MjData, camera: str | int, mode: str, scene_option: mujoco.MjvOption | None) -> np.ndarray:
        self._set_mode(mode)
        self._renderer.update_scene(data, camera=camera, scene_option=scene_option)
        return self._renderer.render()

    def rgb(self, data: mujoco.MjData, camera: str | int, scene_option: mujoco.MjvOption | None = None) -> np.ndarray:
        """uint8 (H, W, 3)."""
        return self._render(data, camera, "rgb", scene_option).copy()

    def depth(self, data: mujoco.MjData, camera: str | int) -> np.ndarray:
        """float32 (H, W), metres from the camera plane."""
        return self._render(data, camera, "depth", None).astype(np.float32, copy=True)

    def segmentation(self, data: mujoco.MjData, camera: str | int) -> np.ndarray:
        """int32 (H, W) geom id per pixel, -1 where no geom is seen."""
        seg = self._render(data, camera, "segmentation", None)
        ids = seg[..., 0].astype(np.int32, copy=True)
        ids[seg[..., 1] != int(mujoco.mjtObj.mjOBJ_GEOM)] = -1
        return ids

    def close(self) -> None:
        self._renderer.close()


def camera_intrinsics(model: mujoco.MjModel, camera: str, height: int, width: int) -> np.ndarray:
    """3x3 pinhole intrinsics of a MuJoCo camera (square pixels, fovy is vertical)."""
    cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    fovy = np.deg2rad(model.cam_fovy[cam_id])
    f = 0.5 * height / np.tan(fovy / 2)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
