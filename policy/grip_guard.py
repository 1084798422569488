"""A held object stays held until a skill whose job is to let it go.

A skill's contract names what it changes: `navigate_to` and `look_for` move the robot, `pick`
takes an object; only a release (`handover`, `place`, `place_in`: the object held as a
precondition, elsewhere on success — `Subtask.releases`) lets one go. A learned policy does not
know that contract: in session 19's serves a learned drive opened the hand in its first
actions and dropped the cup it had just picked (seed 45), and a learned pick still acting after
its grasp was believed can do the same. `GripGuard` wraps any policy with LeRobot's methods and
keeps closed, in every action it returns, each gripper whose hand the robot believes holds an
object the subtask does not release — the interlock a real robot's skill executive has. It
reads the belief only (`policy.posture.held_sides`), never the simulator's ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

from perception.belief import Belief
from policy.posture import held_sides
from scenarios.robot import SIDES

CLOSED = 1.0  # the action's gripper command: 0 open ... 1 closed (force limited)


class GripGuard:
    """`policy` with the grippers of hands that hold what the subtask does not release kept closed.

    `gripper_slices` maps a side ("left", "right") to its gripper entry in the action vector;
    `belief` returns perception's latest belief; `releases` are the objects this subtask may let go."""

    def __init__(self, policy: Any, gripper_slices: Mapping[str, slice], belief: Callable[[], Belief | None],
                 releases: Collection[str] = ()) -> None:
        self.policy = policy
        self.gripper_slices = dict(gripper_slices)
        self._belief = belief
        self.releases = frozenset(releases)
        self.closed_steps = 0  # actions in which the guard overrode an opening gripper (diagnostics)

    def __getattr__(self, name: str) -> Any:  # `failure`, `arrived`, ... of the wrapped policy, if it has them
        return getattr(self.__dict__["policy"], name)

    def _guard(self, actions: np.ndarray) -> np.ndarray:
        sides = held_sides(self._belief(), besides=self.releases)
        if not sides:
            return actions
        out = np.array(actions, copy=True)
        for side in sides:
            sl = self.gripper_slices.get(side)
            if sl is None:
                continue
            grip = out[..., sl]
            if np.any(grip < CLOSED):
                self.closed_steps += 1
            out[..., sl] = CLOSED
        return out

    def reset(self) -> None:
        self.policy.reset()

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        return self._guard(self.policy.select_action(obs))

    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        return self._guard(self.policy.predict_action_chunk(obs))


def with_grip_guard(factory: Callable[[Any], Any], layout_slices: Mapping[str, slice],
                    perception: Any) -> Callable[[Any], Any]:
    """`factory` (subtask -> policy) with every policy it makes wrapped in a `GripGuard` for its
    subtask's releases (`Subtask.releases`), the grippers found in the action layout's slices
    (`"left.gripper"`, ...); `factory` itself without a perception to read the belief from."""
    grippers = {side: layout_slices[f"{side}.gripper"] for side in SIDES if f"{side}.gripper" in layout_slices}
    if perception is None or not grippers:
        return factory
    return lambda subtask: GripGuard(factory(subtask), grippers, lambda: perception.belief, subtask.releases)
