"""Planner: goal text to a validated task graph of subtasks (issue 4).

    from planner import plan, replan
    result = plan("serve a drink to the person", "kitchen")   # PlanResult | Clarification | PlanningError
    for subtask in result.graph.order(): ...

The skill library and the goal methods are YAML in `planner/library/`; see README's planner
section and `vla-agent plan --help`.
"""

from planner.library import Library, LibraryError, default_library, load_library
from planner.planning import MAX_GOAL_CHARS, plan
from planner.replan import replan
from planner.results import Candidate, Clarification, Outcome, PlanningError, PlanResult
from planner.scene_belief import belief_from_scenario
from planner.taskgraph import Subtask, TaskGraph

__all__ = [
    "MAX_GOAL_CHARS", "Candidate", "Clarification", "Library", "LibraryError", "Outcome", "PlanResult", "PlanningError",
    "Subtask", "TaskGraph", "belief_from_scenario", "default_library", "load_library", "plan", "replan",
]
