"""Measuring perception against privileged ground truth, over randomised frames.

Each episode resets a scenario with a new seed and walks through views and set-ups that
exercise every predicate: the robot's home view, the head turned to other furniture, an
object put into a bin, an object on a person's palm, an object grasped (physically: the
gripper closes on it) and shown to the head, the robot driven up to the person. The
harness moves things by writing the simulator's state (that is test set-up, not
perception); perception only ever gets observations. Ground truth is read after each
frame to score the belief.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from perception.perception import Perception
from scenarios.predicates import Predicate
from scenarios.schema import FLOOR_ID, ROBOT_ID

PREDICATES = ("visible", "holding", "on", "in", "near", "given")
HEAD_HEIGHT = 1.49


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")


@dataclass
class Report:
    """Localisation errors and predicate counts of one scenario or condition."""

    name: str
    frames: int = 0
    errors: list[float] = field(default_factory=list)  # metres, visible and detected objects
    visible_total: int = 0
    visible_detected: int = 0
    identity_swaps: int = 0
    predicates: dict[str, Counts] = field(default_factory=lambda: {p: Counts() for p in PREDICATES})
    latencies_ms: list[float] = field(default_factory=list)
    mistakes: list[str] = field(default_factory=list)

    def error_stats(self) -> tuple[float, float]:
        if not self.errors:
            return float("nan"), float("nan")
        e = np.asarray(self.errors)
        return float(np.median(e)), float(np.percentile(e, 95))

    def merge(self, other: Report) -> None:
        self.frames += other.frames
        self.errors += other.errors
        self.visible_total += other.visible_total
        self.visible_detected += other.visible_detected
        self.identity_swaps += other.identity_swaps
        self.latencies_ms += other.latencies_ms
        self.mistakes += other.mistakes
        for k, c in other.predicates.items():
            mine = self.predicates[k]
            mine.tp, mine.fp, mine.fn, mine.tn = mine.tp + c.tp, mine.fp + c.fp, mine.fn + c.fn, mine.tn + c.tn


def atoms(world) -> list[str]:
    """Every grounded positive predicate of a scenario that perception is asked about."""
    sc = world.scenario
    surfaces = [f.id for f in sc.furniture if f.surface_heights() and f.kind != "bin"] + [FLOOR_ID]
    bins = [f.id for f in sc.furniture if f.kind == "bin"]
    out: list[str] = []
    for o in sc.objects:
        out += [f"visible({o.id})", f"holding({o.id})"]
        out += [f"on({o.id}, {s})" for s in surfaces]
        out += [f"in({o.id}, {b})" for b in bins]
        out += [f"given({o.id}, {p.id})" for p in sc.people]
    out += [f"near({ROBOT_ID}, {e})" for e in [f.id for f in sc.furniture] + [o.id for o in sc.objects] + [p.id for p in sc.people]]
    return out


def score(report: Report, world, perception: Perception, belief, all_atoms: list[str]) -> None:
    """Compare one belief with the ground truth of the current frame."""
    truth = world.privileged_state(visibility=True)
    report.frames += 1
    for oid, o in truth.objects.items():
        if oid not in truth.visible:
            continue
        report.visible_total += 1
        b = belief.objects.get(oid)
        if b is not None and b.visible:
            report.visible_detected += 1
            err = float(np.linalg.norm(np.asarray(b.position) - np.asarray(o.pos)))
            report.errors.append(err)
            if err > 0.05:
                report.identity_swaps += 1
                report.mistakes.append(f"t={truth.time:.2f} {oid} off by {err * 100:.1f} cm")
    for atom in all_atoms:
        pred = Predicate.parse(atom)
        t = truth.holds(pred)
        p, _ = belief.holds(pred)
        c = report.predicates[pred.name]
        if t and p:
            c.tp += 1
        elif p:
            c.fp += 1
            report.mistakes.append(f"t={truth.time:.2f} false positive {atom} (p={belief.predicates.get(atom)})")
        elif t:
            c.fn += 1
            report.mistakes.append(f"t={truth.time:.2f} missed {atom} (p={belief.predicates.get(atom)})")
        else:
            c.tn += 1


# -- moving the simulated world (set-up, not perception) -----------------------------------------
def _qadr(world, joint: str) -> int:
    return int(world.model.joint(joint).qposadr[0])


def _dadr(world, joint: str) -> int:
    return int(world.model.joint(joint).dofadr[0])


def set_head(world, pan: float, tilt: float) -> None:
    """Point the head (joint state and servo targets), at rest."""
    for j, v in (("head_pan", pan), ("head_tilt", tilt)):
        world.data.qpos[_qadr(world, j)] = float(np.clip(v, -1.45, 1.2))
        world.data.qvel[_dadr(world, j)] = 0.0
    world.controller.reset()


def look_at(world, target: np.ndarray) -> None:
    """Point the head at a world point from the robot's current base pose."""
    x, y, yaw = world.controller.base_pose()
    dx, dy = target[0] - x, target[1] - y
    pan = math.atan2(dy, dx) - yaw
    pan = (pan + math.pi) % (2 * math.pi) - math.pi
    tilt = math.atan2(HEAD_HEIGHT - target[2], math.hypot(dx, dy))
    set_head(world, pan, tilt)


