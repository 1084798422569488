"""Checking a task graph before anything runs: forward simulation over the belief.

Starting from the facts the belief holds, each subtask (in the graph's chain-by-chain
topological order) must find its preconditions true; its skill's effects then change the
facts. At the end every goal of the plan must hold. Alongside, every place the robot must
drive to or reach into is checked against the free-space map. A failure comes back as a
sentence for the user ("the bin is not reachable: ...", "pick(red_cup) cannot start:
near(robot, red_cup) would not hold").
"""

from __future__ import annotations

from planner.library import Library
from planner.reach import unreachable_reason
from planner.scene import Scene
from planner.skills import Fact, atom_text, compiled, holds
from planner.taskgraph import TaskGraph


def simulate(graph: TaskGraph, scene: Scene, library: Library, state: set[Fact] | None = None) -> tuple[set[Fact], str | None]:
    """(final facts, first problem or None) of running the graph's subtasks in order."""
    facts = set(scene.true_facts) if state is None else set(state)
    for sub in graph.order():
        spec = library.skills.get(sub.skill)
        if spec is None:
            return facts, f"{sub.id} uses unknown skill {sub.skill!r}"
        skill = compiled(spec)
        for atom in skill.preconditions(sub.args):
            if not holds(facts, atom):
                return facts, f"{sub.label} cannot start: {atom_text(atom)} would not hold then"
        skill.apply(facts, sub.args)
    return facts, None


def check(graph: TaskGraph, scene: Scene, library: Library) -> str | None:
    """Why the graph cannot achieve its goals in this scene, or None if it can."""
    for sub in graph.order():
        spec = library.skills.get(sub.skill)
        if spec is None:
            return f"{sub.id} uses unknown skill {sub.skill!r}"
        if not scene.fits(spec.params, sub.args):
            return f"{sub.label} does not fit the skill's parameters ({', '.join(f'{k}: {v}' for k, v in spec.params.items())})"
        if sub.skill in REACH_CHECKED:
            for entity in sub.args:
                if scene.kind(entity) == "object" and entity not in scene.belief.objects:
                    continue
                reason = unreachable_reason(entity, scene, library.robot)
                if reason:
                    return reason
    facts, problem = simulate(graph, scene, library)
    if problem:
        return problem
    for goal in graph.attrs.get("goals", []):
        name, _, rest = goal.partition("(")
        fact = (name, tuple(a.strip() for a in rest.rstrip(")").split(",")))
        if fact not in facts:
            return f"the plan does not achieve {goal}"
    return None


REACH_CHECKED = frozenset({"navigate_to"})
"""Skills whose targets must be reachable (the others act where navigate_to brought the robot)."""
