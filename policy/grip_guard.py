"""A held object stays held until a skill whose job is to let it go.

A skill's contract names what it changes: `navigate_to` and `look_for` move the robot, `pick`
takes an object; only a release (`handover`, `place`, `place_in`: the object held as a
precondition, elsewhere on success — `Subtask.releases`) lets one go. A learned policy does not
know that contract: in session 19's serves a learned drive opened the hand in its first
actions and dropped the cup it had just picked (seed 45); a pick, once its object is believed
held, is kept from letting it go the same way. `GripGuard` wraps any policy with LeRobot's methods and
keeps closed, in every action it returns, each gripper whose hand the robot believes holds an
object the subtask does not release — the interlock a real robot's skill executive has. It
reads the belief only (`policy.posture.held_objects`), never the simulator's ground truth.

A release lets go only over its release site (`ReleaseSite`): the hand that holds the object
opens once the hand is within `RELEASE_XY` of the point the release acts on, horizontally — a
handover's palm, a place's spot, a bin's rim (`policy.manipulation_target.believed_point`, the
point the learned policy is itself told). In session 19's serves a learned handover moved the
empty hand to the palm and opened the one holding the cup, away from it (seed 9): the cup fell
to the floor and the serve failed. Held, the attempt can time out and be retried.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from perception.belief import Belief
from policy.manipulation_target import believed_point
from policy.expert.geometry import to_world
from policy.posture import held_objects
from scenarios.robot import SIDES
from scenarios.schema import Scenario

CLOSED = 1.0  # the action's gripper command: 0 open ... 1 closed (force limited)
RELEASE_XY = 0.15  # m: a release opens the hand only this close, horizontally, to its site
HAND_NAMES = {side: (f"{side}.ee.x", f"{side}.ee.y") for side in SIDES}  # grasp site, base frame
ODOMETRY_NAMES = ("base.x", "base.y", "base.yaw")


class ReleaseSite:
    """Where a release subtask lets go, as believed, fixed when first known (as the learned
    policy's own target is); `reached(belief, state, side)` says whether that hand, from the
    robot's own state (odometry and the grasp site), is within `RELEASE_XY` of it horizontally."""

    def __init__(self, scenario: Scenario, skill: str, args: Sequence[str], state_names: Sequence[str],
                 radius: float = RELEASE_XY) -> None:
        from policy.expert.expert import validate_skill

        names = list(state_names)
        missing = [n for n in (*ODOMETRY_NAMES, *(n for pair in HAND_NAMES.values() for n in pair)) if n not in names]
        if missing:
            raise ValueError(f"a release site needs the hands' positions in observation.state; it has no {', '.join(missing)}")
        self.scenario, self.skill, self.radius = scenario, skill, float(radius)
        self.args = validate_skill(scenario, skill, list(args))
        self._odometry = [names.index(n) for n in ODOMETRY_NAMES]
        self._hands = {side: [names.index(n) for n in pair] for side, pair in HAND_NAMES.items()}
        self.point: np.ndarray | None = None

    def reached(self, belief: Belief | None, state: np.ndarray | None, side: str) -> bool:
        """True when the site is not known yet (nothing to judge by) or the hand is over it."""
        if self.point is None and belief is not None:
            self.point = believed_point(self.scenario, belief, self.skill, self.args)
        if self.point is None or state is None:
            return True
        state = np.asarray(state, float)
        hand = to_world(tuple(state[self._odometry]), state[self._hands[side]])
        return bool(np.hypot(*(hand - self.point[:2])) <= self.radius)


class GripGuard:
    """`policy` with the grippers of hands that hold what the subtask does not release kept closed,
    and, with a `site`, the hand that holds what it releases kept closed until it is over the site.

    `gripper_slices` maps a side ("left", "right") to its gripper entry in the action vector;
    `belief` returns perception's latest belief; `releases` are the objects this subtask may let go."""

    def __init__(self, policy: Any, gripper_slices: Mapping[str, slice], belief: Callable[[], Belief | None],
                 releases: Collection[str] = (), site: ReleaseSite | None = None) -> None:
        self.policy = policy
        self.gripper_slices = dict(gripper_slices)
        self._belief = belief
        self.releases = frozenset(releases)
        self.site = site
        self.closed_steps = 0  # actions in which the guard overrode an opening gripper (diagnostics)

    def __getattr__(self, name: str) -> Any:  # `failure`, `arrived`, ... of the wrapped policy, if it has them
        return getattr(self.__dict__["policy"], name)

    def _guard(self, actions: np.ndarray, obs: Mapping[str, Any]) -> np.ndarray:
        belief = self._belief()
        state = obs.get("observation.state")
        slices = [self.gripper_slices[side] for side, obj in held_objects(belief).items() if side in self.gripper_slices
                  and (obj not in self.releases or (self.site is not None and not self.site.reached(belief, state, side)))]
        if not slices:
            return actions
        out = np.array(actions, copy=True)
        if any(np.any(out[..., sl] < CLOSED) for sl in slices):
            self.closed_steps += 1
        for sl in slices:
            out[..., sl] = CLOSED
        return out

    def reset(self) -> None:
        self.policy.reset()

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        return self._guard(self.policy.select_action(obs), obs)

    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        return self._guard(self.policy.predict_action_chunk(obs), obs)


def with_grip_guard(factory: Callable[[Any], Any], world: Any, perception: Any) -> Callable[[Any], Any]:
    """`factory` (subtask -> policy) with every policy it makes wrapped in a `GripGuard` for its
    subtask's releases (`Subtask.releases`): the grippers from the world's action layout
    (`world.controller.layout`, `"left.gripper"`, ...), the release site from its scenario and its
    state's names. `factory` itself for a world without an action layout with grippers, or
    without a perception to read the belief from."""
    controller = getattr(world, "controller", None)
    slices = getattr(getattr(controller, "layout", None), "slices", {})
    grippers = {side: slices[f"{side}.gripper"] for side in SIDES if f"{side}.gripper" in slices}
    if perception is None or not grippers:
        return factory
    scenario = getattr(world, "scenario", None)
    state_names = controller.proprioception_names() if hasattr(controller, "proprioception_names") else ()

    def make(subtask: Any) -> GripGuard:
        releases = getattr(subtask, "releases", ())
        site = None
        if releases and scenario is not None and state_names:
            site = ReleaseSite(scenario, subtask.skill, subtask.args, state_names)
        return GripGuard(factory(subtask), grippers, lambda: perception.belief, releases, site)

    return make