def place_object(world, oid: str, pos: np.ndarray, yaw: float = 0.0) -> None:
    """Teleport an object (free joint) to a pose, at rest."""
    adr = _qadr(world, f"{oid}/joint")
    world.data.qpos[adr : adr + 3] = pos
    world.data.qpos[adr + 3 : adr + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
    dadr = _dadr(world, f"{oid}/joint")
    world.data.qvel[dadr : dadr + 6] = 0.0


def set_base(world, x: float, y: float, yaw: float) -> None:
    from scenarios.robot import set_base_pose

    set_base_pose(world.model, world.data, x, y, yaw)
    world.controller.reset()


def hold(world, steps: int = 1, gripper: dict[str, float] | None = None, ee: dict[str, np.ndarray] | None = None):
    """Step with everything held, optionally closing grippers or moving a hand (base frame)."""
    obs = None
    for _ in range(steps):
        a = world.hold_action()
        s = world.controller.layout.slices
        for side, g in (gripper or {}).items():
            a[s[f"{side}.gripper"]] = g
        for side, pos in (ee or {}).items():
            a[s[f"{side}.pos"]] = pos
        obs, *_ = world.step(a)
    return obs


def grasp(world, oid: str, side: str, rng: np.random.Generator) -> None:
    """Put an object between one hand's fingers and close them on it (a physical grasp)."""
    cat = world.scenario.object_by_id()[oid].category
    site = world.privileged_state().robot.grasp_sites[side]
    place_object(world, oid, np.asarray(site) + np.array([0.0, 0.0, -0.01 if cat == "bottle" else 0.0]), rng.uniform(-0.3, 0.3))
    hold(world, 8, gripper={side: 1.0})
    target = np.array([0.45, 0.12 if side == "left" else -0.12, 1.0])
    hold(world, 12, gripper={side: 1.0}, ee={side: target})


@dataclass
class EvalConfig:
    frames: int = 200
    seed: int = 0
    occlusion_frames: int = 20
    lighting_frames: int = 20


SCAN = ((0.0, 0.75), (0.7, 0.55), (1.3, 0.45), (1.3, 0.25), (-0.7, 0.55), (-1.3, 0.45), (-1.3, 0.25))


def scan(world, perception: Perception) -> None:
    """Look around once (not scored), as a robot does on arrival, so every object has been seen."""
    for pan, tilt in SCAN:
        set_head(world, pan, tilt)
        obs = hold(world, 1)
        perception.update(obs, time=world.time)


def _frame(report: Report, world, perception: Perception, obs, all_atoms: list[str]) -> None:
    t0 = time.perf_counter()
    belief = perception.update(obs, time=world.time)
    report.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
    score(report, world, perception, belief, all_atoms)


def evaluate_scenario(name: str, frames: int = 200, seed: int = 0,
                      progress: Callable[[int], None] | None = None) -> Report:
    """Accuracy over `frames` randomised frames of a scenario (10 per episode)."""
    from scenarios.world import SimWorld

    world = SimWorld(name)
    perception = Perception.for_world(world)
    all_atoms = atoms(world)
    report = Report(name)
    rng = np.random.default_rng(seed)
    sc = world.scenario
    bins = [f for f in sc.furniture if f.kind == "bin"]
    episode = 0
    while report.frames < frames:
        obs, _ = world.reset(seed=seed * 10007 + episode)
        episode += 1
        perception.reset()
        scan(world, perception)
        objects = [o.id for o in sc.objects]
        plan = ["home", "left", "right", "bin", "palm", "grasp", "grasp_hold", "near_person", "far_left", "home"]
        for step in plan:
            if report.frames >= frames:
                break
            oid = objects[int(rng.integers(len(objects)))]
            if step == "home":
                set_head(world, rng.uniform(-0.15, 0.15), rng.uniform(0.6, 0.85))
            elif step in ("left", "right", "far_left"):
                pan = {"left": 0.6, "right": -0.6, "far_left": 1.2}[step] + rng.uniform(-0.2, 0.2)
                set_head(world, pan, rng.uniform(0.35, 0.7))
            elif step == "bin":
                if not bins:
                    set_head(world, rng.uniform(-0.9, 0.9), rng.uniform(0.4, 0.8))
                else:
                    b = bins[0]
                    cat = sc.object_by_id()[oid]
                    local = rng.uniform(-0.08, 0.08, 2)
                    xy = b.to_world(tuple(local))
                    place_object(world, oid, np.array([xy[0], xy[1], 0.012 + cat.height / 2 + 0.002]), rng.uniform(-3, 3))
                    hold(world, 4)
                    look_at(world, np.array([*b.pos, 0.2]))
            elif step == "palm":
                if not sc.people:
                    set_head(world, rng.uniform(-0.9, 0.9), rng.uniform(0.4, 0.8))
                else:
                    hand = np.asarray(world.privileged_state().people[sc.people[0].id].hand)
                    cat = sc.object_by_id()[oid]
                    place_object(world, oid, hand + np.array([0, 0, cat.height / 2 + 0.003]), rng.uniform(-3, 3))
                    hold(world, 4)
                    look_at(world, hand)
            elif step == "grasp":
                side = "left" if rng.random() < 0.5 else "right"
                grasp(world, oid, side, rng)
                set_head(world, 0.0, 0.75)
            elif step == "grasp_hold":
                set_head(world, rng.uniform(-0.2, 0.2), rng.uniform(0.6, 0.8))
            elif step == "near_person":
                if sc.people:
                    p = sc.people[0]
                    hand = np.asarray(p.hand_position())
                    d = rng.uniform(0.55, 0.95)
                    ang = math.atan2(-hand[1] + p.pos[1], -hand[0] + p.pos[0]) + rng.uniform(-0.5, 0.5)
                    x, y = hand[0] + d * math.cos(ang), hand[1] + d * math.sin(ang)
                    half = np.asarray(sc.room.size) / 2 - 0.35
                    if abs(x) < half[0] and abs(y) < half[1]:
                        set_base(world, x, y, ang + math.pi)
                    look_at(world, hand)
            obs = hold(world, 1, gripper=None)
            _frame(report, world, perception, obs, all_atoms)
            if progress:
                progress(1)
    world.close()
    return report


def evaluate_robustness(name: str, frames: int, condition: str, seed: int = 0,
                        progress: Callable[[int], None] | None = None) -> Report:
    """Accuracy under one condition: 'occlusion' (an arm over the target), 'dim' / 'bright' lights."""
    from scenarios.world import SimWorld

    world = SimWorld(name)
    perception = Perception.for_world(world)
    all_atoms = atoms(world)
    report = Report(f"{name}/{condition}")
    rng = np.random.default_rng(seed + 99)
    sc = world.scenario
    episode = 0
    while report.frames < frames:
        world.reset(seed=seed * 7919 + 5000 + episode)
        episode += 1
        perception.reset()
        if condition in ("dim", "bright"):
            lo, hi = sc.randomisation.light_intensity
            scale = lo if condition == "dim" else hi
            for i, light in enumerate(sc.lights):
                world.model.light_diffuse[i] = light.intensity * scale
        obs = hold(world, 1)
        perception.update(obs, time=world.time)  # one clear look first: tracking is part of it
        if condition == "occlusion":
            truth = world.privileged_state(visibility=True)
            visible = [o for o in truth.visible]
            if not visible:
                continue
            oid = visible[int(rng.integers(len(visible)))]
            pos = np.asarray(truth.objects[oid].pos)
            x, y, yaw = world.controller.base_pose()
            c, s = math.cos(yaw), math.sin(yaw)
            local = np.array([c * (pos[0] - x) + s * (pos[1] - y), -s * (pos[0] - x) + c * (pos[1] - y), pos[2] + 0.14])
            side = "left" if local[1] > 0 else "right"
            for _ in range(3):
                obs = hold(world, 6, ee={side: local})
                perception.update(obs, time=world.time)
        for _ in range(2 if condition == "occlusion" else 3):
            if report.frames >= frames:
                break
            if condition != "occlusion":
                set_head(world, rng.uniform(-0.3, 0.3), rng.uniform(0.55, 0.85))
            obs = hold(world, 1, ee=None)
            _frame(report, world, perception, obs, all_atoms)
            if progress:
                progress(1)
    world.close()
    return report
