"""`vla-agent eval`: success rates of goals over seeds, judged by the agent and by ground truth.

Each episode is one `vla-agent run` (the same session: plan from the cameras, behaviour tree,
perception checks completion) in its own worker process. Two verdicts are kept apart:
the agent's (the executor's outcome, from perception) and the world's (the scenario goal's
success predicates evaluated on privileged ground truth after the run). A run the agent
calls a success but the world does not is a perception false positive, and is reported.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scenarios.ground_truth import PrivilegedState


@dataclass(frozen=True)
class Episode:
    scenario: str
    goal: str
    success: tuple[str, ...]  # ground-truth success predicates from the scenario file
    seed: int
    policy: str
    posture_reset: bool = True  # BehaviorConfig.posture_reset: the reset reflex before an attempt that follows a failure


@dataclass
class EpisodeResult:
    scenario: str
    goal: str
    seed: int
    policy: str
    agent_success: bool
    world_success: bool
    failed_subtask: str | None = None
    failed_skill: str | None = None
    reason: str | None = None
    replans: int = 0
    retries: int = 0
    world_seconds: float = 0.0
    wall_seconds: float = 0.0
    error: str | None = None
    world_unmet: dict[str, str] = field(default_factory=dict)  # success predicate false in the world -> where its object ended


@dataclass
class Row:
    scenario: str
    goal: str
    episodes: int = 0
    agent_successes: int = 0
    world_successes: int = 0
    false_successes: int = 0
    failures_by_skill: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    mean_world_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.agent_successes / self.episodes if self.episodes else 0.0


def episodes_for(scenarios: list[str], goals: list[str] | None, seeds: int, policy: str, first_seed: int = 0,
                 posture_reset: bool = True) -> list[Episode]:
    """Every (scenario, example goal, seed): the goal texts and success predicates come from the files."""
    from scenarios.loading import load_scenario

    out = []
    for name in scenarios:
        sc = load_scenario(name)
        chosen = [g for g in sc.goals if goals is None or g.text in goals]
        if goals is not None and not chosen:
            known = ", ".join(f'"{g.text}"' for g in sc.goals)
            raise ValueError(f"none of the goals {goals} is an example goal of {sc.name} (its goals: {known})")
        for g in chosen:
            out += [Episode(sc.name, g.text, tuple(str(p) for p in g.success), first_seed + k, policy, posture_reset)
                    for k in range(seeds)]
    return out


def whereabouts(world: PrivilegedState, entity: str) -> str:
    """Where an object ended, in words a failure report can be read by ("on floor at (0.93, -0.35, 0.04)")."""
    obj = world.objects.get(entity)
    if obj is None:
        return f"{entity} (not an object)"
    if obj.held_by:
        place = f"held ({obj.held_by} hand)"
    elif obj.inside:
        place = f"in {obj.inside}"
    elif obj.rests_on:
        place = f"on {obj.rests_on}"
    else:
        place = "touching nothing"
    return f"{place} at ({obj.pos[0]:.2f}, {obj.pos[1]:.2f}, {obj.pos[2]:.2f})"


def unmet_success(world: PrivilegedState, success: tuple[str, ...]) -> dict[str, str]:
    """The goal's success predicates that do not hold in the world, each with where its first
    argument ended: a failed tidy says which object is missing from the bin and where it went."""
    from scenarios.predicates import Predicate

    unmet = {}
    for text in success:
        if not world.holds(text):
            args = Predicate.parse(text).args
            unmet[text] = whereabouts(world, args[0]) if args else ""
    return unmet


def run_episode(ep: Episode, trace_dir: str | None = None) -> EpisodeResult:
    """One goal, one seed, in this process (call through a worker pool)."""
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(1)
    from agent.logging import configure_logging
    from agent.session import build_session

    configure_logging()  # a spawned worker starts with structlog's print-everything default

    started = time.perf_counter()
    trace = Path(trace_dir) / f"{ep.scenario}-{ep.goal.replace(' ', '_')[:40]}-{ep.seed}.jsonl" if trace_dir else None
    try:
        from behaviors.context import BehaviorConfig

        ex = build_session(ep.goal, ep.scenario, seed=ep.seed, policy=ep.policy, trace=trace,
                           config=BehaviorConfig(posture_reset=ep.posture_reset))
    except Exception as exc:  # a plan that cannot be made counts as a failure with its reason
        return EpisodeResult(ep.scenario, ep.goal, ep.seed, ep.policy, False, False, reason=f"planning: {exc}",
                             failed_skill="plan", wall_seconds=time.perf_counter() - started)
    try:
        outcome = ex.run()
        world = ex.world.privileged_state()
        unmet = unmet_success(world, ep.success)
        world_ok = not unmet
        failed = outcome.failed_subtask
        skill = ex.graph[failed].skill if failed and failed in ex.graph else None
        retries = sum(1 for e in ex.events if e["event"] == "subtask_retry")
        return EpisodeResult(
            ep.scenario, ep.goal, ep.seed, ep.policy, outcome.status == "succeeded", world_ok, failed, skill,
            outcome.reasons[0] if outcome.reasons else None, outcome.replans, retries, outcome.time_s,
            time.perf_counter() - started, world_unmet=unmet,
        )
    except Exception as exc:  # noqa: BLE001 - one broken episode must not end the evaluation
        return EpisodeResult(ep.scenario, ep.goal, ep.seed, ep.policy, False, False, reason=f"crashed: {exc}",
                             error=type(exc).__name__, wall_seconds=time.perf_counter() - started)
    finally:
        ex.close()


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """Pool initializer: a worker whose evaluation was killed (Ctrl-C twice, SIGTERM, a closed
    terminal) exits instead of simulating on for minutes as an orphan."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def evaluate(episodes: list[Episode], workers: int = 1, trace_dir: Path | None = None,
             progress: Callable[[EpisodeResult], None] | None = None, log: Path | None = None) -> list[EpisodeResult]:
    """All episodes over `workers` processes (spawned: MuJoCo's GL and torch stay per process).

    `log` gets one JSON line per finished episode as it finishes (both verdicts), so an
    evaluation stopped before its reports are written still says how each finished run ended."""
    results: list[EpisodeResult] = []
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")

    def finished(result: EpisodeResult) -> None:
        results.append(result)
        if log is not None:
            with log.open("a") as f:
                f.write(json.dumps(asdict(result)) + "\n")
        if progress:
            progress(result)

    if workers <= 1:
        for ep in episodes:
            finished(run_episode(ep, str(trace_dir) if trace_dir else None))
        return results
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_exit_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(run_episode, ep, str(trace_dir) if trace_dir else None) for ep in episodes]
        for fut in as_completed(futures):
            finished(fut.result())
    order = {(e.scenario, e.goal, e.seed): i for i, e in enumerate(episodes)}
    return sorted(results, key=lambda r: order[(r.scenario, r.goal, r.seed)])


