"""Domain randomisation drawn from a scenario's ranges at every reset.

Everything is changed in place on the compiled model and data (colours, light
intensities, camera poses, object and robot poses), so a reset costs microseconds, not a
recompile. Nominal values are captured once, so draws never drift.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from scenarios.builder import SceneIndex
from scenarios.catalog import COLOURS
from scenarios.robot import CAMERAS, set_base_pose
from scenarios.schema import FLOOR_ID, Scenario, SceneObject, object_world_xy, support_half_extent, support_top

PLACEMENT_TRIES = 40


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(4)
    mujoco.mju_mulQuat(out, a, b)
    return out


def _small_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    quat = np.array([1.0, 0.0, 0.0, 0.0])
    if max_deg <= 0:
        return quat
    axis_angles = np.deg2rad(rng.uniform(-max_deg, max_deg, 3))
    mujoco.mju_axisAngle2Quat(quat, axis_angles / (np.linalg.norm(axis_angles) or 1.0), float(np.linalg.norm(axis_angles)))
    return quat


class Randomiser:
    """Applies one draw of a scenario's randomisation to a model and its data."""

    def __init__(self, model: mujoco.MjModel, scenario: Scenario, index: SceneIndex) -> None:
        self.model, self.scenario, self.index = model, scenario, index
        self._rgba = model.geom_rgba.copy()
        self._light_diffuse = model.light_diffuse.copy()
        self._cam_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, c) for c in CAMERAS]
        self._cam_pos = model.cam_pos.copy()
        self._cam_quat = model.cam_quat.copy()
        # Geoms painted in a named colour, grouped by body so one body gets one shade.
        by_rgb = {tuple(np.round(c.rgb, 4)): name for name, c in COLOURS.items()}
        self._painted: dict[tuple[int, str], list[int]] = {}
        for g in range(model.ngeom):
            name = by_rgb.get(tuple(np.round(self._rgba[g, :3].astype(float), 4)))
            if name is not None:
                self._painted.setdefault((int(model.geom_bodyid[g]), name), []).append(g)
        self._object_qpos = {
            o.id: model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"{o.id}/joint")]
            for o in scenario.objects
        }

    def apply(self, data: mujoco.MjData, rng: np.random.Generator | None) -> None:
        """Draw a variation (or restore the file's nominal scene when `rng` is None)."""
        r = self.scenario.randomisation
        m = self.model
        m.geom_rgba[:] = self._rgba
        m.light_diffuse[:] = self._light_diffuse
        m.cam_pos[:] = self._cam_pos
        m.cam_quat[:] = self._cam_quat
        if rng is not None:
            for (_, colour), geoms in self._painted.items():
                m.geom_rgba[geoms, :3] = COLOURS[colour].shade(rng, r.colour_shade)
            lo, hi = r.light_intensity
            m.light_diffuse[:] = self._light_diffuse * rng.uniform(lo, hi, (m.nlight, 1))
            for cam in self._cam_ids:
                m.cam_pos[cam] = self._cam_pos[cam] + rng.uniform(-r.camera.pos, r.camera.pos, 3)
                m.cam_quat[cam] = _quat_mul(self._cam_quat[cam], _small_rotation(rng, r.camera.rot_deg))
        self._place_objects(data, rng)
        start = self.scenario.robot.start
        dx, dy, dyaw = (0.0, 0.0, 0.0) if rng is None else (
            rng.uniform(-r.robot_xy, r.robot_xy), rng.uniform(-r.robot_xy, r.robot_xy),
            math.radians(rng.uniform(-r.robot_yaw_deg, r.robot_yaw_deg)),
        )
        set_base_pose(m, data, start.x + dx, start.y + dy, start.yaw + dyaw)

    def _place_objects(self, data: mujoco.MjData, rng: np.random.Generator | None) -> None:
        r = self.scenario.randomisation
        furniture = self.scenario.furniture_by_id()
        placed: list[tuple[SceneObject, tuple[float, float]]] = []
        for obj in self.scenario.objects:
            at = obj.at
            if rng is not None and r.object_xy > 0:
                for _ in range(PLACEMENT_TRIES):
                    cand = (obj.at[0] + rng.uniform(-r.object_xy, r.object_xy), obj.at[1] + rng.uniform(-r.object_xy, r.object_xy))
                    if self._fits(obj, cand, placed, furniture):
                        at = cand
                        break
            xy = object_world_xy(furniture, obj, at)
            placed.append((obj, xy))
            yaw = obj.yaw + (0.0 if rng is None else math.radians(rng.uniform(-r.object_yaw_deg, r.object_yaw_deg)))
            if obj.on != FLOOR_ID:
                yaw += furniture[obj.on].yaw
            adr = self._object_qpos[obj.id]
            z = support_top(furniture, obj) + obj.height / 2 + 0.001
            data.qpos[adr : adr + 3] = (xy[0], xy[1], z)
            data.qpos[adr + 3 : adr + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))

    @staticmethod
    def _fits(obj: SceneObject, at: tuple[float, float], placed: list, furniture: dict) -> bool:
        if obj.on != FLOOR_ID:
            hx, hy = support_half_extent(furniture[obj.on])
            rad = obj.footprint_radius + 0.01
            if abs(at[0]) + rad > hx or abs(at[1]) + rad > hy:
                return False
        xy = object_world_xy(furniture, obj, at)
        for other, oxy in placed:
            if other.on == obj.on and other.level == obj.level:
                if math.hypot(xy[0] - oxy[0], xy[1] - oxy[1]) < obj.footprint_radius + other.footprint_radius + 0.01:
                    return False
        return True
