"""A learned pick that has closed on its object and does not lift it: the hand lifts it.

Measured (session 23, `vla-agent policy eval --policy vla --skills pick -n 50`): of the 200 learned
picks, 31 failed, and in the kitchen 9 of the 16 picks of the yellow box timed out with the box
between the closed fingers on the table: the policy had closed, then commanded the hand's
height up by 0.3 mm a second for the rest of its 30 s (kitchen seed 100020: the box rose 4 mm;
seed 100009: 1.3 cm). Perception's `holding` needs the object off what it stood on
(`perception.tracking.SUPPORT_GAP`, 2.5 cm), as a finished pick is, so the pick never ended. The
expert lifts 1 s after it closes (`policy.expert.skills`, `GRIP_WAIT`).

`StalledLift` wraps a learned pick (LeRobot's methods): once a hand the policy commands closed
has stopped closing on its object (its opening still for `STILL_S`, between `EMPTY_M` and the widest
opening that holds the object, `perception.tracking.grip_range`) and has
not risen `RISEN_M` within `WAIT_S` of that, it takes that arm over: the gripper stays closed
and the hand rises straight up by `LIFT_M` (less under a shelf's board: to `HEADROOM_M` below the
surface above the object as believed, as the expert does), holds there `HOLD_S` so perception can
see the lift, then gives the arm back (`reset`: a fresh action queue). Once per attempt. It reads
proprioception, its own actions, the belief (where the object is) and the static map (the room
as the robot knows it), never the simulator's state.

A grasp wider than the object's grip range has the pads on a box's edges or corners, not across
its faces (tidy seed 100049: 8.6-9.2 cm on the green box, whose faces are 6 and 8 cm apart): lifted,
it swung out of the hand when the policy took the arm back and fell off the table, where the
policy left alone took the box again and picked it. Such a grasp is not lifted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from perception.belief import Belief
from perception.tracking import grip_range
from policy.expert.motion import Command
from policy.grasp_depth import CLOSED_CMD, EMPTY_M, STILL_M, STILL_S  # what a settled grasp is, as the regrasp judges it
from policy.object_skills import wrap_object_skills
from scenarios.catalog import CATEGORIES
from scenarios.robot import GRIPPER_MAX_OPENING, SIDES
from scenarios.schema import SceneObject

WAIT_S = 1.5  # s the policy has to lift after the fingers stop (the expert waits 1.0 s)
RISEN_M = 0.02  # the hand rose this much since the fingers stopped: the policy is lifting
LIFT_M = 0.08  # how far the hand rises (the expert lifts 0.10 m)
HEADROOM_M = 0.045  # under a surface above the object, its top stays this far below it (the expert's margin)
MIN_LIFT_M = 0.03  # never less than this: perception's `holding` needs 2.5 cm
LIFT_SPEED = 0.1  # m/s (the expert lifts at 0.12)
LIFT_MAX_S = 1.5  # the lift ends after this long wherever the hand is
HOLD_S = 0.6  # s held at the top before the arm goes back to the policy


class StalledLift:
    """`policy` with a closed grasp that does not rise lifted (see the module docstring).

    `headroom()` returns how far the hand may rise, given the believed object and the static map
    (`with_stalled_lift` builds it); `widest` is the widest opening that holds the object; `slices`
    is the action layout's, `state_names` name `observation.state`'s entries, `dt` is the control
    period. `lifts` counts the lifts made and `lift_m` the last one's height (diagnostics)."""

    def __init__(self, policy: Any, slices: Mapping[str, slice], action_dim: int, state_names: Sequence[str], dt: float,
                 headroom: Callable[[], float] | None = None, widest: float = GRIPPER_MAX_OPENING) -> None:
        self.policy = policy
        self.widest = float(widest)
        self.slices = dict(slices)
        self.action_dim = int(action_dim)
        self.dt = float(dt)
        self.headroom = headroom or (lambda: LIFT_M)
        names = list(state_names)
        self._opening = {s: names.index(f"{s}.gripper_opening") for s in SIDES}
        self._site = {s: [names.index(f"{s}.ee.{c}") for c in ("x", "y", "z")] for s in SIDES}
        self.lifts = 0
        self.lift_m = 0.0
        self._watch()

    def __getattr__(self, name: str) -> Any:  # `failure`, `done`, `regrasps`, ... of the wrapped policy
        return getattr(self.__dict__["policy"], name)

    def _watch(self) -> None:
        self._history: dict[str, list[float]] = {s: [] for s in SIDES}  # openings while commanded closed
        self._settled: dict[str, tuple[float, float]] = {}  # side -> (time the fingers stopped, site height then)
        self._time = 0.0
        self._takeover: dict[str, Any] | None = None

    def reset(self) -> None:
        self.policy.reset()
        self.lifts = 0
        self._watch()

    def _stalled(self, side: str, action: np.ndarray, state: np.ndarray) -> bool:
        """Whether `side` has held a settled grasp for WAIT_S without rising RISEN_M."""
        history = self._history[side]
        if float(action[self.slices[f"{side}.gripper"]][0]) < CLOSED_CMD:
            history.clear()
            self._settled.pop(side, None)
            return False
        opening, z = float(state[self._opening[side]]), float(state[self._site[side][2]])
        if side not in self._settled:
            history.append(opening)
            window = max(2, int(round(STILL_S / self.dt)) + 1)
            if len(history) >= window and max(history[-window:]) - min(history[-window:]) <= STILL_M and EMPTY_M <= opening <= self.widest:
                self._settled[side] = (self._time, z)
            return False
        since, z0 = self._settled[side]
        if opening < EMPTY_M or z - z0 >= RISEN_M:
            return False  # let go of it, or lifting it: the policy's own
        return self._time - since >= WAIT_S

    def _begin(self, side: str, action: np.ndarray, state: np.ndarray) -> None:
        cmd = Command(self.slices, self.action_dim, self.dt, action)
        site = state[self._site[side]].astype(np.float64)
        cmd.pos[side] = site.copy()  # from where the hand is, not where the policy was taking it
        cmd.grip[side] = 1.0
        self.lift_m = float(np.clip(self.headroom(), MIN_LIFT_M, LIFT_M))
        self._takeover = {"side": side, "cmd": cmd, "goal": site + (0.0, 0.0, self.lift_m), "phase": "lift", "t": 0.0}
        self.lifts += 1

    def _step(self) -> np.ndarray | None:
        """The takeover's next action, or None once it has given the arm back."""
        t = self._takeover
        assert t is not None
        side, cmd = t["side"], t["cmd"]
        t["t"] += self.dt
        cmd.gripper(side, 1.0)
        if t["phase"] == "lift":
            if cmd.move(side, t["goal"], speed=LIFT_SPEED) or t["t"] >= LIFT_MAX_S:
                t["phase"], t["t"] = "hold", 0.0
        elif t["t"] >= HOLD_S:
            self._takeover = None
            self._settled.clear()
            self.policy.reset()  # the queued chunk was for a hand that has moved
            return None
        return cmd.action()

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        self._time += self.dt
        if self._takeover is not None:
            action = self._step()
            if action is not None:
                return action
        state = np.asarray(obs["observation.state"], dtype=np.float64)
        action = np.asarray(self.policy.select_action(obs))
        if self.lifts == 0 and self._takeover is None:
            for side in SIDES:
                if self._stalled(side, action, state):
                    self._begin(side, action, state)
                    return self._step()
        return action

    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        """Chunks pass through unwatched: the takeover acts tick by tick (`select_action`)."""
        return self.policy.predict_action_chunk(obs)


