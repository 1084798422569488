"""What `plan` and `replan` return: a plan, a question back to the user, or a refusal.

Bad input is an outcome, not an exception: a caller (the CLI, the HTTP service, the
executor) branches on `kind` and shows the user a reason or a question.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from planner.taskgraph import TaskGraph

ErrorCode = Literal[
    "empty_goal",     # nothing to plan
    "too_long",       # over MAX_GOAL_CHARS
    "not_english",    # another language, or not words at all
    "unknown_goal",   # no method matches the goal
    "unknown_object", # the goal names something the scene does not have
    "impossible",     # the scene cannot support the goal (no drink, bin out of reach, ...)
    "bad_scene",      # the scenario or belief is unusable
    "internal",       # a bug in the planner (logged); never raised to the caller
]
BAD_INPUT_CODES = frozenset({"empty_goal", "too_long", "not_english", "unknown_goal", "unknown_object", "bad_scene"})


class Candidate(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    description: str


class PlanResult(BaseModel):
    """A validated task graph for the goal."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: Literal["plan"] = "plan"
    goal: str
    method: str
    confidence: float = Field(description="cosine similarity of the goal to the method's closest example phrasing")
    bindings: dict[str, list[str]] = Field(description="slot -> scene ids")
    graph: TaskGraph
    notes: list[str] = Field(default_factory=list, description="what was skipped because it already holds, and why")
    reason: str | None = Field(None, description="for a repaired plan: why it was replanned")

    @field_serializer("graph")
    def _graph(self, graph: TaskGraph) -> dict[str, Any]:
        return graph.to_dict()


class Clarification(BaseModel):
    """The goal is ambiguous: ask `question`; answer by choosing one of `candidates` for `slot`."""

    kind: Literal["clarification"] = "clarification"
    goal: str
    method: str | None = None
    slot: str
    question: str
    candidates: list[Candidate]


class PlanningError(BaseModel):
    """The goal cannot be planned: `reason` says why; `closest_goals` are goals that would work."""

    kind: Literal["error"] = "error"
    goal: str
    code: ErrorCode
    reason: str
    closest_goals: list[str] = Field(default_factory=list)

    @property
    def bad_input(self) -> bool:
        return self.code in BAD_INPUT_CODES


Outcome = PlanResult | Clarification | PlanningError


class NeedClarification(Exception):
    """Raised inside the planner when a slot needs the user's choice."""

    def __init__(self, slot: str, question: str, candidates: list[Candidate]) -> None:
        super().__init__(question)
        self.slot, self.question, self.candidates = slot, question, candidates


class CannotPlan(Exception):
    """Raised inside the planner with a reason for the user."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason
