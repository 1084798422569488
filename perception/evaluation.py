"""Measuring perception against privileged ground truth, over randomised frames.

Each episode resets a scenario with a new seed and plays the situations a robot running a
task is in, feeding perception every control tick as the agent does:

1. arrival: the head looks around the room once (fed, not scored);
2. looking at the objects' table, then at another piece of furniture;
3. taking an object into the hand: the arm comes up into view, the object is put between
   the open pads and the gripper closes on it physically (a real friction grasp), then the
   hand is looked at and, later, the head looks elsewhere while the hand holds it;
4. delivering it, as the place_in and handover skills do: the base drives up (odometry),
   the hand moves over the bin's opening or lowers onto the person's palm, opens, retracts,
   and the head looks at where the object went;
5. someone moves an object while the robot looks away, then the robot looks back;
6. standing somewhere else in the room, looking at a person or a piece of furniture.

The harness moves things by writing the simulator's state (test set-up, not perception);
perception only ever gets observations. Ground truth is read after each scored frame.

How each number is computed (see `score`): localisation error is the distance between the
believed and true centre of every object that ground truth says is visible (>= 30 head
pixels) and that perception reports as visible in that frame. A predicate atom is every
grounded predicate of the scenario (`atoms`); belief says true when its probability is
>= 0.5. Atoms about an object the robot has had no chance to observe yet in the episode
(ground truth never showed it in any head frame fed to perception) are counted apart, in
`never_observed`, not in the main precision/recall.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from perception.perception import Perception
from scenarios.predicates import Predicate
from scenarios.schema import FLOOR_ID, ROBOT_FOOTPRINT_RADIUS, ROBOT_ID

PREDICATES = ("visible", "holding", "on", "in", "near", "given")
HEAD_HEIGHT = 1.49
ARM_Y = 0.18  # m: lateral offset of a hand's work point from the base centre


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

    def add(self, other: Counts) -> None:
        self.tp, self.fp, self.fn, self.tn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn


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
    never_observed: dict[str, Counts] = field(default_factory=lambda: {p: Counts() for p in PREDICATES})
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
            self.predicates[k].add(c)
        for k, c in other.never_observed.items():
            self.never_observed[k].add(c)


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


def score(report: Report, world, perception: Perception, belief, all_atoms: list[str],
          observed: set[str] | None = None, truth=None) -> None:
    """Compare one belief with the ground truth of the current frame.

    `observed`: objects ground truth has shown in some head frame fed to perception this
    episode; atoms about other objects go to `report.never_observed` (None: all count).
    """
    truth = truth or world.privileged_state(visibility=True)
    objects = set(truth.objects)
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
        about = [a for a in pred.args if a in objects]
        unseen = observed is not None and pred.name != "visible" and any(a not in observed for a in about)
        c = (report.never_observed if unseen else report.predicates)[pred.name]
        tag = " (never observed)" if unseen else ""
        if t and p:
            c.tp += 1
        elif p:
            c.fp += 1
            report.mistakes.append(f"t={truth.time:.2f} false positive {atom} (p={belief.predicates.get(atom)}){tag}")
        elif t:
            c.fn += 1
            report.mistakes.append(f"t={truth.time:.2f} missed {atom} (p={belief.predicates.get(atom)}){tag}")
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


def to_base(world, xyz: np.ndarray) -> np.ndarray:
    """A world point in the robot's base frame (z unchanged)."""
    x, y, yaw = world.controller.base_pose()
    c, s = math.cos(yaw), math.sin(yaw)
    d = np.asarray(xyz[:2]) - (x, y)
    return np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1], xyz[2]])


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


