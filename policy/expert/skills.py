"""The expert's skills as small phase machines over privileged state.

Each skill is constructed with the names it acts on, then `tick(ctx)` is called once per
control period: it reads the truth in `ctx`, advances its phase and edits `ctx.cmd` (the
running command). `done` is set when the skill has finished its motion (success or not);
`failure` names why it gave up, if it did. Success itself is judged outside, by the
skill's ground-truth predicate (see `policy.expert.expert.success_predicate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from policy.expert.clearance import escape_path, segment_clear
from policy.expert.geometry import approach_axis, side_grasp_rotvec, to_base, to_world, wrap
from policy.expert.grasps import PREGRASP_BACK, PREGRASP_UP, Grasp, choose_grasp, grasp_kind, top_grasp_point, top_pitch
from policy.expert.motion import CARRY_POS, DRIVE_POS, DRIVE_ROT, PAN_LIMIT, TILT_RANGE, Command
from policy.expert.navigation import NavigationError, OccupancyGrid, PathFollower, grid_for
from policy.expert.targets import ApproachPose, approaches
from scenarios.catalog import CATEGORIES
from scenarios.ground_truth import PrivilegedState
from scenarios.robot import SIDES
from scenarios.schema import Scenario

GRIP_WAIT = 0.6  # s with the gripper closed before lifting
RELEASE_WAIT = 0.5  # s with the gripper open before retracting
RESUME_XY = 0.04  # m: a held object this close (horizontally) over its spot is lowered from where it is ...
RESUME_ABOVE = 0.08  # m: ... when no higher than this above the descent's start
STAGING = 0.35  # m out from an approach pose, where the planned path ends
CARRY_TOP_PITCH = 1.15  # rad: a top-grasped object is carried with the hand this far from horizontal
BALL_CARRY_PITCH = -0.25  # rad: negative tips the fingers up
FINAL_SPEED = 0.15  # m/s on the last, straight stretch to an approach pose
SEARCH_RATE = 0.6  # rad/s: look_for turns left at this rate until the object shows
SEARCH_TILT = 0.45  # rad down: tables and floors from 1 to 4 m fill the head camera while searching


@dataclass
class Context:
    """What a skill sees each tick: the truth, the robot's own state and the running command."""

    scenario: Scenario
    state: PrivilegedState
    ee: dict[str, tuple[np.ndarray, np.ndarray]]  # side -> (pos, quat) in the base frame
    opening: dict[str, float]
    cmd: Command
    dt: float
    visible: Callable[[], tuple[str, ...]]  # objects in the head camera's view (renders: call sparingly)

    @property
    def base(self) -> tuple[float, float, float]:
        return self.state.robot.base


@dataclass
class Skill:
    """Base class: a phase name, a clock per phase, and the outcome flags."""

    phase: str = "start"
    phase_time: float = 0.0
    done: bool = False
    failure: str | None = None
    log: list[str] = field(default_factory=list)

    def go(self, phase: str) -> None:
        self.log.append(phase)
        self.phase, self.phase_time = phase, 0.0

    def fail(self, reason: str) -> None:
        self.failure = reason
        self.done = True

    def tick(self, ctx: Context) -> None:
        self.phase_time += ctx.dt
        self._tick(ctx)

    def _tick(self, ctx: Context) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def hold_arms(ctx: Context, except_side: str | None = None) -> bool:
    """Arms not in use go to the driving posture (a held object's arm to the carry posture)."""
    ok = True
    for side in SIDES:
        if side == except_side:
            continue
        if ctx.state.robot.holding.get(side):
            ok &= ctx.cmd.move(side, CARRY_POS[side], ctx.cmd.rot[side])  # the carry orientation Pick left
        else:
            ok &= ctx.cmd.move(side, DRIVE_POS[side], DRIVE_ROT, speed=0.35)
            ctx.cmd.gripper(side, 0.0)
    return ok


