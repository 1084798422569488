"""Wrapping the learned policies of skills that act on one of the scenario's objects, for the pick
reflexes (`policy.grasp_depth`, `policy.stalled_lift`): both need the action layout, the names of
`observation.state`'s entries and the object the subtask acts on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from scenarios.schema import SceneObject


def wrap_object_skills(factory: Callable[[Any], Any], world: Any, skills: Sequence[str],
                       wrap: Callable[[Any, SceneObject, Any, list[str]], Any]) -> Callable[[Any], Any]:
    """`factory` (subtask -> policy) with each policy it makes for one of `skills` acting on a
    scenario object replaced by `wrap(policy, object, layout, state_names)`; other subtasks
    unchanged, and `factory` itself for a world without an end-effector action layout (a test
    fake, a robot whose controller has none)."""
    controller = getattr(world, "controller", None)
    layout = getattr(controller, "layout", None)
    scenario = getattr(world, "scenario", None)
    if layout is None or scenario is None or "right.pos" not in layout.slices or not hasattr(controller, "proprioception_names"):
        return factory
    names = list(controller.proprioception_names())
    objects = {o.id: o for o in scenario.objects}

    def make(subtask: Any) -> Any:
        policy = factory(subtask)
        obj = objects.get(subtask.args[0]) if subtask.skill in skills and subtask.args else None
        return policy if obj is None else wrap(policy, obj, layout, names)

    return make
