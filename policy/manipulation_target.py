"""The target a learned manipulation is conditioned on: where the object is, or where it goes.

The learned pick, handover, place and place_in worked from the expert's own approach pose
and failed from a few centimetres off it (session 10: handover 6/6 on the pose, 0/4 off it):
a 64x80 image policy has to infer a 16 cm reach it has seen too few examples of. As with the
navigation goal (`policy.navigation_goal`), the policy is told the point instead. During
these skills `observation.environment_state` carries, after the navigation goal's entries:

    target.valid            1 during pick / handover / place / place_in, else every entry is 0
    target.x, .y, .z        the point, robot base frame (m): for pick the object's centre, for a
                            handover the person's palm, for place / place_in the spot where the
                            object's bottom goes (the expert's choice on a surface, the bin's rim)

The point is fixed in the world when the skill starts and re-expressed in the base frame at
every step, so driving or turning moves it as it would move in the cameras. In training it
is the point the expert acted on, kept with each episode (`episodes.jsonl`: `target`); at
run time it comes from perception's belief and the static map through the expert's own
choice of spot. Nothing here reads the simulator's ground truth at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np

from perception.belief import Belief
from policy.expert.geometry import to_base
from policy.expert.motion import CARRY_POS
from policy.expert.skills import Pick
from scenarios.ground_truth import PrivilegedState
from scenarios.schema import Scenario

TARGET_NAMES = ("target.valid", "target.x", "target.y", "target.z")
TARGET_DIM = len(TARGET_NAMES)
TARGET_SKILLS = ("pick", "handover", "place", "place_in")


HAND_STATE_NAMES = ("left.ee.x", "left.ee.y", "left.ee.z", "right.ee.x", "right.ee.y", "right.ee.z")


def hand_state_indices(state_names: list[str] | tuple[str, ...]) -> tuple[int, ...]:
    """Indices of the two hands' positions in `observation.state` (`VLAConfig.target_hand_state`);
    empty if the state does not name them."""
    names = list(state_names)
    return tuple(names.index(n) for n in HAND_STATE_NAMES) if all(n in names for n in HAND_STATE_NAMES) else ()


def encode(base: tuple[float, float, float] | np.ndarray, point: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """The target vector for a robot at `base` (world x, y, yaw) and a world `point` (x, y, z)."""
    p = to_base(tuple(base), np.asarray(point, float)[:3])
    return np.array([1.0, p[0], p[1], p[2]], dtype=np.float32)


def hindsight_targets(base_poses: np.ndarray, point: tuple[float, float, float] | list[float] | None) -> np.ndarray:
    """(N, TARGET_DIM) targets for one recorded episode from its base poses (N, 3) and the world
    point its expert acted on; all zero when the episode has none."""
    poses = np.asarray(base_poses, dtype=np.float64)
    out = np.zeros((len(poses), TARGET_DIM), np.float32)
    if point is None:
        return out
    for i, base in enumerate(poses):
        out[i] = encode(base, point)
    return out


def expert_point(skill: Any, object_at_start: np.ndarray | tuple[float, ...] | None) -> tuple[float, float, float] | None:
    """The world point a finished expert skill acted on, recorded with its episode: the object's
    centre when a pick started, or the spot a release chose last (after any lining-up)."""
    spot = getattr(skill, "spot", None)
    if spot is not None:
        return tuple(float(v) for v in np.asarray(spot)[:3])  # type: ignore[return-value]
    if isinstance(skill, Pick) and object_at_start is not None:
        return tuple(float(v) for v in np.asarray(object_at_start)[:3])  # type: ignore[return-value]
    return None


def _release_spot(scenario: Scenario, state: PrivilegedState, skill: str, args: Mapping[str, str]) -> np.ndarray | None:
    """Where the expert would set the held object down, from `state` (the believed room): the
    spot it chooses from the approach pose it would first line up at, if out of its window here."""
    from policy.expert.expert import make_skill
    from policy.expert.skills import Context
    from policy.expert.targets import approaches

    release = make_skill(skill, dict(args))
    held = [s for s, o in state.robot.holding.items() if o == release.obj]
    release.side = held[0] if held else "left"

    def context(base: tuple[float, float, float]) -> Context:
        st = state.model_copy(update={"robot": state.robot.model_copy(update={"base": base})})
        cmd = SimpleNamespace(pos={s: CARRY_POS[s].copy() for s in CARRY_POS})
        return Context(scenario=scenario, state=st, ee={}, opening={}, cmd=cmd, dt=0.05, visible=lambda: ())  # type: ignore[arg-type]

    ctx = context(tuple(state.robot.base))
    release.spot = release._choose_spot(ctx)
    if release.spot is None or release._window_ok(ctx):
        return release.spot
    cands = approaches(scenario, state, release.target, release.side)
    if not cands:
        return release.spot
    pose = cands[0][1]
    return release._choose_spot(context((pose.x, pose.y, pose.yaw)))


def believed_point(scenario: Scenario, belief: Belief, skill: str, args: Mapping[str, str]) -> np.ndarray | None:
    """The world point for `skill(args)` as the robot believes the room; None if not known yet."""
    if skill == "pick":
        ob = belief.objects.get(args["object"])
        return np.asarray(ob.position, float) if ob is not None else None
    if skill == "handover":
        person = belief.people.get(args["person"])
        if person is not None and person.hand is not None:
            return np.asarray(person.hand, float)
        known = {p.id: p for p in scenario.people}.get(args["person"])
        return np.asarray(known.hand_position(), float) if known is not None else None
    if skill in ("place", "place_in"):
        from policy.navigation_goal import believed_state

        if args["object"] not in belief.objects:
            return None
        return _release_spot(scenario, believed_state(scenario, belief), skill, args)
    return None


class ManipulationTarget:
    """The target vector for one manipulation subtask: fixed in the world at its first
    believed value, then re-expressed in the robot's believed base frame every step."""

    def __init__(self, scenario: Scenario, skill: str, args: Mapping[str, str]) -> None:
        self.scenario = scenario
        self.skill = skill
        self.args = dict(args)
        self.point: np.ndarray | None = None

    def observation(self, belief: Belief | None) -> np.ndarray:
        """TARGET_DIM values; all zero until the point is known."""
        if belief is None:
            return np.zeros(TARGET_DIM, np.float32)
        if self.point is None:
            self.point = believed_point(self.scenario, belief, self.skill, self.args)
        if self.point is None:
            return np.zeros(TARGET_DIM, np.float32)
        return encode(belief.robot.pose, self.point)
