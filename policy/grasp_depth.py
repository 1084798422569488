"""A learned pick that closes on a ball past its middle, or on a box short of its centre, takes it
again, deeper.

Flat pads hold a sphere only while its centre lies within their faces: the learned pick often
closes with the hand a few centimetres short along its approach, so the pads' tip edges pinch the
ball past its middle, and squeezing, gravity and the arm's swing over the bin push it out
through the tips. Measured (session 21, tidy seed 3): held 4.0 cm past the grasp site along the
approach, where the pads reach 2.2 cm (`PAD_HALF_LENGTH`), the opening 6.0 cm on a 7.0 cm ball;
it stayed 4 s, then popped out of the closed hand as the arm lifted it over the bin. In that
session's 20 VLA tidy runs 18 of the 22 learned picks of the ball closed short (openings 4.7-5.3 cm).

The opening alone says how deep the grasp is: pad edges at `PAD_HALF_LENGTH` along the approach
closing on a sphere of radius r at an opening w hold it with its centre
`PAD_HALF_LENGTH + sqrt(r^2 - (w/2)^2)` beyond the grasp site, while a sphere held on the
faces keeps the opening at its diameter. `GraspDepth` wraps a learned pick (LeRobot's methods):
once a hand the policy closes has stopped closing on something narrower than the ball by more
than `SHALLOW_M`, it takes that arm over — opens, moves the hand along its approach until the
grasp site is at the ball's centre, closes — then gives the arm back (`reset`: a fresh action
queue). It reads proprioception (the opening, the grasp site's pose) and the object's size
from the scenario, the robot's own model of what it picks; never the simulator's state.

A box says nothing through the opening (its faces are flat, so any depth gives its width), and
the learned pick closes on it short too: in session 22's tidy seed 4 the green box rode 4.4 cm
beyond the grasp site, its near face barely between the pad tips, crept out along the approach
while the drive to the bin turned, and fell beside the bin. For a box the depth comes from what
the robot sees instead: the object's believed centre (camera perception, which had it within
3 mm of the truth at the learned picks probed) against the grasp site, along the approach. The
expert closes with the box's centre on the site; a learned grasp more than `BOX_SHALLOW_M` short
of that is taken again the same way, opened `OPEN_MARGIN_M` wider than it had closed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mujoco
import numpy as np

from perception.belief import Belief
from policy.expert.geometry import to_base
from policy.expert.motion import Command
from policy.object_skills import wrap_object_skills
from scenarios.catalog import CATEGORIES
from scenarios.robot import GRIPPER_MAX_OPENING, PAD_HALF_LENGTH, SIDES
from scenarios.schema import SceneObject

SHALLOW_M = 0.003  # opening this much narrower than the ball: held past its middle (tips 1 cm past the centre)
CLOSED_CMD = 0.5  # a gripper command at least this is closing
EMPTY_M = 0.01  # an opening below this closed on nothing
STILL_M = 0.001  # the opening moved less than this ...
STILL_S = 0.3  # ... for this long: the fingers have stopped on the object
LIFTED_M = 0.02  # the hand already this far from where it began closing: the ball is off the table, let it be
OPEN_MARGIN_M = 0.02  # the regrasp opens to the ball's diameter plus this
DEPTH_MARGIN_M = 0.003  # ... and moves the site this much short of the ball's centre (pad tips clear the table)
MOVE_SPEED = 0.1  # m/s along the approach
PHASE_MAX_S = 1.5  # each regrasp phase ends after this long wherever the hand is
CLOSE_S = 0.6  # s the closing gets before the arm goes back to the policy
MAX_REGRASPS = 1  # per attempt
BOX_SHALLOW_M = 0.02  # a box's believed centre this far beyond the grasp site: held on its near edge
ACROSS_MAX_M = 0.02  # ... and within this of the pads' midplane, or the belief is not about what is between them


def sphere_depth(opening: float, radius: float) -> float:
    """How far beyond the grasp site, along the approach, the centre of a sphere of `radius`
    held at `opening` lies (pad edges at `PAD_HALF_LENGTH`); `PAD_HALF_LENGTH` or less means on
    the faces (the opening is the diameter there, so the depth is not known beyond that)."""
    half = min(max(opening, 0.0) / 2.0, radius)
    return PAD_HALF_LENGTH + math.sqrt(radius * radius - half * half)


def quat_frame(q: Sequence[float]) -> np.ndarray:
    """The rotation matrix of quaternion (w, x, y, z): for the grasp site, its columns are the
    approach (x), the fingers' closing axis (y) and the third axis (z)."""
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(q, dtype=np.float64))
    return mat.reshape(3, 3)