def summarise(results: list[EpisodeResult]) -> list[Row]:
    rows: dict[tuple[str, str], Row] = {}
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in results:
        row = rows.setdefault((r.scenario, r.goal), Row(r.scenario, r.goal))
        row.episodes += 1
        row.agent_successes += r.agent_success
        row.world_successes += r.world_success
        row.false_successes += r.agent_success and not r.world_success
        if not r.agent_success:
            row.failures_by_skill[r.failed_skill or "?"] += 1
            if r.reason:
                row.reasons[r.reason[:90]] += 1
        seconds[(r.scenario, r.goal)].append(r.world_seconds)
    for key, row in rows.items():
        row.mean_world_seconds = sum(seconds[key]) / len(seconds[key])
    return list(rows.values())


def write_reports(results: list[EpisodeResult], rows: list[Row], out: Path, policy: str) -> dict[str, Path]:
    """JSON (every episode), Markdown (the table) and a PNG bar chart."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json", "markdown": out / "eval.md", "png": out / "eval.png"}
    row_dicts = [{"scenario": row.scenario, "goal": row.goal, "episodes": row.episodes, "rate": row.rate,
                  "agent_successes": row.agent_successes, "world_successes": row.world_successes,
                  "false_successes": row.false_successes, "failures_by_skill": dict(row.failures_by_skill),
                  "reasons": dict(row.reasons), "mean_world_seconds": row.mean_world_seconds} for row in rows]
    paths["json"].write_text(json.dumps({"policy": policy, "episodes": [asdict(r) for r in results], "rows": row_dicts},
                                        indent=2, default=str))
    lines = [f"# Evaluation ({policy} policy)", "",
             "| scenario | goal | success (agent) | success (world) | false successes | failures by skill | mean world s |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        skills = ", ".join(f"{k} {v}" for k, v in row.failures_by_skill.most_common()) or "-"
        lines.append(f"| {row.scenario} | {row.goal} | {row.agent_successes}/{row.episodes} ({row.rate:.0%}) | "
                     f"{row.world_successes}/{row.episodes} | {row.false_successes} | {skills} | {row.mean_world_seconds:.1f} |")
    failed = [r for r in results if not (r.agent_success and r.world_success)]
    if failed:
        lines += ["", "## Runs that failed (by the agent or the world)", "",
                  "| scenario | goal | seed | last failed subtask | first failure | not so in the world |", "|---|---|---|---|---|---|"]
        for r in failed:
            unmet = "; ".join(f"{p}: {where}" for p, where in r.world_unmet.items()) or "-"
            subtask = f"{r.failed_subtask} {r.failed_skill}" if r.failed_subtask else (r.failed_skill or "-")
            reason = (r.reason or ("agent: succeeded" if r.agent_success else "-")).replace("|", "/")
            lines.append(f"| {r.scenario} | {r.goal} | {r.seed} | {subtask} | {reason} | {unmet} |")
    paths["markdown"].write_text("\n".join(lines) + "\n")
    _chart(rows, paths["png"], policy)
    return paths


def _chart(rows: list[Row], path: Path, policy: str) -> None:
    """A horizontal bar per goal: agent-judged success rate, with the world's as a tick."""
    from PIL import Image, ImageDraw

    width, bar_h, left = 900, 26, 420
    height = 50 + bar_h * len(rows) + 20
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((10, 10), f"success rate per goal ({policy} policy); bar: agent's verdict, black tick: ground truth", fill="black")
    scale = width - left - 40
    for i, row in enumerate(rows):
        y = 40 + i * bar_h
        draw.text((10, y + 6), f"{row.scenario}: {row.goal}"[:64], fill="black")
        draw.rectangle((left, y + 4, left + scale, y + bar_h - 4), outline=(200, 200, 200))
        colour = (40, 160, 60) if row.rate >= 0.9 else (230, 150, 30) if row.rate >= 0.5 else (210, 50, 40)
        draw.rectangle((left, y + 4, left + int(scale * row.rate), y + bar_h - 4), fill=colour)
        wx = left + int(scale * (row.world_successes / row.episodes if row.episodes else 0))
        draw.line((wx, y + 2, wx, y + bar_h - 2), fill="black", width=2)
        draw.text((left + scale + 5, y + 6), f"{row.rate:.0%}", fill="black")
    img.save(path)
