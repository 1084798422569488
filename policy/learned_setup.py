"""Set-up by a learned policy: demonstrations that start where the learned chain leaves the robot.

An episode's set-up (`policy.episodes.setup_steps`: the drive to a cup and its pick before a
handover, say) is normally the expert's own, so every demonstration of a skill starts from a
state the expert reaches. In a whole run each learned skill starts where the previous
*learned* one stopped: the base a few centimetres past the approach pose, the cup a little
off the expert's grasp. No demonstration covers those states, and the errors compound down
the chain. Running the set-up with the learned policy, exactly as the agent runs it (the
behaviour tree, camera perception, the planner's subtasks), and recording the expert from
where it leaves the robot is DAgger at the skill boundary: the expert's labels for the
states the learned policy visits.

A navigate_to episode's set-up ends with the learned drive to the same target, so the
recorded expert drive is the correction from where the learned one stopped (often a few
centimetres back, or a turn; nothing when it stopped on the pose). Each learned step gets
one attempt; when one fails, the expert is recorded redoing that step from where the
failed attempt left the robot — the state a whole run retries from (`recovery` episodes).

With a lead (`EpisodeConfig.takeover_after`) the learned policy also starts the recorded
skill itself and is stopped part-way; the expert takes over from there: DAgger inside a
skill. A learned handover after a learned pick reached the palm and never let go until its
timeout, a state no skill-boundary set-up records the expert from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from scenarios.world import SimWorld

log = structlog.get_logger(__name__)

RUNTIME = "receding"  # as whole runs execute chunks by default


def learned_steps(steps: list[tuple[str, dict[str, str]]], skill: str, args: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """The set-up a learned policy runs before `skill`: the expert's set-up, and for a drive
    the drive itself (the expert then finishes it from where the learned one stopped)."""
    steps = list(steps)
    if skill == "navigate_to":
        steps.append(("navigate_to", dict(args)))
    return steps


def run_learned_setup(world: SimWorld, obs: dict[str, Any], steps: list[tuple[str, dict[str, str]]], checkpoint: Path | str,
                      seed: int, task: str = "", lead_s: float = 0.0) -> tuple[dict[str, Any], list[Any]]:
    """Run `steps` as one task graph with the learned policy at `checkpoint` through the
    behaviour tree, from `obs` (cameras on); returns the last observation and one
    `SkillResult` per step run (the last one failing when the chain stopped there).
    With `lead_s` the last step is the recorded skill's lead: it gets `lead_s` simulated
    seconds instead of its timeout, and its result is marked `lead`.

    A drive to an object perception has not seen starts with the learned look_for, as the
    planner plans it; there is no repair: a failed step ends the set-up, and
    `policy.episodes.run_episode` records the expert redoing it from there."""
    import torch

    from perception.perception import Perception
    from planner.taskgraph import TaskGraph
    from policy.closed_loop import _factory, run_graph, trial_subtask
    from policy.episodes import SkillResult

    torch.set_num_threads(1)
    perception = Perception.for_world(world)
    perception.reset()
    perception.update(obs)
    steps = list(steps)
    first = steps[0][1].get("target") if steps and steps[0][0] == "navigate_to" else None
    if first in world.scenario.object_by_id() and first not in perception.belief.objects:
        steps.insert(0, ("look_for", {"object": first}))  # as the planner plans a drive to an unseen object
    graph, previous = TaskGraph(), None
    for k, (name, a) in enumerate(steps):
        sub = trial_subtask(world.scenario, name, a, approach_first=True)
        # One attempt: the state a failed attempt leaves is where a whole run's retry starts, and
        # where `policy.episodes.run_episode` records the expert redoing the step.
        sub = sub.model_copy(update={"id": f"{k}_{sub.id}", "retries": 0})  # a chain can drive to one target twice
        if lead_s and k == len(steps) - 1:  # the recorded skill's own start
            sub = sub.model_copy(update={"timeout_s": lead_s, **({"instruction": task} if task else {})})
        graph.add(sub, after=[previous] if previous else [])
        previous = sub.id
    lead_id = previous if lead_s else None
    factory = _factory("vla", world, Path(checkpoint), RUNTIME, perception)
    started: dict[str, float] = {}  # subtask id -> world time its policy was made (the lead's own seconds)

    def timed(subtask):
        started.setdefault(subtask.id, world.time)
        return factory(subtask)

    t0 = world.time
    outcome, ex = run_graph(world, perception, timed, graph, obs, goal=task or "set-up", seed=seed)
    obs = ex.ctx.obs
    state = world.privileged_state()
    order = graph.order()
    failed = None if outcome is not None and outcome.status == "succeeded" else (
        outcome.failed_subtask if outcome is not None and outcome.failed_subtask else order[-1].id)
    results: list[SkillResult] = []
    for sub, (name, a) in zip(order, steps):
        lead = sub.id == lead_id
        seconds = world.time - started.get(sub.id, world.time) if lead else world.time - t0  # a lead never started ran 0 s
        if sub.id == failed:
            reason = outcome.reasons[-1] if outcome is not None and outcome.reasons else "did not finish"
            results.append(SkillResult(name, a, False, f"learned {name}: {reason}", 0, seconds, lead=lead))
            break
        results.append(SkillResult(name, a, True, "", 0, seconds if lead else 0.0, lead=lead))
    # The tree's verdict came from perception; the set-up must also hold in the simulator.
    if failed is None and not all(state.holds(p) for p in order[-1].success if p.name != "visible"):
        name, a = steps[-1]
        results[-1] = SkillResult(name, a, False, f"learned {name}: perception confirmed it but the ground truth "
                                  "disagrees", 0, results[-1].seconds or world.time - t0, lead=results[-1].lead)
    log.info("learned_setup.done", steps=[f"{n}({', '.join(a.values())})" for n, a in steps],
             ok=all(r.success for r in results), seconds=round(world.time - t0, 1))
    return obs, results


def step_success(episodes: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """(succeeded, ran) per learned set-up step, "scenario skill" -> counts, from episodes.jsonl
    rows: how far the learned chain gets, which is what a round of this collection is for."""
    counts: dict[str, list[int]] = {}
    for ep in episodes:
        for step in ep.get("setup") or ():
            if step.get("lead"):  # the recorded skill's own start, stopped on purpose: not a set-up step
                continue
            c = counts.setdefault(f"{ep['scenario']} {step['skill']}", [0, 0])
            c[0] += bool(step["success"])
            c[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(counts.items())}