def believed_headroom(perception: Any, object_id: str, category: str) -> Callable[[], float]:
    """How far a hand holding `object_id` may rise: LIFT_M, or less where a surface of the static
    map lies above the object's believed top (a shelf's next board), HEADROOM_M below it."""

    def headroom() -> float:
        belief: Belief | None = getattr(perception, "belief", None)
        seen = belief.objects.get(object_id) if belief is not None else None
        static = getattr(perception, "static", None)
        if seen is None or static is None:
            return LIFT_M
        pos = np.asarray(seen.position, dtype=float)
        top = float(pos[2]) + CATEGORIES[category].height() / 2
        above = [s.z for s in static.surfaces if s.z > top + 0.005 and s.contains(pos[:2])]
        return min([LIFT_M, *(z - HEADROOM_M - top for z in above)])

    return headroom


def with_stalled_lift(factory: Callable[[Any], Any], world: Any, perception: Any = None,
                      skills: Sequence[str] = ("pick",)) -> Callable[[Any], Any]:
    """`factory` (subtask -> policy) with its picks wrapped in `StalledLift`, the action layout
    and state names from the world's controller, the widest grasp from the object's category and
    the headroom from `perception`'s belief and static map (LIFT_M without one); other subtasks
    unchanged, and `factory` itself for a world without an end-effector action layout."""

    def wrap(policy: Any, obj: SceneObject, layout: Any, names: list[str]) -> StalledLift:
        headroom = believed_headroom(perception, obj.id, obj.category) if perception is not None else None
        return StalledLift(policy, layout.slices, layout.dim, names, world.control_period, headroom, grip_range(obj.category)[1])

    return wrap_object_skills(factory, world, skills, wrap)
