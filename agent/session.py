"""The composition of one run: world, camera perception, policy, planner and executor.

This is the only place that wires the packages together for a simulated run; `vla-agent
run`, `vla-agent debug`, evaluation and the HTTP service's workers all build their
sessions here, so they behave the same.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

PolicyName = Literal["vla", "expert"]
POLICIES: tuple[str, ...] = ("vla", "expert")
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "policy" / "checkpoints" / "default"
CHECKPOINT_ENV = "VLA_AGENT_CHECKPOINT"


def checkpoint_path() -> Path:
    """The VLA checkpoint runs load: `$VLA_AGENT_CHECKPOINT` if set (your own training run's
    `pretrained/` folder), else the one shipped in the repository."""
    return Path(os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT)


class PlanFailed(Exception):
    """The planner returned a question or a refusal instead of a plan."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        text = getattr(outcome, "question", None) or getattr(outcome, "reason", str(outcome))
        closest = getattr(outcome, "closest_goals", None)
        if closest:
            text += " (try: " + "; ".join(f'"{g}"' for g in closest) + ")"
        super().__init__(text)


class PolicyUnavailable(Exception):
    """The requested policy cannot run here (e.g. no trained checkpoint)."""


def vla_available(checkpoint: Path | None = None) -> bool:
    return ((checkpoint or checkpoint_path()) / "model.safetensors").exists()


def policy_factory(policy: str, world: Any, checkpoint: Path | None = None, perception: Any = None) -> Any:
    """subtask -> policy. The expert reads privileged state (its job); the VLA only observations,
    plus, for navigate_to, the goal planned from `perception`'s latest belief and the static map."""
    if policy not in POLICIES:
        from scenarios.catalog import nearest

        hint = nearest(policy, list(POLICIES))
        raise ValueError(f"unknown policy {policy!r}" + (f"; did you mean {hint!r}?" if hint else "") + f" (known: {', '.join(POLICIES)})")
    if policy == "expert":
        from policy.expert import ScriptedExpert

        return lambda subtask: ScriptedExpert(world, subtask.skill, list(subtask.args))
    checkpoint = checkpoint or checkpoint_path()
    if not vla_available(checkpoint):
        raise PolicyUnavailable(
            f"no trained VLA checkpoint at {checkpoint}; use --policy expert, or train one "
            "(vla-agent collect, then vla-agent train)"
        )
    from policy.vla import VLAPolicy

    from policy.navigation_goal import with_goals
    from policy.safeguards import with_safeguards

    model = VLAPolicy.from_pretrained(checkpoint)

    def make(subtask: Any) -> Any:
        model.reset()
        return model

    guarded = with_safeguards(make, world, perception)  # grip guard, grasp depth, stalled lift, blocked base
    return with_goals(guarded, model.config.env_state_dim, world.scenario, perception)


def posture_factory(world: Any, perception: Any, dock: bool = False) -> Any:
    """subtask -> the reset reflex the tree runs before an attempt that follows a failure
    (`policy.posture`), from perception's latest belief and the world's action layout; with
    `dock` (learned skills) it also brings the base onto a manipulation's approach pose before
    the first attempt."""
    from policy.posture import PostureReset

    layout = world.controller.layout
    if "left.pos" not in layout.slices:  # a joint-space world: the reflex drives end-effector targets
        return None
    return lambda subtask: PostureReset(layout.slices, layout.dim, world.control_period, world.hold_action,
                                        lambda: perception.belief, world.scenario, subtask.skill, list(subtask.args), dock=dock)


def build_session(goal: str, scenario: Any, seed: int = 0, policy: str = "expert", trace: Path | str | None = None,
                  config: Any = None, world_config: Any = None, answers: dict[str, str] | None = None) -> Any:
    """A started Executor for `goal` in `scenario` (see module docstring).

    The plan is made from perception's first belief, as a real robot would; repairs go
    through the planner too. Raises PlanFailed, PolicyUnavailable or ScenarioError.
    """
    from behaviors.executor import Executor
    from behaviors.recovery import PlannerReplanner
    from perception.perception import Perception
    from planner.planning import plan
    from scenarios.loading import load_scenario
    from scenarios.world import SimWorld, WorldConfig

    sc = scenario if not isinstance(scenario, (str, Path)) else load_scenario(scenario)
    world = SimWorld(sc, world_config or WorldConfig())
    try:
        obs, _ = world.reset(seed=seed, options={"task": goal})
        perception = Perception.for_world(world)
        factory = policy_factory(policy, world, perception=perception)
        # A learned policy's pick/place/handover start where its navigate_to ends: plan that drive always.
        approach_first = policy != "expert"
        result = plan(goal, sc, perception.update(obs), answers=answers, approach_first=approach_first)
        if getattr(result, "kind", None) != "plan":
            raise PlanFailed(result)
    except Exception:
        world.close()
        raise
    replanner = PlannerReplanner(sc, previous=result, approach_first=approach_first)
    ex = Executor(world, perception, factory, result.graph, goal=goal, replanner=replanner, config=config,
                  trace=trace, seed=seed, scenario=sc.name, posture_factory=posture_factory(world, perception, dock=policy != "expert"))
    ex.start(obs)
    return ex
