"""The reflexes every learned skill runs inside, composed once for every caller.

A learned skill never opens a hand that holds what it does not release (`policy.grip_guard`); a
pick that closes on a ball or a box short of its middle takes it again deeper (`policy.grasp_depth`); a drive
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


def with_safeguards(factory: Callable[[Any], Any], world: Any, perception: Any) -> Callable[[Any], Any]:
    """`factory` (subtask -> policy) with each policy it makes wrapped in the reflexes above; the
    grasp regrasp sits outside the grip guard, which would otherwise hold its opening shut."""
    return with_blocked_base(with_grasp_depth(with_grip_guard(factory, world, perception), world, perception), world, perception)
