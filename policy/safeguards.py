"""The reflexes every learned skill runs inside, composed once for every caller.

A learned skill never opens a hand that holds what it does not release (`policy.grip_guard`); a
pick that closes on a ball or a box short of its middle takes it again deeper (`policy.grasp_depth`); a
pick that has closed on its object and does not lift it has it lifted (`policy.stalled_lift`); a drive
whose base is commanded but does not move ends its attempt (`policy.blocked_base`). `vla-agent
run`, `eval`, the service (`agent.session`) and the skill-by-skill evaluation
(`policy.closed_loop`) all wrap their learned policies here, so they measure the same robot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policy.blocked_base import with_blocked_base
from policy.grasp_depth import with_grasp_depth
from policy.grip_guard import with_grip_guard
from policy.stalled_lift import with_stalled_lift


def with_safeguards(factory: Callable[[Any], Any], world: Any, perception: Any) -> Callable[[Any], Any]:
    """`factory` (subtask -> policy) with each policy it makes wrapped in the reflexes above; the
    grasp regrasp sits outside the grip guard, which would otherwise hold its opening shut, and the
    lift outside the regrasp, so it watches the grasp the regrasp made."""
    guarded = with_grasp_depth(with_grip_guard(factory, world, perception), world, perception)
    return with_blocked_base(with_stalled_lift(guarded, world, perception), world, perception)
