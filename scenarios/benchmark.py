"""How fast the world runs on this machine: physics, rendering, and the control loop."""

from __future__ import annotations

import time
from dataclasses import dataclass

import mujoco

from scenarios.schema import Scenario
from scenarios.world import SimWorld, WorldConfig


@dataclass(frozen=True)
class WorldBenchmark:
    physics_steps_per_s: float
    realtime_factor: float
    rgb_ms: dict[str, float]  # camera -> mean milliseconds per frame
    depth_ms: float
    control_steps_per_s: float  # 20 Hz control, head RGB-D + right wrist RGB every step
    control_realtime_factor: float
    image_size: tuple[int, int]
    timestep: float

    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ("physics steps per second (2 ms step, no rendering)", f"{self.physics_steps_per_s:,.0f}"),
            ("physics real-time factor", f"{self.realtime_factor:.1f}x"),
        ]
        rows += [(f"ms per RGB frame, {cam}", f"{ms:.2f}") for cam, ms in self.rgb_ms.items()]
        rows.append(("ms per depth frame, head", f"{self.depth_ms:.2f}"))
        rows.append(("control steps per second (20 Hz, head RGB-D + right wrist RGB)", f"{self.control_steps_per_s:.1f}"))
        rows.append(("control loop real-time factor", f"{self.control_realtime_factor:.2f}x"))
        return rows


def benchmark_world(scenario: Scenario, seconds: float = 5.0, image_size: tuple[int, int] = (240, 320), seed: int = 0) -> WorldBenchmark:
    """Measure, in one process and one after the other, the three costs of a world step."""
    config = WorldConfig(cameras=("head", "right_wrist"), image_size=image_size, head_depth=True)
    world = SimWorld(scenario, config)
    try:
        world.reset(seed=seed)
        m, d = world.model, world.data
        n = max(1, round(seconds / m.opt.timestep))
        t0 = time.perf_counter()
        for _ in range(n):
            mujoco.mj_step(m, d)
        physics = n / (time.perf_counter() - t0)

        world.reset(seed=seed)
        renderer = world.renderer(image_size)
        frames = 30
        rgb_ms: dict[str, float] = {}
        for cam in ("head_camera", "right_wrist_camera", "overview"):
            renderer.rgb(d, cam)  # warm-up
            t0 = time.perf_counter()
            for _ in range(frames):
                renderer.rgb(d, cam)
            rgb_ms[cam] = (time.perf_counter() - t0) / frames * 1000
        renderer.depth(d, "head_camera")
        t0 = time.perf_counter()
        for _ in range(frames):
            renderer.depth(d, "head_camera")
        depth_ms = (time.perf_counter() - t0) / frames * 1000

        world.reset(seed=seed)
        hold = world.hold_action()
        steps = max(1, round(seconds * config.control_hz))
        t0 = time.perf_counter()
        for _ in range(steps):
            world.step(hold)
        control = steps / (time.perf_counter() - t0)
    finally:
        world.close()
    return WorldBenchmark(
        physics_steps_per_s=physics,
        realtime_factor=physics * m.opt.timestep,
        rgb_ms=rgb_ms,
        depth_ms=depth_ms,
        control_steps_per_s=control,
        control_realtime_factor=control / config.control_hz,
        image_size=image_size,
        timestep=float(m.opt.timestep),
    )


__all__ = ["WorldBenchmark", "benchmark_world"]