def quat_x_axis(q: Sequence[float]) -> np.ndarray:
    """The x axis (the grasp site's approach) of the rotation given by quaternion (w, x, y, z)."""
    return quat_frame(q)[:, 0]


class SphereDepth:
    """How deep a settled grasp holds a sphere of `radius`, from the opening alone."""

    def __init__(self, radius: float) -> None:
        self.radius = float(radius)

    def __call__(self, opening: float, site: np.ndarray, frame: np.ndarray) -> tuple[float, float] | None:
        """(depth to move, width to open to), or None when the grasp is deep enough."""
        if opening > 2 * self.radius - SHALLOW_M:
            return None
        wide = min(2 * self.radius + OPEN_MARGIN_M, GRIPPER_MAX_OPENING)
        return sphere_depth(opening, self.radius) - DEPTH_MARGIN_M, wide


class BelievedDepth:
    """How deep a settled grasp holds an object, from its believed centre: `belief()` the latest
    belief, `object_id` the picked object; the grasp site and its frame in the base frame. A
    centre believed off the line between the pads (along the closing axis) is not what they hold."""

    def __init__(self, belief: Callable[[], Belief | None], object_id: str) -> None:
        self.belief, self.object_id = belief, object_id

    def __call__(self, opening: float, site: np.ndarray, frame: np.ndarray) -> tuple[float, float] | None:
        belief = self.belief()
        seen = belief.objects.get(self.object_id) if belief is not None else None
        if seen is None:
            return None
        offset = to_base(tuple(belief.robot.pose), np.asarray(seen.position, float)) - site
        depth, across = float(offset @ frame[:, 0]), float(offset @ frame[:, 1])
        if depth < BOX_SHALLOW_M or abs(across) > ACROSS_MAX_M:
            return None
        return depth - DEPTH_MARGIN_M, min(opening + OPEN_MARGIN_M, GRIPPER_MAX_OPENING)


DepthEstimate = Callable[[float, np.ndarray, np.ndarray], "tuple[float, float] | None"]