class Episode:
    """One randomised episode: feeds perception every tick, scores chosen frames."""

    def __init__(self, world, perception: Perception, report: Report, all_atoms: list[str], rng: np.random.Generator,
                 progress: Callable[[int], None] | None, budget: int) -> None:
        self.world, self.perception, self.report, self.atoms, self.rng = world, perception, report, all_atoms, rng
        self.progress, self.budget = progress, budget
        self.observed: set[str] = set()
        self.belief = None

    @property
    def full(self) -> bool:
        return self.report.frames >= self.budget

    def tick(self, n: int = 1, gripper: dict[str, float] | None = None, ee: dict[str, np.ndarray] | None = None,
             look: np.ndarray | None = None, score_last: bool = False) -> None:
        """n control ticks; perception updates on each, as in a run; optionally score the last."""
        for k in range(n):
            if look is not None:
                look_at(self.world, look)
            obs = hold(self.world, 1, gripper=gripper, ee=ee)
            t0 = time.perf_counter()
            self.belief = self.perception.update(obs, time=self.world.time)
            elapsed = (time.perf_counter() - t0) * 1000.0
            truth = self.world.privileged_state(visibility=True)
            self.observed.update(truth.visible or ())
            if score_last and k == n - 1 and not self.full:
                self.report.latencies_ms.append(elapsed)
                score(self.report, self.world, self.perception, self.belief, self.atoms, self.observed, truth)
                if self.progress:
                    self.progress(1)


def _free_base(world, target_xy: np.ndarray, side: str, distance: float, rng: np.random.Generator,
               lateral: bool = True) -> tuple[float, float, float] | None:
    """A base pose with `target_xy` in front of `side`'s hand at `distance`, clear of furniture and walls."""
    static = None
    from perception.static_map import StaticMap

    static = getattr(world, "_eval_static", None)
    if static is None:
        static = world._eval_static = StaticMap.from_scenario(world.scenario)
    sgn = 1.0 if side == "left" else -1.0
    half = np.asarray(world.scenario.room.size) / 2 - 0.4
    people = [np.asarray(p.pos) for p in world.scenario.people]
    toward_centre = math.atan2(-target_xy[1], -target_xy[0])
    for k in range(24):
        ang = toward_centre + (rng.uniform(-0.6, 0.6) if k < 12 else rng.uniform(-math.pi, math.pi))
        fwd = -np.array([math.cos(ang), math.sin(ang)])  # the robot faces the target
        left = np.array([-fwd[1], fwd[0]])
        xy = target_xy - fwd * distance - (left * sgn * ARM_Y if lateral else 0.0)
        if np.any(np.abs(xy) > half):
            continue
        if any(static.distance_to_furniture(xy, f) < ROBOT_FOOTPRINT_RADIUS + 0.03 for f in static.furniture):
            continue
        if any(np.linalg.norm(xy - p) < 0.6 for p in people):
            continue
        return float(xy[0]), float(xy[1]), math.atan2(fwd[1], fwd[0])
    return None


def drive_with(world, pose: tuple[float, float, float], oid: str) -> None:
    """Move the base to `pose` carrying a held object along (the hand keeps it in the same place relative to the base)."""
    import mujoco

    adr = _qadr(world, f"{oid}/joint")
    x0, y0, yaw0 = world.controller.base_pose()
    rel = to_base(world, world.data.qpos[adr : adr + 3].copy())
    quat = world.data.qpos[adr + 3 : adr + 7].copy()
    set_base(world, *pose)
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    pos = np.array([x + c * rel[0] - s * rel[1], y + s * rel[0] + c * rel[1], rel[2]])
    dq = np.array([math.cos((yaw - yaw0) / 2), 0.0, 0.0, math.sin((yaw - yaw0) / 2)])
    new_quat = np.empty(4)
    mujoco.mju_mulQuat(new_quat, dq, quat)
    world.data.qpos[adr : adr + 3] = pos
    world.data.qpos[adr + 3 : adr + 7] = new_quat
    world.data.qvel[_dadr(world, f"{oid}/joint") : _dadr(world, f"{oid}/joint") + 6] = 0.0


def _in_view_hand(side: str) -> np.ndarray:
    return np.array([0.40, ARM_Y if side == "left" else -ARM_Y, 1.05])


def take_into_hand(ep: Episode, oid: str, side: str) -> None:
    """The arm comes up into view with the gripper open; the object goes between the pads; it closes."""
    world = ep.world
    view = _in_view_hand(side)
    ep.tick(12, gripper={side: 0.0}, ee={side: view})
    site = np.asarray(world.privileged_state().robot.grasp_sites[side])
    cat = world.scenario.object_by_id()[oid].category
    place_object(world, oid, site + np.array([0.0, 0.0, -0.01 if cat == "bottle" else 0.0]), ep.rng.uniform(-0.4, 0.4))
    ep.tick(8, gripper={side: 1.0}, ee={side: view}, look=site)


