"""Repairing a plan after a failure: from the new belief, skip what holds, redo what failed.

The executor reports which subtask failed and why; perception reports the belief now. The
repaired graph keeps the original method and its grounded slots (the goal's words are not
re-read: "the cup to my left" meant red_cup at planning time, whatever moved since), expands
them again and keeps, per chain, only the shortest tail that still reaches the goal from
what the belief now holds: if the cup is already in hand, the chain restarts at driving to
the person; if the cup fell, it restarts at looking for it. A manipulation that failed while
the robot was believed near its target (a place into the bin behind the robot, a pick at the
edge of reach) is repaired with its drive kept (`approach_first`): `near` held, yet the drive's
approach pose is what puts the target in front and in reach. With `reground`, a slot that
takes every candidate by default (tidy's objects: everything on the table) is grounded again
from the belief and keeps what it had: an object hidden when the goal was planned and seen
since joins the plan, which is how the executor checks a finished plan against the goal.
The reason and the history of repairs travel in the graph's attributes.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from perception.belief import Belief
from planner.library import Library, default_library
from planner.planning import _scenario, build
from planner.results import CannotPlan, Outcome, PlanningError, PlanResult
from planner.scene import Scene
from scenarios.schema import Scenario

log = structlog.get_logger(__name__)
MAX_REPAIRS = 3
"""Repairs after failures of the same subtask (skill and arguments) before giving up."""


def replan(
    previous: PlanResult,
    belief: Belief,
    scenario: Scenario | str | Path,
    *,
    failed: str | None = None,
    reason: str = "",
    library: Library | None = None,
    max_repairs: int = MAX_REPAIRS,
    reground: bool = False,
) -> Outcome:
    """A repaired PlanResult (reason recorded), or a PlanningError saying why not.

    `failed` is the id of the subtask that failed in `previous.graph` (None if the plan was
    interrupted for another reason); `reason` is the executor's explanation.
    """
    goal = previous.goal
    try:
        lib = library or default_library()
        method = lib.methods.get(previous.method)
        if method is None:
            raise CannotPlan("bad_scene", f"the plan's method {previous.method!r} is not in the library")
        scene = Scene(_scenario(scenario), belief)
        history = list(previous.graph.attrs.get("history", []))
        failures = dict(previous.graph.attrs.get("failures", {}))
        approach_first = bool(previous.graph.attrs.get("approach_first", False))
        if failed is not None:
            if failed not in previous.graph:
                raise CannotPlan("bad_scene", f"{failed!r} is not a subtask of the plan (subtasks: {', '.join(s.id for s in previous.graph.order())})")
            label = previous.graph[failed].label
            failures[label] = failures.get(label, 0) + 1
            why = f"{failed} {label} failed" + (f": {reason}" if reason else "")
            if failures[label] > max_repairs:
                raise CannotPlan("impossible", f"{label} failed {failures[label]} times; giving up after {max_repairs} repairs (last: {reason or 'no reason given'})")
            approach_first = approach_first or any(p.name == "near" and not p.negated for p in previous.graph[failed].preconditions)
        else:
            why = reason or "replanned from the current belief"
        history.append(why)
        bindings = {k: list(v) for k, v in previous.bindings.items()}
        if reground:
            bindings = _regrounded(previous, bindings, method, belief, scenario, lib)
        result = build(goal, method, previous.confidence, bindings, scene, lib, reason=why, history=history,
                       approach_first=approach_first)
        result.graph.attrs["failures"] = failures
        log.info("planner.replan", goal=goal, reason=why, subtasks=len(result.graph), skipped=result.notes)
        return result
    except CannotPlan as e:
        return PlanningError(goal=goal, code=e.code, reason=e.reason)
    except Exception as exc:  # the contract: nothing escapes
        log.exception("planner.replan.internal_error", goal=goal[:100])
        return PlanningError(goal=goal, code="internal", reason=f"replanning failed unexpectedly: {type(exc).__name__}: {exc}")


def _regrounded(previous: PlanResult, bindings: dict[str, list[str]], method, belief: Belief,
                scenario: Scenario | str | Path, lib: Library) -> dict[str, list[str]]:
    """`bindings` with every many-valued slot that defaults to all candidates grown by what a
    fresh grounding of the goal from `belief` binds to it (same method only)."""
    from planner.planning import plan

    open_slots = [name for name, slot in method.slots.items() if slot.many and slot.default == "all"]
    if not open_slots:
        return bindings
    fresh = plan(previous.goal, scenario, belief, library=lib)
    if getattr(fresh, "kind", None) != "plan" or fresh.method != previous.method:
        return bindings
    for name in open_slots:
        bindings[name] = bindings.get(name, []) + [i for i in fresh.bindings.get(name, []) if i not in bindings.get(name, [])]
    return bindings