def _is_top(rotvec: np.ndarray) -> bool:
    return approach_axis(rotvec)[2] < -0.7


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def target_point(ctx: Context, target: str) -> np.ndarray:
    st = ctx.state
    if target in st.objects:
        return np.asarray(st.objects[target].pos)
    if target in st.people:
        return np.asarray(st.people[target].hand)
    f = st.furniture[target]
    return np.array([f.pos[0], f.pos[1], f.size[2]])


# ------------------------------------------------------------------------------ look_for
@dataclass
class LookFor(Skill):
    """Search by turning one fixed way until the object shows, then turn the head (and base) onto it.

    The search uses nothing the cameras do not show: head centred at `SEARCH_TILT`, the base
    turning left at `SEARCH_RATE`, whatever side the object is really on. Turning towards an
    unseen object's true side (privileged state) would make the same observation be followed by
    left turns in some demonstrations and right turns in others, and a policy regressed on both
    turns neither way. After the first sighting, the object is in view and aiming at it is what
    the frames show. After a whole turn without a sighting (too far, or hidden), the search falls
    back on the privileged side: pointed at the object for a while without seeing it, the robot
    walks towards it; a sighting stops the walk. The object counts as found after three
    sightings in a row with the base still and the head on it, so it stays in view when the
    skill ends.
    """

    obj: str = ""
    checks: int = 0
    seen: int = 0
    gazing: float = 0.0
    unseen: float = 0.0  # s since the last sighting
    walks: int = 0
    walk: NavigateTo | None = None
    last_base: np.ndarray | None = None
    walk_from: np.ndarray | None = None
    turning: bool = False
    searching: bool = True
    searched: float = 0.0  # rad turned while searching

    def _tick(self, ctx: Context) -> None:
        if self.searching:
            self._search(ctx)
            if self.searching:
                return
        p = target_point(ctx, self.obj)
        if self.walk is not None:
            self.walk.tick(ctx)
            if self.walk.done:
                self.walk = None
        else:
            hold_arms(ctx)
        pan, tilt = ctx.cmd.look_at(ctx.base, p)
        goal = np.array([np.clip(pan, -PAN_LIMIT, PAN_LIMIT), np.clip(tilt, *TILT_RANGE)])
        aligned = abs(ctx.cmd.head[0] - goal[0]) < 0.1
        on_it = bool(np.all(np.abs(ctx.cmd.head - goal) < 0.03))
        self.gazing = self.gazing + ctx.dt if aligned else 0.0
        self.unseen += ctx.dt
        b = np.array(ctx.base)
        still = (self.last_base is not None and float(np.linalg.norm(b[:2] - self.last_base[:2])) < 3e-4
                 and abs(wrap(b[2] - self.last_base[2])) < 2e-3)
        self.last_base = b
        if self.walk is None:
            # Turn the base when the object lies beyond a comfortable head pan, or low down to a
            # side, where the tucked arm on that side hides it; turn until it is nearly ahead.
            if abs(pan) > math.radians(60) or (tilt > 0.55 and abs(pan) > 0.35):
                self.turning = True
            elif abs(pan) < 0.1:
                self.turning = False
            ctx.cmd.base = np.array([0.0, 0.0, float(np.clip(1.2 * pan, -0.7, 0.7)) if self.turning else 0.0])
            if self.gazing > 1.5 and self.unseen > (2.0 if self.walks == 0 else 1.0) and self.walks < 2:
                self.walk = NavigateTo(target=self.obj)
                self.walk_from = b[:2].copy()
                self.walks += 1
                self.go("approach")
        self.checks += 1
        if self.checks % 3 == 0 and aligned:
            if self.obj in ctx.visible():
                self.unseen = 0.0
                # In view: stop walking (a second walk goes at least 0.6 m: the first stop was too early).
                if self.walk is not None and (self.walks == 1 or float(np.linalg.norm(b[:2] - self.walk_from)) > 0.6):
                    self.walk = None
                    ctx.cmd.base = np.zeros(3)
                if still and on_it and not ctx.cmd.base.any():
                    self.seen += 1
            else:
                self.seen = 0
            if self.seen >= 3:
                ctx.cmd.base = np.zeros(3)
                self.done = True
        if self.phase_time > 18.0:
            self.fail("object never came into view")

    def _search(self, ctx: Context) -> None:
        hold_arms(ctx)
        ctx.cmd.set_head(0.0, SEARCH_TILT)
        ctx.cmd.base = np.array([0.0, 0.0, SEARCH_RATE])
        self.searched += SEARCH_RATE * ctx.dt
        looked = self.checks % 3 == 0
        self.checks += 1
        if looked and self.obj in ctx.visible():
            self.searching = False
        elif self.searched > 2 * math.pi + 0.5:
            self.searching = False  # a whole turn and no sighting: walk towards where it really is
        if not self.searching:
            ctx.cmd.base = np.zeros(3)