def deliver(ep: Episode, oid: str, side: str, kind: str) -> bool:
    """Carry the held object to the bin or the person's palm and let go there, as place_in / handover do."""
    world, sc, rng = ep.world, ep.world.scenario, ep.rng
    if kind == "bin":
        b = next(f for f in sc.furniture if f.kind == "bin")
        spot = np.array([b.pos[0], b.pos[1], b.dims[2]])
        distance = 0.56
    else:
        spot = np.asarray(world.privileged_state().people[sc.people[0].id].hand)
        distance = 0.45
    pose = _free_base(world, spot[:2], side, distance, rng)
    if pose is None:
        return False
    drive_with(world, pose, oid)  # the drive there (odometry gives perception the new pose)
    ep.tick(2, gripper={side: 1.0})
    cat = sc.object_by_id()[oid]
    height = cat.height
    rel = to_base(world, spot)
    if kind == "bin":
        over = rel + np.array([0.0, 0.0, height + 0.12])
        ep.tick(16, gripper={side: 1.0}, ee={side: over}, look=spot)
        ep.tick(10, gripper={side: 0.0}, ee={side: over}, look=spot)
    else:
        over = rel + np.array([0.0, 0.0, height / 2 + 0.04])
        ep.tick(14, gripper={side: 1.0}, ee={side: over}, look=spot)
        low = rel + np.array([0.0, 0.0, height / 2 + 0.002])
        ep.tick(6, gripper={side: 1.0}, ee={side: low}, look=spot)
        ep.tick(10, gripper={side: 0.0}, ee={side: low}, look=spot)
        ep.tick(8, gripper={side: 0.0}, ee={side: low - np.array([0.14, 0.0, 0.0])}, look=spot)
    home = np.array([0.30, 0.25 if side == "left" else -0.25, 1.05])
    ep.tick(10, gripper={side: 0.0}, ee={side: home}, look=spot)
    ep.tick(2, look=spot, score_last=True)  # looking at where it went, as the skill's check does
    return True


def evaluate_scenario(name: str, frames: int = 200, seed: int = 0,
                      progress: Callable[[int], None] | None = None) -> Report:
    """Accuracy over `frames` scored, randomised frames of a scenario (about 8 per episode)."""
    from scenarios.world import SimWorld, WorldConfig

    world = SimWorld(name, WorldConfig(cameras=("head",)))  # perception reads the head camera only
    perception = Perception.for_world(world)
    all_atoms = atoms(world)
    report = Report(name)
    rng = np.random.default_rng(seed)
    sc = world.scenario
    kinds = (["bin"] if any(f.kind == "bin" for f in sc.furniture) else []) + (["palm"] if sc.people else [])
    episode = 0
    while report.frames < frames:
        world.reset(seed=seed * 10007 + episode)
        perception.reset()
        ep = Episode(world, perception, report, all_atoms, rng, progress, frames)
        episode += 1
        for pan, tilt in SCAN:  # arrival: look around once
            set_head(world, pan, tilt)
            ep.tick(1)
        objects = [o.id for o in sc.objects]
        oid = objects[int(rng.integers(len(objects)))]
        side = "left" if rng.random() < 0.5 else "right"
        home_surface = sc.object_by_id()[oid].on
        surface_xyz = _furniture_top(sc, home_surface)
        # Looking at the objects' table, then at another piece of furniture.
        set_head(world, rng.uniform(-0.2, 0.2), rng.uniform(0.6, 0.85))
        ep.tick(2, score_last=True)
        f = sc.furniture[int(rng.integers(len(sc.furniture)))]
        ep.tick(2, look=_furniture_top(sc, f.id), score_last=True)
        # Taking an object into the hand, looking at it, then looking elsewhere while holding it.
        take_into_hand(ep, oid, side)
        ep.tick(2, gripper={side: 1.0}, ee={side: _in_view_hand(side)}, score_last=True)
        set_head(world, rng.uniform(-1.2, 1.2), rng.uniform(0.3, 0.6))
        ep.tick(2, gripper={side: 1.0}, ee={side: _in_view_hand(side)}, score_last=True)
        # Delivering it (bin or person, alternately), and looking at where it went.
        if kinds:
            kind = kinds[episode % len(kinds)]
            if not deliver(ep, oid, side, kind):
                ep.tick(10, gripper={side: 0.0}, score_last=True)
        else:
            ep.tick(10, gripper={side: 0.0}, score_last=True)
        # Someone moves another object while the robot looks away; the robot looks back.
        others = [o for o in objects if o != oid]
        if others and surface_xyz is not None:
            set_base(world, *_start_pose(world))
            ep.tick(1)
            moved = others[int(rng.integers(len(others)))]
            set_head(world, rng.choice([-1.3, 1.3]), 0.3)
            ep.tick(2)
            truth = world.privileged_state()
            pos = np.asarray(truth.objects[moved].pos)
            if truth.objects[moved].rests_on is not None and truth.objects[moved].rests_on not in truth.people:
                new = pos + np.array([*rng.uniform(-0.12, 0.12, 2), 0.002])
                place_object(world, moved, new, rng.uniform(-3, 3))
                ep.tick(4)
            ep.tick(2, look=np.asarray(truth.objects[moved].pos), score_last=True)
        # Standing elsewhere, looking at a person or a piece of furniture (near / not near).
        targets = [p.id for p in sc.people] + [f.id for f in sc.furniture]
        target = targets[int(rng.integers(len(targets)))]
        point = (np.asarray(sc.person_by_id()[target].hand_position()) if target in sc.person_by_id()
                 else _furniture_top(sc, target))
        pose = _free_base(world, point[:2], side, rng.uniform(0.4, 1.4), rng)
        if pose is not None:
            set_base(world, *pose)
        ep.tick(2, look=point, score_last=True)
        set_base(world, *_start_pose(world))
        set_head(world, rng.uniform(-0.2, 0.2), rng.uniform(0.6, 0.85))
        ep.tick(2, score_last=True)
    world.close()
    return report


