"""The scripted reach demo: the main job until end-to-end runs exist.

It renders a scenario and moves a hand, top-down, above every object on the table in front
of the robot, then back home. Targets come from privileged state: this is a scripted
demonstration of the world and its controllers, not a decision-making run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from agent.preview import labelled, side_by_side
from scenarios.controllers import ArmMode
from scenarios.robot import FOREARM_LENGTH, HAND_LENGTH, SHOULDER_HEIGHT, SHOULDER_OFFSET, SIDES, UPPER_ARM_LENGTH
from scenarios.schema import Scenario
from scenarios.world import SimWorld, WorldConfig

HOVER = 0.12  # m above an object's top
TOLERANCE = 0.01  # m
REACH_SECONDS = 4.0
SETTLE_SECONDS = 0.5
# Hand orientations to try, as rotation vectors in the base frame: straight down, then
# pitched 45 degrees (which reaches further across a table).
APPROACHES = (("top", np.array([0.0, math.pi / 2, 0.0])), ("pitched", np.array([0.0, math.pi / 4, 0.0])))
WRIST_REACH = 0.97 * (UPPER_ARM_LENGTH + FOREARM_LENGTH)


@dataclass(frozen=True)
class Reach:
    label: str
    side: str
    target: tuple[float, float, float]
    error_mm: float
    seconds: float | None  # first time within TOLERANCE, None if never


@dataclass(frozen=True)
class DemoResult:
    reaches: list[Reach]
    scene_png: Path
    reach_png: Path

    @property
    def ok(self) -> bool:
        return bool(self.reaches) and all(r.error_mm <= TOLERANCE * 1000 for r in self.reaches)


def _orientation(side: str, point: np.ndarray) -> np.ndarray | None:
    """A hand orientation from which `point` is within the arm's reach, or None."""
    shoulder = np.array([SHOULDER_OFFSET[0], SHOULDER_OFFSET[1] * (1 if side == "left" else -1), SHOULDER_HEIGHT])
    for _, rotvec in APPROACHES:
        pitch = rotvec[1]
        approach = np.array([math.cos(pitch), 0.0, -math.sin(pitch)])
        wrist = point - approach * HAND_LENGTH
        if np.linalg.norm(wrist - shoulder) <= WRIST_REACH:
            return rotvec
    return None


def _targets(world: SimWorld) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(label, arm, base-frame position, rotation vector) above each reachable object, nearest first."""
    truth = world.privileged_state()
    x, y, yaw = truth.robot.base
    c, s = math.cos(yaw), math.sin(yaw)
    targets = []
    objects = world.scenario.object_by_id()
    for oid, obj in truth.objects.items():
        dx, dy = obj.pos[0] - x, obj.pos[1] - y
        bx, by = c * dx + s * dy, -s * dx + c * dy
        top = obj.pos[2] + objects[oid].height / 2
        side = "left" if by > 0 else "right"
        point = np.array([bx, by, top + HOVER])
        rotvec = _orientation(side, point)
        if rotvec is not None:
            targets.append((oid, side, point, rotvec))
    targets.sort(key=lambda t: float(np.hypot(t[2][0], t[2][1])))
    return targets


def run_reach_demo(scenario: Scenario, out: Path, seed: int = 0, console: Console | None = None) -> DemoResult:
    """Render the scenario, reach above each object in front of the robot, save pictures."""
    world = SimWorld(scenario, WorldConfig(arm_mode=ArmMode.EE_POSE, cameras=("head",), head_depth=False))
    out.mkdir(parents=True, exist_ok=True)
    try:
        world.reset(seed=seed)
        scene_png = out / f"{scenario.name}_seed{seed}.png"
        Image.fromarray(side_by_side(world, (480, 640), f"{scenario.name} seed {seed}")).save(scene_png)
        home = world.hold_action()
        s = world.controller.layout.slices
        plan = _targets(world) + [("home", side, home[s[f"{side}.pos"]], home[s[f"{side}.rot"]]) for side in SIDES]
        steps_per_target = round((REACH_SECONDS + SETTLE_SECONDS) * world.config.control_hz)
        reaches: list[Reach] = []
        frames: list[np.ndarray] = []
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            bar = progress.add_task("scripted reach", total=steps_per_target * len(plan))
            for label, side, target, rotvec in plan:
                progress.update(bar, description=f"reach {label} with the {side} hand")
                action = world.hold_action()
                action[s[f"{side}.pos"]] = target
                action[s[f"{side}.rot"]] = rotvec
                first = None
                for k in range(steps_per_target):
                    world.step(action)
                    progress.advance(bar)
                    error = float(np.linalg.norm(world.controller.ee_pose(side)[0] - target))
                    if first is None and error <= TOLERANCE:
                        first = (k + 1) / world.config.control_hz
                reaches.append(Reach(label, side, tuple(float(v) for v in target), error * 1000, first))
                if label != "home":
                    frames.append(labelled(world.render_camera("head_camera", (240, 320)), f"above {label}"))
        reach_png = out / f"{scenario.name}_reach.png"
        if frames:
            Image.fromarray(np.concatenate(frames, axis=1)).save(reach_png)
        return DemoResult(reaches, scene_png, reach_png)
    finally:
        world.close()
