"""What the robot believes about the room: the contract between perception and its users.

Perception builds a `Belief` from camera data; the planner grounds phrases ("the red cup
to my left") in it and the behaviour tree checks subtask completion against it. Nothing
here comes from the simulator's ground truth: a belief is an estimate, so every object
and every predicate carries a confidence.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from scenarios.predicates import Predicate


class ObjectBelief(BaseModel):
    """One tracked object, in the world frame."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="scene object id when matched to the scenario's inventory, else a track id")
    category: str
    colour: str
    position: tuple[float, float, float]
    confidence: float = Field(ge=0.0, le=1.0, description="belief that the object is where it is said to be")
    last_seen: float = Field(description="world time (s) of the last detection")
    visible: bool = Field(description="detected in the latest head frame")
    at_hand: str | None = Field(None, description="the robot hand whose fingers are at the object (holding it, or let go "
                                "and not yet withdrawn), from the hand's kinematics")

    @property
    def description(self) -> str:
        return f"{self.colour} {self.category}"


class PersonBelief(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    position: tuple[float, float]
    hand: tuple[float, float, float] | None = Field(None, description="where handed objects go, if seen")
    confidence: float = Field(ge=0.0, le=1.0)


class RobotBelief(BaseModel):
    """The robot's own state from proprioception (odometry pose, what its grippers feel)."""

    model_config = ConfigDict(frozen=True)

    pose: tuple[float, float, float] = Field(description="base x, y, yaw in the world frame")
    gripper_closed: dict[str, bool] = Field(default_factory=dict)


class Belief(BaseModel):
    """A snapshot of what the robot believes at world time `time`.

    `predicates` maps a positive predicate's text (`"on(red_cup, table)"`) to the probability
    that it holds; predicates perception has no evidence about are absent, and `holds`
    reports them false with confidence 0.
    """

    model_config = ConfigDict(frozen=True)

    time: float
    robot: RobotBelief
    objects: dict[str, ObjectBelief] = Field(default_factory=dict)
    people: dict[str, PersonBelief] = Field(default_factory=dict)
    predicates: dict[str, float] = Field(default_factory=dict)

    def holds(self, predicate: Predicate | str) -> tuple[bool, float]:
        """(truth, confidence in that truth value) of a predicate, negation included."""
        pred = Predicate.parse(predicate) if isinstance(predicate, str) else predicate
        p = self.predicates.get(str(pred.positive()))
        if p is None:
            return (pred.negated, 0.0)
        truth = p >= 0.5
        confidence = p if truth else 1.0 - p
        return (truth != pred.negated, confidence)

    def distance_to_robot(self, object_id: str) -> float:
        x, y, _ = self.robot.pose
        ox, oy, _ = self.objects[object_id].position
        return math.hypot(ox - x, oy - y)