def _start_pose(world) -> tuple[float, float, float]:
    r = world.scenario.robot.start
    return r.x, r.y, math.radians(r.yaw_deg)


def _furniture_top(sc, fid: str | None) -> np.ndarray | None:
    f = sc.furniture_by_id().get(fid) if fid else None
    if f is None:
        return None
    return np.array([f.pos[0], f.pos[1], float(max(f.surface_heights(), default=f.dims[2]))])


def _frame(report: Report, world, perception: Perception, obs, all_atoms: list[str], observed: set[str]) -> None:
    t0 = time.perf_counter()
    belief = perception.update(obs, time=world.time)
    report.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
    truth = world.privileged_state(visibility=True)
    observed.update(truth.visible or ())
    score(report, world, perception, belief, all_atoms, observed, truth)


def _update(world, perception: Perception, obs, observed: set[str]) -> None:
    """A frame fed, not scored; what it shows counts as observed."""
    perception.update(obs, time=world.time)
    observed.update(world.privileged_state(visibility=True).visible or ())


def evaluate_robustness(name: str, frames: int, condition: str, seed: int = 0,
                        progress: Callable[[int], None] | None = None) -> Report:
    """Accuracy under one condition: 'occlusion' (an arm over the target), 'dim' / 'bright' lights."""
    from scenarios.world import SimWorld, WorldConfig

    world = SimWorld(name, WorldConfig(cameras=("head",)))
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
        observed: set[str] = set()
        if condition in ("dim", "bright"):
            lo, hi = sc.randomisation.light_intensity
            scale = lo if condition == "dim" else hi
            for i, light in enumerate(sc.lights):
                world.model.light_diffuse[i] = light.intensity * scale
        obs = hold(world, 1)
        _update(world, perception, obs, observed)  # one clear look first: tracking is part of it
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
                _update(world, perception, obs, observed)
        for _ in range(2 if condition == "occlusion" else 3):
            if report.frames >= frames:
                break
            if condition != "occlusion":
                set_head(world, rng.uniform(-0.3, 0.3), rng.uniform(0.55, 0.85))
            obs = hold(world, 1, ee=None)
            _frame(report, world, perception, obs, all_atoms, observed)
            if progress:
                progress(1)
    world.close()
    return report