# --------------------------------------------------------------------------- navigate_to
@dataclass
class NavigateTo(Skill):
    """Plan around furniture and people on an occupancy grid (A*), drive there, then approach slowly.

    The last stretch is straight in along the approach pose's normal where that is clear; where
    it is not (a slot between a low table and a sofa), the robot drives to a free cell beside
    the slot and slides in sideways, heading held, along the reverse of `escape_path`. Leaving
    a tight spot goes the same way out before the planned path starts.
    """

    target: str = ""
    arm: str | None = None
    grid: OccupancyGrid | None = None
    pose: ApproachPose | None = None
    follower: PathFollower | None = None
    entry: list[np.ndarray] | None = None  # waypoints from the end of the planned path to the pose
    legs: list[np.ndarray] = field(default_factory=list)  # waypoints still to slide through
    goal: np.ndarray | None = None  # end of the planned path (staging point)
    last_xy: np.ndarray | None = None
    still: float = 0.0
    slide_cost: float = 0.0  # added to an approach pose reached only by a slide (a driver less precise than this one)

    def plan(self, ctx: Context) -> None:
        held = [s for s, o in ctx.state.robot.holding.items() if o]
        self.arm = self.arm or (held[0] if held else None)
        cands = approaches(ctx.scenario, ctx.state, self.target, self.arm)
        if not cands:
            self.fail("no free approach pose")
            return
        grid = grid_for(ctx.scenario, ctx.state)
        start = np.array(ctx.base[:2])
        best = None
        for cost, pose in cands[:4]:
            staging = pose.xy + np.asarray(pose.normal) * STAGING
            entry = None
            if np.linalg.norm(start - pose.xy) < 0.6:
                path, length = [start, pose.xy], float(np.linalg.norm(start - pose.xy))
            else:
                if not (grid.is_free(staging) and segment_clear(ctx.scenario, ctx.state, pose.xy, staging, pose.yaw, margin=0.0)):
                    way_out = escape_path(ctx.scenario, ctx.state, grid, pose.xy, pose.yaw)
                    if way_out is not None and len(way_out) > 1:
                        entry = list(reversed(way_out))
                        staging = entry[0]
                    elif not grid.is_free(staging):
                        staging = grid.centre(grid.nearest_free(staging))
                try:
                    path = grid.plan(start, staging)
                except NavigationError:
                    continue
                length = float(sum(np.linalg.norm(b - a) for a, b in zip(path, path[1:])))
                if entry is not None:
                    length += 2.0 * float(sum(np.linalg.norm(b - a) for a, b in zip(entry, entry[1:])))  # slow
            total = cost + 0.3 * length + (self.slide_cost if entry is not None else 0.0)
            if best is None or total < best[0]:
                best = (total, pose, path, entry)
        if best is None:
            self.fail("no path to any approach pose")
            return
        _, self.pose, path, self.entry = best
        self.grid = grid
        self.goal = path[-1]
        self.follower = PathFollower(path, self.pose.yaw, ctx.dt, tol=0.08, yaw_tol=0.15)

    def _slide(self, ctx: Context, points: list[np.ndarray], yaw: float, speed: float = FINAL_SPEED) -> None:
        """Start sliding through `points` (heading held at `yaw`), first turning on the spot."""
        xy = np.array(ctx.base[:2])
        self.legs = [np.asarray(p, float) for p in points]
        self.follower = PathFollower([xy, xy], yaw, ctx.dt, tol=0.02, yaw_tol=0.02, max_speed=speed, hold_heading=True)
        self.follower.velocity = ctx.cmd.base.copy()

    def _next_leg(self, ctx: Context, yaw: float, speed: float = FINAL_SPEED) -> bool:
        """Advance to the next leg when the current one is done; False once all are done."""
        if not self.follower.stopped:
            return True
        if not self.legs:
            return False
        xy = np.array(ctx.base[:2])
        last = len(self.legs) == 1
        self.follower = PathFollower([xy, self.legs.pop(0)], yaw, ctx.dt, tol=0.012 if last else 0.006,
                                     yaw_tol=0.02, max_speed=speed, hold_heading=True)
        return True

    def _tick(self, ctx: Context) -> None:
        ctx.cmd.look_at(ctx.base, target_point(ctx, self.target))
        if self.phase == "start":
            self.plan(ctx)
            if self.done:
                return
            self.go("tuck")
        if self.phase == "tuck":
            ctx.cmd.base = np.zeros(3)
            if hold_arms(ctx) or self.phase_time > 2.5:
                here = np.array(ctx.base[:2])
                far = np.linalg.norm(here - self.pose.xy) > 0.6
                if far and not self.grid.is_free(here):
                    way_out = escape_path(ctx.scenario, ctx.state, self.grid, here, ctx.base[2])
                    if way_out is not None and len(way_out) > 1:
                        self._slide(ctx, way_out[1:], ctx.base[2], speed=0.2)
                        self.go("leave")
                    else:
                        self.go("backoff")
                else:
                    self.go("drive")
            return
        if self.phase == "leave":
            # Out of a tight spot the way a slide would have come in, then the planned path.
            hold_arms(ctx)
            ctx.cmd.base = self.follower.command(ctx.base)
            if not self._next_leg(ctx, self.follower.goal_yaw, speed=0.2) or self.phase_time > 15.0:
                self._replan_from_here(ctx)
            return
        if self.phase == "backoff":
            # Close to furniture (just picked or placed): back straight out before turning.
            hold_arms(ctx)
            v = -0.15 if self.phase_time < 0.8 or not self.grid.is_free(np.array(ctx.base[:2])) else 0.0
            ctx.cmd.base = np.array([v, 0.0, 0.0])
            if v == 0.0 or self.phase_time > 4.0:
                self._replan_from_here(ctx)
            return
        hold_arms(ctx)
        assert self.follower is not None and self.pose is not None
        ctx.cmd.base = self.follower.command(ctx.base)
        xy = np.array(ctx.base)
        moved = 1.0 if self.last_xy is None else float(np.linalg.norm(xy[:2] - self.last_xy[:2])) + 0.3 * abs(wrap(xy[2] - self.last_xy[2]))
        self.last_xy = xy
        self.still = self.still + ctx.dt if moved < 1e-4 and self.phase_time > 1.0 else 0.0
        if self.phase == "drive" and (self.follower.done or self.still > 2.0):
            self.still = 0.0
            xy = np.array(ctx.base[:2])
            if self.entry is not None:
                self._slide(ctx, self.entry, self.pose.yaw)  # from the entry's start exactly: the drive ends within 8 cm of it, and the slot is tight
            else:
                self.follower = PathFollower([xy, self.pose.xy], self.pose.yaw, ctx.dt, tol=0.012, yaw_tol=0.02, max_speed=FINAL_SPEED)
                self.follower.velocity = ctx.cmd.base.copy()
                self.legs = []
            self.go("final")
        elif self.phase == "final":
            if self.still > 1.0 and self.legs:
                self.follower.done = True
                self.follower.velocity = np.zeros(3)
                self.still = 0.0
            if not self._next_leg(ctx, self.pose.yaw) or self.still > 1.0:
                ctx.cmd.base = np.zeros(3)
                self.done = True
        if self.phase_time > 50.0:
            self.fail("navigation timed out")

    def _replan_from_here(self, ctx: Context) -> None:
        ctx.cmd.base = np.zeros(3)
        path = [np.array(ctx.base[:2]), self.goal]
        try:
            path = self.grid.plan(np.array(ctx.base[:2]), self.goal)
        except NavigationError:
            pass
        self.follower = PathFollower(path, self.pose.yaw, ctx.dt, tol=0.08, yaw_tol=0.15)
        self.go("drive")