class GraspDepth:
    """`policy` with a shallow grasp taken again deeper (see the module docstring).

    `depth` says, for a grasp that has settled (its opening, the grasp site and its frame, both
    in the base frame: `quat_frame`), how far to move the hand and how wide to open, or None: `SphereDepth`,
    `BelievedDepth`. `slices` is the action layout's (`"{side}.pos"`, `"{side}.gripper"`,
    `"base"`, ...); `state_names` name `observation.state`'s entries; `dt` is the control
    period. `regrasps` counts the regrasps made (diagnostics)."""

    def __init__(self, policy: Any, depth: DepthEstimate, slices: Mapping[str, slice], action_dim: int,
                 state_names: Sequence[str], dt: float) -> None:
        self.policy = policy
        self.depth = depth
        self.slices = dict(slices)
        self.action_dim = int(action_dim)
        self.dt = float(dt)
        names = list(state_names)
        self._opening = {s: names.index(f"{s}.gripper_opening") for s in SIDES}
        self._site = {s: [names.index(f"{s}.ee.{c}") for c in ("x", "y", "z")] for s in SIDES}
        self._quat = {s: [names.index(f"{s}.ee.{c}") for c in ("qw", "qx", "qy", "qz")] for s in SIDES}
        self.regrasps = 0
        self.depth_m = 0.0  # how far the last regrasp moved the hand along its approach
        self.opening_m = 0.0  # the opening the shallow grasp had closed to
        self.reset_watch()

    def __getattr__(self, name: str) -> Any:  # `failure`, `done`, ... of the wrapped policy
        return getattr(self.__dict__["policy"], name)

    def reset_watch(self) -> None:
        self._history: dict[str, list[float]] = {s: [] for s in SIDES}  # openings while commanded closed
        self._closed_at: dict[str, np.ndarray] = {}  # the grasp site where each hand began closing
        self._judged: set[str] = set()
        self._takeover: dict[str, Any] | None = None

    def reset(self) -> None:
        self.policy.reset()
        self.regrasps = 0
        self.reset_watch()

    def _shallow(self, side: str, action: np.ndarray, state: np.ndarray) -> tuple[float, float] | None:
        """(depth, width) to take `side`'s grasp again with, if it has just settled short."""
        closing = float(action[self.slices[f"{side}.gripper"]][0]) >= CLOSED_CMD
        history = self._history[side]
        if not closing or side in self._judged:
            history.clear()
            self._closed_at.pop(side, None)
            return None
        history.append(float(state[self._opening[side]]))
        site = state[self._site[side]]
        start = self._closed_at.setdefault(side, site.copy())
        window = max(2, int(round(STILL_S / self.dt)) + 1)
        if len(history) < window or max(history[-window:]) - min(history[-window:]) > STILL_M:
            return None
        self._judged.add(side)  # judged once per attempt: the first closing that settles
        opening = history[-1]
        if opening < EMPTY_M or np.linalg.norm(site - start) > LIFTED_M:
            return None
        return self.depth(opening, site.astype(np.float64), quat_frame(state[self._quat[side]]))

    def _begin(self, side: str, depth: float, wide: float, action: np.ndarray, state: np.ndarray) -> None:
        self.opening_m = float(state[self._opening[side]])
        cmd = Command(self.slices, self.action_dim, self.dt, action)
        site = state[self._site[side]].astype(np.float64)
        cmd.pos[side] = site.copy()  # hold where the hand is, not where the policy was taking it
        goal = site + quat_x_axis(state[self._quat[side]]) * depth
        self._takeover = {"side": side, "cmd": cmd, "goal": goal, "wide": wide, "phase": "open", "t": 0.0}
        self.regrasps += 1
        self.depth_m = float(depth)

    def _step(self, state: np.ndarray) -> np.ndarray | None:
        """The takeover's next action, or None once it has given the arm back."""
        t = self._takeover
        assert t is not None
        side, cmd = t["side"], t["cmd"]
        t["t"] += self.dt
        if t["phase"] == "open":
            wide = t["wide"]
            cmd.gripper(side, 1.0 - wide / GRIPPER_MAX_OPENING)
            if float(state[self._opening[side]]) >= wide - 0.005 or t["t"] >= PHASE_MAX_S:
                t["phase"], t["t"] = "deepen", 0.0
        elif t["phase"] == "deepen":
            there = cmd.move(side, t["goal"], speed=MOVE_SPEED)
            if (there and t["t"] >= 0.2) or t["t"] >= PHASE_MAX_S:
                t["phase"], t["t"] = "close", 0.0
        elif t["phase"] == "close":
            cmd.gripper(side, 1.0)
            if t["t"] >= CLOSE_S:
                self._takeover = None
                self.policy.reset()  # the queued chunk was for a hand that has moved
                return None
        return cmd.action()

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        state = np.asarray(obs["observation.state"], dtype=np.float64)
        if self._takeover is not None:
            action = self._step(state)
            if action is not None:
                return action
        action = np.asarray(self.policy.select_action(obs))
        if self.regrasps < MAX_REGRASPS and self._takeover is None:
            for side in SIDES:
                shallow = self._shallow(side, action, state)
                if shallow is not None:
                    self._begin(side, *shallow, action, state)
                    return self._step(state)
        return action

    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        """Chunks pass through unwatched: the takeover acts tick by tick (`select_action`)."""
        return self.policy.predict_action_chunk(obs)


def with_grasp_depth(factory: Callable[[Any], Any], world: Any, perception: Any = None,
                     skills: Sequence[str] = ("pick",)) -> Callable[[Any], Any]:
    """`factory` (subtask -> policy) with its picks of spheres (`SphereDepth`: the radius from
    the world's scenario, the category's or the object's own size) and, given a `perception` to
    read the belief from, of boxes (`BelievedDepth`) wrapped in `GraspDepth`, the action layout
    and state names from the world's controller; other subtasks unchanged, and `factory` itself
    for a world without an end-effector action layout."""

    def wrap(policy: Any, obj: SceneObject, layout: Any, names: list[str]) -> Any:
        category = CATEGORIES.get(obj.category)
        if category is not None and category.shape == "sphere":
            depth: DepthEstimate = SphereDepth((obj.size or category.size)[0])
        elif category is not None and category.shape == "box" and perception is not None:
            depth = BelievedDepth(lambda: perception.belief, obj.id)
        else:
            return policy
        return GraspDepth(policy, depth, layout.slices, layout.dim, names, world.control_period)

    return wrap_object_skills(factory, world, skills, wrap)
