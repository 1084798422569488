"""The reset reflex between attempts: back to the posture learned skills start from.

A learned skill that fails leaves the robot where no demonstration starts: a hand reached out
and closed on nothing, a held cup hovering over a palm, the head turned away from the object.
A retry from there replays the failure, or fails at once because the object is out of view and
`visible(obj)` is no longer believed (session 18: after a failed learned pick, every retry in
16 measured serves failed its `visible` precondition within a second, and so did the pick after
each repaired plan's drive). Before the next attempt after a failure, and before the first
attempt of every manipulation, the behaviour tree runs this reflex, as a real robot's "go home"
between tries. The expert keeps its head on what it manipulates, so every demonstration of a
manipulation shows its target in the head camera; after a learned drive the head looks wherever
the drive left it, and the learned handover that starts from there hovers over the palm and never
lets go (first attempts 0/11 in session 18's serves, 10/15 after the reflex's 0.25 s head turn).
The reflex:

- the base stands still;
- an empty hand opens, rises clear of what it reached for, then goes to the driving posture
  (`DRIVE_POS`), the posture every learned skill's demonstrations begin in;
- a hand believed to hold an object closes on it and goes to the carry posture (`CARRY_POS`);
- the head turns to what the next subtask acts on, as the robot believes it;
- for a manipulation (pick, place, place_in, handover) the base then drives back, slowly, to
  where it stood when the subtask's first attempt began (`start_pose`, odometry), if it is no
  more than `RETURN_MAX_M` away: a learned pick that fails drags the base round with its reach
  (20 cm in one measured serve), and its retry from there is a pick from off the pose its
  drive stopped at;
- before a learned manipulation's first attempt (`dock`: a pick; a place or place_in also with
  the object in hand), the base drives, slowly, onto the approach pose planned from the belief
  for what it acts on (the pose a drive there is given, `policy.navigation_goal.plan_route`)
  when it stands within `DOCK_MAX_M` of it and the way there is clear (`dock_route`: a straight
  slide, or a turn on the spot first and then the slide; never nearer anything than the approach
  pose itself is): a learned drive slows to a creep near its goal and is ended
  `learned_arrive_max_s` after `near` holds, and in tidy seed 2 (session 20) it stopped 25 cm
  short and 0.4 rad off the red ball's pose; every learned pick from there closed on the ball at
  full reach and let it go, 3 x 30 s. In session 22 the learned drive to the bin stopped 23 cm
  off and facing 0.7 rad away with the green box in hand (tidy seed 1), and the learned place_in
  from there tried to let go at once, away from the bin, for 3 x 30 s (the grip guard held it);
  a drive to the green box stopped facing 2 rad away from its pose (seed 10) and four picks from
  there never reached it, where the slide onto a table's approach pose had been refused because
  that pose has the upper body over the table's edge. Session 20 found docking with the ball in
  hand lost it (3 of 4 seeds); that was before noslip, the wider pads and the regrasp
  (`policy.grasp_depth`) held it; a handover's person can move, so a handover still does not dock;
- for a drive (navigate_to) the base backs out to open floor when it stands where the expert's
  occupancy grid (on the room as believed: the static map, people and objects from the belief)
  has no room for it: back along the way the failed attempt came (`trail`, its believed poses,
  to the last one on open floor, at most `BACKTRACK_MAX_M`), since that way is free by
  construction — a base jammed between the bin and a table leg did not move at all when told to
  slide out sideways (tidy seed 2, session 20) — else by `escape_path`, heading held; then, more
  than `FACE_MIN_M` from the drive's goal pose, turns on the spot to face its route (the point
  `LOOKAHEAD_M` along the route planned from the belief, as `policy.navigation_goal` tells the
  drive): a learned drive that wedged itself against furniture (`policy.blocked_base`) otherwise
  retried from the wedge, and, backed out but still facing it, drove forward and turned into it
  again within 2 s (tidy seed 2, session 20), where the expert turns towards its route before it
  drives.

It reads the belief and its own commanded targets only, never the simulator's ground truth,
and speaks LeRobot's policy methods, so the tree runs it like any skill policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from perception.belief import Belief
from policy.expert.geometry import wrap
from policy.expert.motion import CARRY_POS, DRIVE_POS, DRIVE_ROT, PAN_LIMIT, TILT_RANGE, Command
from scenarios.robot import SIDES
from scenarios.schema import Scenario

LIFT_M = 0.06  # an empty hand below the driving posture first rises this much, straight up
HOME_SPEED = 0.35  # m/s, as the expert tucks a free arm
CARRY_SPEED = 0.25  # m/s with an object in the hand
HEAD_TOL = 0.03  # rad
MAX_S = 8.0  # the reflex ends after this long wherever the arms are (the tree's own limit: BehaviorConfig.posture_reset_max_s)
PERSON_LOOK_Z = 1.0  # m: a person is looked at about where a handed object goes
RETURN_SKILLS = ("pick", "place", "place_in", "handover")
DOCK_HELD_SKILLS = ("place", "place_in")  # docked with the object in hand too: their site is furniture, which stays put
ESCAPE_SKILLS = ("navigate_to",)
BACKTRACK_MAX_M = 2.0  # m of the failed drive's way back that the reflex retraces at most
BACKTRACK_STEP_M, BACKTRACK_STEP_RAD = 0.05, 0.1  # the way back's waypoints, at least this far apart
WAYPOINT_TOL_M, WAYPOINT_TOL_RAD = 0.03, 0.1  # passing a waypoint of the way out (the last: RETURN_TOL_*)
ESCAPE_SPEED, ESCAPE_TURN = 0.25, 1.0  # m/s, rad/s along the way out (free by construction or by the model)
DOCK_MAX_M = 0.5  # m: farther from the approach pose, the base stays (a drive there is the way)
TURN_CHECK_RAD = 0.05  # rad between the headings a turn on the spot is checked at
SLIDE_CHECK_M = 0.02  # m between the poses a slide is checked at
FACE_MIN_M = 1.0  # m from the goal pose: nearer, the drive's own final heading matters more than the route's
FACE_TURN = 1.0  # rad/s, as the expert turns
RETURN_MAX_M = 0.5  # farther than this from the start pose, the base stays (a replan's drive is the way back)
RETURN_SPEED = 0.15  # m/s
RETURN_TURN = 0.5  # rad/s
RETURN_GAIN = 2.0  # 1/s
RETURN_TOL_M = 0.015
RETURN_TOL_RAD = 0.03


def look_point(scenario: Scenario, belief: Belief, skill: str, args: Sequence[str]) -> np.ndarray | None:
    """The world point the next subtask acts on, as believed: a handover's person, a place's
    surface or bin, else its first argument (the object to pick or look for, the drive's goal)."""
    target = args[1] if skill in ("handover", "place", "place_in") and len(args) > 1 else (args[0] if args else None)
    if target is None:
        return None
    if target in belief.objects:
        return np.asarray(belief.objects[target].position, float)
    if target in belief.people:
        person = belief.people[target]
        return np.asarray(person.hand, float) if person.hand is not None else np.array([*person.position, PERSON_LOOK_Z])
    furniture = scenario.furniture_by_id().get(target)
    if furniture is not None:
        return np.array([furniture.pos[0], furniture.pos[1], furniture.dims[2]])
    person = scenario.person_by_id().get(target)
    return np.asarray(person.hand_position(), float) if person is not None else None


def escape_route(scenario: Scenario, belief: Belief) -> list[np.ndarray]:
    """Waypoints (world xy) from the believed base pose out to a cell of the expert's occupancy
    grid with room for the robot, heading held (`policy.expert.clearance.escape_path` on the
    room as believed); empty when the base is on open floor already or there is no way out."""
    from policy.expert.clearance import escape_path
    from policy.expert.navigation import grid_for
    from policy.navigation_goal import believed_state

    state = believed_state(scenario, belief)
    x, y, yaw = belief.robot.pose
    path = escape_path(scenario, state, grid_for(scenario, state), np.array([x, y]), yaw)
    return [] if path is None else [np.asarray(p, float) for p in path[1:]]


def backtrack_route(scenario: Scenario, belief: Belief, trail: Sequence[Sequence[float]],
                    max_m: float = BACKTRACK_MAX_M) -> list[np.ndarray] | None:
    """Base poses (x, y, yaw), newest first, back along `trail` (a drive's believed poses, oldest
    first) to the most recent one on open floor in the expert's occupancy grid; [] when the base
    stands on open floor already; None when the trail does not get there within `max_m`."""
    from policy.expert.navigation import grid_for
    from policy.navigation_goal import believed_state

    state = believed_state(scenario, belief)
    grid = grid_for(scenario, state)
    last = np.asarray(belief.robot.pose, float)
    if grid.is_free(last[:2]):
        return []
    out: list[np.ndarray] = []
    length = 0.0
    for pose in reversed(trail):
        p = np.asarray(pose, float)
        step = float(np.linalg.norm(p[:2] - last[:2]))
        if step < BACKTRACK_STEP_M and abs(wrap(p[2] - last[2])) < BACKTRACK_STEP_RAD:
            continue
        length += step
        if length > max_m:
            return None
        out.append(p)
        last = p
        if grid.is_free(p[:2]):
            return out
    return None


def turn_clear(scenario: Scenario, state: Any, xy: np.ndarray, yaw_from: float, yaw_to: float,
               step: float = TURN_CHECK_RAD) -> bool:
    """Can the base turn on the spot at `xy` from `yaw_from` to `yaw_to` (the short way) without
    touching anything it is not touching already (the expert's body model)?"""
    from policy.expert.clearance import body_clearance

    turn = wrap(yaw_to - yaw_from)
    need = min(0.0, body_clearance(scenario, state, *xy, yaw_from) - 0.002)
    n = max(2, int(abs(turn) / step) + 1)
    return all(body_clearance(scenario, state, *xy, yaw_from + t * turn) >= need for t in np.linspace(0, 1, n)[1:])


def slide_clear(scenario: Scenario, state: Any, a: np.ndarray, b: np.ndarray, yaw_a: float, yaw_b: float,
                step: float = SLIDE_CHECK_M) -> bool:
    """Can the base slide from pose (`a`, `yaw_a`) to (`b`, `yaw_b`), its heading anywhere
    between the two on the way (checked at both), without coming nearer anything (the expert's
    body model) than it stands at those two poses, or touching anything it does not touch there?
    An approach pose at a table has the upper body over the table's edge by design (a clearance
    of -1.5 cm at the green box's), so a slide onto it must be allowed that close."""
    from policy.expert.clearance import body_clearance

    need = min(0.0, body_clearance(scenario, state, *a, yaw_a), body_clearance(scenario, state, *b, yaw_b)) - 0.002
    n = max(2, int(np.linalg.norm(b - a) / step) + 1)
    return all(body_clearance(scenario, state, *(a + t * (b - a)), y) >= need
               for t in np.linspace(0, 1, n)[1:] for y in {yaw_a, yaw_b})


def dock_route(scenario: Scenario, belief: Belief, skill: str, args: Sequence[str]) -> list[tuple[float, float, float]] | None:
    """The way (base poses, the last the approach pose) onto the approach pose a manipulation
    starts from, planned from the belief for the thing it acts at (a pick's object, a handover's
    person, a place's surface or bin), if the base stands within DOCK_MAX_M of it: straight there,
    turning on the way, when that slide is clear (`slide_clear`); else, when the
    base can turn on the spot to the pose's heading and slide from there, those two; else None.
    A learned drive to the bin ended 23 cm off its approach pose and facing 0.7 rad away from it
    (session 22, tidy seed 1): a slide at that heading swept the body into the bin, so the
    straight way was refused, but turning first leaves a straight slide."""
    from policy.navigation_goal import believed_state, plan_route

    target = args[1] if skill in ("handover", "place", "place_in") and len(args) > 1 else (args[0] if args else None)
    if target is None:
        return None
    state = believed_state(scenario, belief)
    route = plan_route(scenario, state, target)
    if route is None:
        return None
    here, goal, yaw = np.asarray(belief.robot.pose[:2], float), route.pose.xy, float(belief.robot.pose[2])
    pose = (float(goal[0]), float(goal[1]), float(route.pose.yaw))
    if np.linalg.norm(goal - here) > DOCK_MAX_M:
        return None
    if slide_clear(scenario, state, here, goal, yaw, route.pose.yaw):
        return [pose]
    if turn_clear(scenario, state, here, yaw, route.pose.yaw) and slide_clear(scenario, state, here, goal, route.pose.yaw, route.pose.yaw):
        return [(float(here[0]), float(here[1]), pose[2]), pose]
    return None


def route_heading(scenario: Scenario, belief: Belief, target: str) -> float | None:
    """The heading from the believed base to the point `LOOKAHEAD_M` along the route to `target`
    planned from the belief (`policy.navigation_goal.plan_route`); None without a route or within
    FACE_MIN_M of its goal pose."""
    from policy.navigation_goal import believed_state, plan_route

    route = plan_route(scenario, believed_state(scenario, belief), target)
    xy = np.asarray(belief.robot.pose[:2], float)
    if route is None or np.linalg.norm(route.pose.xy - xy) < FACE_MIN_M:
        return None
    ahead = route.waypoint(xy) - xy
    return float(math.atan2(ahead[1], ahead[0])) if np.linalg.norm(ahead) > 1e-6 else None


def held_objects(belief: Belief | None) -> dict[str, str]:
    """What each hand is believed to hold (side -> object id): an object at that hand whose
    `holding` is believed."""
    if belief is None:
        return {}
    return {o.at_hand: o.id for o in belief.objects.values() if o.at_hand is not None and belief.holds(f"holding({o.id})")[0]}


def held_sides(belief: Belief | None) -> set[str]:
    """Hands the robot believes hold something."""
    return set(held_objects(belief))


class PostureReset:
    """The reflex as a policy: `reset()`, `select_action(obs)`, `predict_action_chunk(obs)`, and
    `done` once the arms are home, the head is on the point and the base where it goes: for a
    manipulation with a `start_pose` back there, for a first one with `dock` and empty hands on
    its approach pose, for a drive out on open floor and facing its route (or `max_s` has passed).

    `hold_action` gives the action that changes nothing (the world's), the reflex's starting
    targets; `belief` the latest belief; `layout_slices` / `action_dim` the EE_POSE layout. The
    tree sets `start_pose` and `trail` (a failed drive's believed poses) before `reset()`."""

    name = "posture_reset"

    def __init__(self, layout_slices: Mapping[str, slice], action_dim: int, control_period: float,
                 hold_action: Callable[[], np.ndarray], belief: Callable[[], Belief | None],
                 scenario: Scenario, skill: str, args: Sequence[str], max_s: float = MAX_S, dock: bool = False) -> None:
        missing = [k for k in ("base", "head", *(f"{s}.{q}" for s in SIDES for q in ("pos", "rot", "gripper")))
                   if k not in layout_slices]
        if missing:
            raise ValueError(f"the posture reset drives end-effector targets; the action layout has no {', '.join(missing)}")
        self.slices = dict(layout_slices)
        self.action_dim = action_dim
        self.dt = control_period
        self.hold_action = hold_action
        self.belief = belief
        self.scenario = scenario
        self.skill = skill
        self.args = tuple(args)
        self.max_s = max_s
        self.start_pose: tuple[float, float, float] | None = None  # set by the tree before reset()
        self.trail: list[tuple[float, float, float]] = []  # a failed drive's believed poses, set by the tree before reset()
        self.dock = dock  # before a manipulation's first attempt, onto its approach pose (learned skills)
        self.cmd: Command | None = None
        self.held: set[str] = set()
        self.phase = "open"
        self.elapsed = 0.0
        self.done = False

    def reset(self) -> None:
        self.cmd = Command(self.slices, self.action_dim, self.dt, self.hold_action())
        self.held = held_sides(self.belief())
        self.phase = "open"
        self.elapsed = 0.0
        self.done = False
        self.escape: list[np.ndarray] | None = None  # poses (x, y, yaw) out to open floor (drives), planned once
        self.escaped_m = 0.0  # the length of that way out
        self.facing: float | None = None  # the heading the drive's route starts in, once out (None: no turn)
        self._faced = False
        self.docked: tuple[float, float, float] | None = None  # the approach pose it docks to, once planned
        self.dock_way: list[tuple[float, float, float]] = []  # the poses still to pass on the way there
        self.dock_m = 0.0  # how far it was to the approach pose
        self._dock_planned = False
        # rise at most LIFT_M, and not above the driving posture unless already there
        self._lift_to = {s: min(self.cmd.pos[s][2] + LIFT_M, max(self.cmd.pos[s][2], DRIVE_POS[s][2])) for s in SIDES}

    def select_action(self, obs: Mapping[str, Any] | None = None) -> np.ndarray:
        if self.cmd is None:
            self.reset()
        cmd = self.cmd
        assert cmd is not None
        cmd.base = np.zeros(3)
        head_ok = self._look()
        arms_ok = self._arms()
        self.elapsed += self.dt
        if arms_ok and self.phase == "home":
            self.phase = "return"
        if self.phase == "return":
            returned = self._escape() if self.skill in ESCAPE_SKILLS else self._return()
            if returned and head_ok:
                self.done = True
        if self.elapsed >= self.max_s - 1e-9:
            self.done = True
        return cmd.action()

    def predict_action_chunk(self, obs: Mapping[str, Any] | None = None) -> np.ndarray:
        """A chunk of one: the reflex is closed-loop on the belief, so it never plans further ahead
        (this is a step, like `select_action`)."""
        return self.select_action(obs)[None]

    # -- parts ---------------------------------------------------------------------------
    def _look(self) -> bool:
        """Turn the head towards the subtask's point; True once it is there (or nothing is known)."""
        belief = self.belief()
        point = look_point(self.scenario, belief, self.skill, self.args) if belief is not None else None
        if belief is None or point is None:
            return True
        assert self.cmd is not None
        pan, tilt = self.cmd.look_at(belief.robot.pose, point)
        goal = np.array([np.clip(pan, -PAN_LIMIT, PAN_LIMIT), np.clip(tilt, *TILT_RANGE)])
        return bool(np.all(np.abs(self.cmd.head - goal) < HEAD_TOL))

    def _return(self) -> bool:
        """One step of the drive back to `start_pose` (a retry), or onto the approach pose (a first
        attempt, with `dock`); True once there, or when there is nowhere to go."""
        belief = self.belief()
        if self.skill not in RETURN_SKILLS or belief is None:
            return True
        if self.start_pose is None:
            if not self.dock or (self.held and self.skill not in DOCK_HELD_SKILLS):
                return True
            if not self._dock_planned:
                self._dock_planned = True
                self.dock_way = dock_route(self.scenario, belief, self.skill, self.args) or []
                self.docked = self.dock_way[-1] if self.dock_way else None
                if self.docked is not None:
                    self.dock_m = float(math.hypot(self.docked[0] - belief.robot.pose[0], self.docked[1] - belief.robot.pose[1]))
            while self.dock_way and self._drive_to(belief, self.dock_way[0]):
                self.dock_way.pop(0)
            return not self.dock_way
        return self._drive_to(belief, self.start_pose)

    def _escape(self) -> bool:
        """One step of the way out to open floor (planned on the first call); True once out, or
        when the base stands on open floor already or there is no way out."""
        belief = self.belief()
        if belief is None:
            return True
        if self.escape is None:
            way = backtrack_route(self.scenario, belief, self.trail) if self.trail else None
            if way is None:  # no way back to retrace: out sideways or straight back, heading held
                yaw = float(belief.robot.pose[2])
                way = [np.array([*xy, yaw]) for xy in escape_route(self.scenario, belief)]
            self.escape = way
            points = [np.asarray(belief.robot.pose[:2], float), *(p[:2] for p in way)]
            self.escaped_m = float(sum(np.linalg.norm(b - a) for a, b in zip(points, points[1:])))
        while self.escape and self._drive_to(belief, self.escape[0], max_m=math.inf, speed=ESCAPE_SPEED, turn=ESCAPE_TURN,
                                             tol=(RETURN_TOL_M, RETURN_TOL_RAD) if len(self.escape) == 1 else (WAYPOINT_TOL_M, WAYPOINT_TOL_RAD)):
            self.escape.pop(0)
        if self.escape:
            return False
        if not self._faced:
            self._faced = True
            self._anchor = np.asarray(belief.robot.pose[:2], float)
            self.facing = route_heading(self.scenario, belief, self.args[0]) if self.args else None
        if self.facing is None:
            return True
        return self._drive_to(belief, (*self._anchor, self.facing), max_m=math.inf, turn=FACE_TURN)

    def _drive_to(self, belief: Belief, goal: Sequence[float], max_m: float = RETURN_MAX_M, speed: float = RETURN_SPEED,
                  turn: float = RETURN_TURN, tol: tuple[float, float] = (RETURN_TOL_M, RETURN_TOL_RAD)) -> bool:
        """One step towards a base pose (robot-frame velocity, proportional, capped); True once
        there, or when it is more than `max_m` away."""
        cmd = self.cmd
        assert cmd is not None
        x, y, yaw = belief.robot.pose
        gx, gy, gyaw = goal
        dx, dy = gx - x, gy - y
        dist = math.hypot(dx, dy)
        err = wrap(gyaw - yaw)
        if dist > max_m or (dist < tol[0] and abs(err) < tol[1]):
            cmd.base = np.zeros(3)
            return True
        c, s = math.cos(yaw), math.sin(yaw)
        v = RETURN_GAIN * np.array([c * dx + s * dy, -s * dx + c * dy])
        norm = float(np.linalg.norm(v))
        if norm > speed:
            v *= speed / norm
        cmd.base = np.array([v[0], v[1], float(np.clip(RETURN_GAIN * err, -turn, turn))])
        return False

    def _arms(self) -> bool:
        """One step of the open → lift → home sequence; True once every hand is home."""
        cmd = self.cmd
        assert cmd is not None
        empty = [s for s in SIDES if s not in self.held]
        for s in self.held:
            cmd.gripper(s, 1.0)
        if self.phase == "open":
            opened = all([cmd.gripper(s, 0.0) for s in empty])
            if opened:
                self.phase = "lift"
            return False
        if self.phase == "lift":
            risen = all([cmd.move(s, np.array([*cmd.pos[s][:2], self._lift_to[s]]), speed=HOME_SPEED)
                         if cmd.pos[s][2] < self._lift_to[s] - 1e-6 else True for s in empty])
            if risen:
                self.phase = "home"
            return False
        ok = all([cmd.move(s, DRIVE_POS[s], DRIVE_ROT, speed=HOME_SPEED) for s in empty])
        return all([cmd.move(s, CARRY_POS[s], cmd.rot[s], speed=CARRY_SPEED) for s in self.held]) and ok
