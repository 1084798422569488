"""What every behaviour of one run shares: the world handle, the latest observation, the
policy factory, the settings and an event sink (the trace). Injected at construction, so a
leaf never reaches for globals or for the simulator's ground truth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from behaviors.protocols import PolicyFactory, WorldLike


class BehaviorConfig(BaseModel):
    """Tunables of the tree and the executor (all durations in simulated seconds)."""

    confidence: float = Field(0.6, ge=0.0, le=1.0, description="a predicate holds when believed true with at least this confidence")
    precondition_wait_s: float = Field(1.0, ge=0.0, description="how long a precondition may take to show up before the attempt fails")
    confirm_s: float = Field(0.15, ge=0.0, description="success must stay believed this long before the skill succeeds (perception flicker)")
    belief_gap_s: float = Field(0.25, ge=0.0, description="success unbelieved for no longer than this (a missed detection) does not "
                                                          "restart the time it has been believed (settling, confirmation)")
    settle_s: float = Field(2.0, ge=0.0, description="a policy that reports `done` gets this long after success is believed to finish its motion")
    learned_settle_s: float = Field(1.5, ge=0.0, description="a policy without `done` keeps acting at least this long after a "
                                                              "holding/on/in/given effect is believed (the lift or retreat after the "
                                                              "grasp or release) ...")
    learned_settle_still_s: float = Field(0.5, ge=0.0, description="... and then until the robot's own state has stood still this long "
                                                                    "(its demonstrations ended with the arm at rest in the carry or "
                                                                    "driving posture, where the next skill's start)")
    learned_settle_max_s: float = Field(6.0, ge=0.0, description="... but no longer than this after the effect is first believed")
    learned_release_done: bool = Field(True, description="a learned release (a skill that starts holding the object and "
                                                          "succeeds with it elsewhere: handover, place, place_in) is done "
                                                          "once its effect has been believed `learned_settle_s` with the "
                                                          "object believed out of the hand, without waiting for stillness: "
                                                          "learned hands still moving went back for what they had let go")
    settle_still_tol: float = Field(0.01, gt=0.0, description="change of every `observation.state` entry (rad, m) below which the "
                                                               "robot stands still")
    learned_arrive_s: float = Field(0.5, ge=0.0, description="a policy without `done` on a skill that ends near something keeps "
                                                              "driving after `near` is believed until its base has stood still this long "
                                                              "(it was trained to stop at the approach pose, not where `near` first holds)")
    learned_arrive_max_s: float = Field(10.0, ge=0.0, description="… but no longer than this after `near` is first believed "
                                                                  "and the base has set off (or after `near`, if it never does); also how long a "
                                                                  "policy that says `done` may take on a drive that starts near its "
                                                                  "target (`always_run`), instead of `settle_s`")
    depart_m: float = Field(0.05, gt=0.0, description="base movement (m, and the same in rad of yaw) from its starting pose that "
                                                       "counts as setting off; standing still before it is not arriving")
    arrive_still_m: float = Field(0.015, gt=0.0, description="base movement (m, and the same in rad of yaw) below which it stands still")
    lost_object_s: float = Field(2.0, gt=0.0, description="a skill that needs an object in hand (handover, place, place_in) fails "
                                                           "its attempt once the object has been believed out of the hand, with "
                                                           "the skill's success not believed, this long (dropped, not delivered) "
                                                           "and seen since it left the hand")
    lost_unseen_s: float = Field(6.0, gt=0.0, description="... or this long when the cameras have not seen it since it left the hand "
                                                          "(inside a bin, behind the hand): perception may not yet know where it went")
    stall_s: float = Field(6.0, gt=0.0, description="no progress for this long fails the attempt")
    stall_state_tol: float = Field(0.01, gt=0.0, description="proprioception change (rad, m) that counts as progress")
    stall_position_tol: float = Field(0.02, gt=0.0, description="believed object movement (m) that counts as progress")
    stall_confidence_tol: float = Field(0.05, gt=0.0, description="success-confidence change that counts as progress")
    chunk_actions: int = Field(0, ge=0, description="0: select_action every tick (the policy manages its chunk queue); "
                                                       "N: execute the first N actions of each predicted chunk")
    posture_reset: bool = Field(True, description="after a failed attempt, the next attempt (of any subtask) starts with the "
                                                   "reset reflex: empty hands open and go home, a held object to the carry "
                                                   "posture, the head to what the subtask acts on, a manipulation's base back to "
                                                   "where its first attempt began (see policy.posture)")
    posture_reset_first: tuple[str, ...] = Field(("pick", "handover", "place", "place_in"),
                                                 description="skills whose first attempt also starts with the reset reflex, "
                                                             "not only attempts after a failure: every manipulation was "
                                                             "demonstrated with the head on its target (session 18: first "
                                                             "learned handovers 0/11 with the head where the drive left it, "
                                                             "10/15 with it on the palm)")
    posture_reset_max_s: float = Field(8.0, gt=0.0, description="the reflex ends after this long wherever the arms and base are")
    max_replans: int = Field(2, ge=0, description="repairs the planner may make before the goal is declared failed")
    max_goal_checks: int = Field(2, ge=0, description="times a finished plan may be found short of its goal (an object unseen "
                                                      "when it was planned, seen since) and continued before the run succeeds "
                                                      "on it; 0: a finished plan is a success")
    max_seconds: float = Field(600.0, gt=0.0, description="the whole run's budget")
    action_summary_every: int = Field(20, ge=1, description="ticks between action summaries in the trace")


@dataclass
class RunContext:
    world: WorldLike
    policy_factory: PolicyFactory
    namespace: str
    config: BehaviorConfig = field(default_factory=BehaviorConfig)
    emit: Callable[..., None] = lambda event, **fields: None
    obs: dict[str, Any] | None = None
    obs_version: int = 0
    stepped: bool = False
    actions: list[np.ndarray] = field(default_factory=list)
    posture_factory: PolicyFactory | None = None
    """subtask -> the reset reflex run before an attempt that follows a failure (see
    `behaviors.leaves.PostureLeaf`); None: attempts start wherever the last one left the robot."""
    needs_posture_reset: bool = False
    base_trail: list[tuple[float, float, float]] = field(default_factory=list)
    """The believed base poses of the last drive attempt, oldest first: the way it came, which the
    reset reflex before the next attempt backs along out of a wedge (`policy.posture`)."""

    def clock(self) -> float:
        return float(self.world.time)

    def step(self, action: np.ndarray) -> None:
        """Send one action to the world (one control period) and keep the new observation."""
        obs, _, _, _, _ = self.world.step(action)
        self.obs = obs
        self.obs_version += 1
        self.stepped = True
        self.actions.append(np.asarray(action, dtype=np.float64))