# ---------------------------------------------------------------------------------- pick
@dataclass
class Pick(Skill):
    """Pre-grasp, approach, close, lift and carry, with a grasp chosen for the object's shape."""

    obj: str = ""
    side: str = "left"
    grasp: Grasp | None = None
    retries: int = 0
    align: PathFollower | None = None

    def _window_ok(self, ctx: Context) -> bool:
        obj, truth = ctx.scenario.object_by_id()[self.obj], ctx.state.objects[self.obj]
        ob = to_base(ctx.base, truth.pos[:2])
        kind = grasp_kind(obj, truth)
        lo, hi = (0.24, 0.46) if kind == "top" else (0.30, 0.66)
        sgn = 1.0 if ob[1] >= 0 else -1.0
        ok = lo <= ob[0] <= hi and abs(ob[1] - sgn * 0.18) <= 0.15
        if ok and kind == "top":
            side = "left" if ob[1] >= 0 else "right"
            ok = top_pitch(to_base(ctx.base, top_grasp_point(obj, truth)), side, math.atan2(ob[1] - sgn * 0.12, ob[0]))[1]
        return ok

    def _plan(self, ctx: Context) -> None:
        truth = ctx.state.objects[self.obj]
        obj = ctx.scenario.object_by_id()[self.obj]
        base = ctx.base
        ob = to_base(base, truth.pos)
        self.side = "left" if ob[1] >= 0 else "right"
        sgn = 1.0 if self.side == "left" else -1.0
        heading = base[2] + float(np.clip(math.atan2(ob[1] - sgn * 0.12, ob[0]), -0.5, 0.5))
        support_z = truth.pos[2] - obj.height / 2
        self.grasp = choose_grasp(obj, truth, heading, support_z, base, self.side)

    def _targets(self, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(above, pre-grasp, grasp) positions and the orientation, in the base frame."""
        g = self.grasp
        assert g is not None
        base = ctx.base
        rot = g.rotvec(base[2])
        point = to_base(base, g.point)
        if g.kind == "top":
            pre = point + [0, 0, PREGRASP_UP]
            above = pre
        else:
            a = approach_axis(rot)
            pre = point - a * PREGRASP_BACK + [0, 0, 0.015]
            above = pre + [0, 0, 0.08]
        return above, pre, point, rot

    def _lift_height(self, ctx: Context) -> float:
        obj = ctx.scenario.object_by_id()[self.obj]
        truth = ctx.state.objects[self.obj]
        f = ctx.scenario.furniture_by_id().get(truth.rests_on or obj.on)
        if f is None or f.kind != "shelf":
            return 0.10
        top = truth.pos[2] + obj.height / 2
        above = [h for h in f.surface_heights() if h > top + 0.005]
        if not above:
            return 0.10
        return float(np.clip(above[0] - 0.02 - 0.025 - top, 0.02, 0.10))

    def _tick(self, ctx: Context) -> None:
        cmd = ctx.cmd
        truth = ctx.state.objects[self.obj]
        cmd.look_at(ctx.base, np.asarray(truth.pos))
        if self.phase == "start":
            cmd.base = np.zeros(3)
            if truth.held_by is not None and truth.rests_on is None:
                self.done = True  # already holding it
                return
            if not self._window_ok(ctx):
                here = np.array(ctx.base[:2])
                cands = [c for c in approaches(ctx.scenario, ctx.state, self.obj)[:8] if np.linalg.norm(c[1].xy - here) <= 0.8]
                if not cands:
                    self.fail("object out of reach from here")
                    return
                pose = min(cands, key=lambda c: c[0] + 2.0 * float(np.linalg.norm(c[1].xy - here)))[1]
                self.align = PathFollower([np.array(ctx.base[:2]), pose.xy], pose.yaw, ctx.dt, tol=0.012, yaw_tol=0.02, max_speed=FINAL_SPEED)
                self.go("align")
            else:
                self._plan(ctx)
                self.go("above")
        if self.phase == "align":
            hold_arms(ctx)
            cmd.base = self.align.command(ctx.base)
            if self.align.stopped or self.phase_time > 6.0:
                cmd.base = np.zeros(3)
                self._plan(ctx)
                self.go("above")
            return
        cmd.base = np.zeros(3)
        hold_arms(ctx, except_side=self.side)
        s = self.side
        above, pre, point, rot = self._targets(ctx)
        if self.phase == "above":
            cmd.gripper(s, 0.0)
            if cmd.move(s, above, rot, speed=0.3) and self.phase_time > 0.3:
                self.go("pre")
        elif self.phase == "pre":
            cmd.gripper(s, 0.0)
            if cmd.move(s, pre, rot, speed=0.2):
                self.go("approach")
        elif self.phase == "approach":
            if cmd.move(s, point, rot, speed=0.12) and np.linalg.norm(ctx.ee[s][0] - point) < 0.015:
                self.go("close")
            elif self.phase_time > 4.0:
                self.go("close")
        elif self.phase == "close":
            cmd.gripper(s, 1.0)
            if self.phase_time > GRIP_WAIT + 0.4:
                if ctx.opening[s] < 0.01:
                    self.retries += 1
                    if self.retries > 2:
                        self.fail("grasp missed three times")
                        return
                    self._plan(ctx)
                    self.go("reopen")
                else:
                    self.lift_to = point + [0, 0, self._lift_height(ctx)]
                    self.go("lift")
        elif self.phase == "reopen":
            cmd.gripper(s, 0.0)
            if cmd.move(s, pre + [0, 0, 0.08], speed=0.15):
                self.go("start")
        elif self.phase == "lift":
            if cmd.move(s, self.lift_to, speed=0.12):
                self.go("retract")
        elif self.phase == "retract":
            back = self.lift_to - approach_axis(cmd.rot[s]) * 0.12 * (self.grasp.kind == "side")
            back[2] = self.lift_to[2] + (0.0 if self.grasp.kind == "side" else 0.05)
            if cmd.move(s, back, speed=0.15):
                self.go("carry")
        elif self.phase == "carry":
            rot_goal = np.zeros(3)
            if CATEGORIES[ctx.scenario.object_by_id()[self.obj].category].shape == "sphere":
                # A ball held at its sides creeps out along the fingers when they point down:
                # carry it with the fingers tipped up a little, so it settles towards the palm.
                rot_goal = side_grasp_rotvec(0.0, BALL_CARRY_PITCH)
            elif self.grasp.kind == "top":
                # Pointing down, turned straight, tipped forward a little: straight down at
                # chest height is at the edge of the arm's range and the IK stalls there.
                rot_goal = side_grasp_rotvec(0.0, min(self.grasp.pitch, CARRY_TOP_PITCH))
            if cmd.move(s, CARRY_POS[s], rot_goal, speed=0.2):
                self.done = True
        if self.phase_time > 10.0:
            self.fail(f"pick stuck in phase {self.phase}")


# ---------------------------------------------------------------------- place / handover
@dataclass
class Release(Skill):
    """Set a held object down on a surface, drop it in a bin or lay it on a person's palm."""

    obj: str = ""
    target: str = ""
    side: str = "left"
    spot: np.ndarray | None = None  # world point where the object's bottom goes
    offset: np.ndarray | None = None  # object centre minus grasp site, base frame
    mode: str = "surface"  # surface | bin | person
    align: PathFollower | None = None
    release_pos: np.ndarray | None = None
    travel_z: float = 0.0

    def _choose_spot(self, ctx: Context) -> np.ndarray | None:
        st = ctx.state
        obj = ctx.scenario.object_by_id()[self.obj]
        if self.target in st.people:
            self.mode = "person"
            return np.asarray(st.people[self.target].hand, float)
        f = st.furniture[self.target]
        kind = ctx.scenario.furniture_by_id()[self.target].kind
        if kind == "bin":
            self.mode = "bin"
            return np.array([f.pos[0], f.pos[1], f.size[2]])
        height = f.size[2]
        r = obj.footprint_radius
        half = np.array(f.size[:2]) / 2 - r - 0.05
        if np.any(half <= 0):
            return None
        sgn = 1.0 if self.side == "left" else -1.0
        ideal = np.array([0.50, sgn * 0.2])
        best = None
        fb = (f.pos[0], f.pos[1], f.yaw)
        objs = ctx.scenario.object_by_id()
        others = [(np.asarray(o.pos[:2]), CATEGORIES[objs[oid].category].footprint_radius())
                  for oid, o in st.objects.items() if oid != self.obj and o.rests_on == self.target]
        # Those the held object cannot pass over at carrying height.
        bottom = st.objects[self.obj].pos[2] - obj.height / 2
        tall = [(np.asarray(o.pos[:2]), CATEGORIES[objs[oid].category].footprint_radius())
                for oid, o in st.objects.items() if oid != self.obj and o.rests_on == self.target
                and o.pos[2] + objs[oid].height / 2 + 0.03 > bottom]
        hand = to_world(ctx.base, ctx.cmd.pos[self.side][:2])
        for lx in np.arange(-half[0], half[0] + 1e-9, 0.03):
            for ly in np.arange(-half[1], half[1] + 1e-9, 0.03):
                w = to_world(fb, np.array([lx, ly]))
                clear = min((float(np.linalg.norm(w - p)) - ro for p, ro in others), default=1.0)
                if clear < r + 0.04:
                    continue
                # The held object travels from the hand towards the spot: keep it off the others.
                path_clear = min((_segment_distance(p, hand, w) - ro for p, ro in tall), default=1.0)
                if path_clear < r + 0.03:
                    continue
                d = float(np.linalg.norm(to_base(ctx.base, w) - ideal))
                if best is None or d < best[0]:
                    best = (d, w)
        if best is None:
            return None
        return np.array([best[1][0], best[1][1], height])

    def _window_ok(self, ctx: Context) -> bool:
        p = to_base(ctx.base, self.spot[:2])
        if self.mode == "bin":
            return 0.3 <= p[0] <= 0.7 and abs(p[1]) <= 0.4
        sgn = 1.0 if self.side == "left" else -1.0
        return 0.34 <= p[0] <= 0.64 and abs(p[1] - sgn * 0.2) <= 0.14

    def _over(self, ctx: Context) -> np.ndarray:
        """Where the hand goes before the last descent (base frame): the object's bottom
        `clearance` above the spot."""
        obj = ctx.scenario.object_by_id()[self.obj]
        clearance = 0.10 if self.mode == "bin" else 0.035
        return to_base(ctx.base, self.spot) + [0, 0, obj.height / 2 + clearance] - self.offset

    def _resume_phase(self, ctx: Context) -> str:
        """The phase to start in. From the carrying posture that is the raise; a hand already
        over the spot (a learned attempt stopped part-way: DAgger inside the skill) goes on from
        there, so the correction recorded is the step the attempt missed, not a fresh start:
        let go of an object that already rests on the target, lower one close above it."""
        truth = ctx.state.objects[self.obj]
        if self.mode != "bin" and (truth.rests_on == self.target or self.target in truth.contacts):
            return "release"
        self.offset = to_base(ctx.base, truth.pos) - ctx.ee[self.side][0]
        over = self._over(ctx)
        hand = ctx.ee[self.side][0]
        if np.linalg.norm(hand[:2] - over[:2]) > RESUME_XY or hand[2] > over[2] + RESUME_ABOVE:
            return "raise"
        return "lower" if self.mode != "bin" and hand[2] <= over[2] else "descend"

    def _tick(self, ctx: Context) -> None:
        cmd = ctx.cmd
        st = ctx.state
        if self.phase == "start":
            held = [s for s, o in st.robot.holding.items() if o == self.obj]
            if not held:
                self.fail(f"not holding {self.obj}")
                return
            self.side = held[0]
            self.spot = self._choose_spot(ctx)
            if self.spot is None:
                self.fail(f"no free spot on {self.target}")
                return
            if not self._window_ok(ctx):
                arm = self.side
                cands = approaches(ctx.scenario, st, self.target, arm)
                if not cands or np.linalg.norm(cands[0][1].xy - np.array(ctx.base[:2])) > 0.6:
                    self.fail(f"{self.target} out of reach from here")
                    return
                pose = cands[0][1]
                self.align = PathFollower([np.array(ctx.base[:2]), pose.xy], pose.yaw, ctx.dt, tol=0.012, yaw_tol=0.02, max_speed=FINAL_SPEED)
                self.go("align")
            else:
                self.go(self._resume_phase(ctx))
        s = self.side
        if self.spot is not None:
            cmd.look_at(ctx.base, self.spot)
        if self.phase == "align":
            hold_arms(ctx)
            cmd.base = self.align.command(ctx.base)
            if self.align.stopped or self.phase_time > 6.0:
                cmd.base = np.zeros(3)
                self.spot = self._choose_spot(ctx)
                if self.spot is None:
                    self.fail(f"no free spot on {self.target}")
                    return
                self.go("raise")
            return
        cmd.base = np.zeros(3)
        hold_arms(ctx, except_side=s)
        obj = ctx.scenario.object_by_id()[self.obj]
        truth = st.objects[self.obj]
        if self.offset is None or self.phase in ("raise",):
            site = ctx.ee[s][0]
            self.offset = to_base(ctx.base, truth.pos) - site
        spot_b = to_base(ctx.base, self.spot)
        over = self._over(ctx)
        rot = cmd.rot[s]
        if self.phase == "raise":
            up = cmd.pos[s].copy()
            up[2] = max(up[2], over[2] + 0.05)
            self.travel_z = float(up[2])
            if cmd.move(s, up, speed=0.2):
                self.go("over")
        elif self.phase == "over":
            # Across at carrying height, then straight down: nothing on the surface is swept.
            high = np.array([over[0], over[1], max(self.travel_z, over[2] + 0.05)])
            if cmd.move(s, high, speed=0.25):
                self.go("descend")
        elif self.phase == "descend":
            if cmd.move(s, over, speed=0.16):
                self.go("release" if self.mode == "bin" else "lower")
        elif self.phase == "lower":
            low = spot_b + [0, 0, obj.height / 2 - 0.03] - self.offset
            touching = truth.rests_on == self.target or self.target in truth.contacts
            reached = cmd.move(s, low, speed=0.04)
            if touching or reached:
                self.go("release")
        elif self.phase == "release":
            if cmd.gripper(s, 0.0) and self.phase_time > 0.4 + RELEASE_WAIT:
                self.release_pos = cmd.pos[s].copy()
                self.go("retract")
        elif self.phase == "retract":
            a = approach_axis(rot)
            goal = self.release_pos + ([0, 0, 0.10] if _is_top(rot) else -a * 0.14)
            if cmd.move(s, goal, speed=0.15):
                self.go("home")
        elif self.phase == "home":
            if hold_arms(ctx):
                self.done = True
        if self.phase_time > 10.0:
            self.fail(f"{'handover' if self.mode == 'person' else 'place'} stuck in phase {self.phase}")
