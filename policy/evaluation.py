"""The expert table: success of every skill and of whole chains over randomised seeds.

Episode k of a skill uses seed k, the built-in scenario `k mod 4` (those that have what
the skill needs) and arguments drawn from that scenario with the seed, so the table is
reproducible. Failures are grouped by reason; episodes whose setup (the expert's own
earlier skills) failed are counted apart, since the skill itself never started.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable

import multiprocessing as mp
import numpy as np

from policy.expert.expert import SKILLS, candidates
from scenarios.catalog import CATEGORIES
from scenarios.loading import builtin_scenarios, load_scenario
from scenarios.schema import Scenario

CHAIN_NAMES = ("serve_drink",)


def sample_args(scenario: Scenario, skill: str, rng: np.random.Generator) -> dict[str, str] | None:
    """Random arguments for `skill` in `scenario` (None if the scenario lacks what it needs)."""
    if skill == "serve_drink":
        drinks = [o.id for o in scenario.objects if CATEGORIES[o.category].drink]
        people = candidates(scenario, "person")
        if not drinks or not people:
            return None
        return {"object": str(rng.choice(drinks)), "person": str(rng.choice(people))}
    spec = SKILLS[skill]
    out = {}
    for name, kind in spec.params:
        choices = candidates(scenario, kind)
        if not choices:
            return None
        out[name] = str(rng.choice(choices))
    return out


def episode_plan(skill: str, n: int, scenarios: Iterable[str] | None = None, start_seed: int = 0) -> list[tuple[str, dict[str, str], int]]:
    """(scenario, args, seed) for n episodes of `skill`, cycling over the scenarios."""
    names = list(scenarios or sorted(builtin_scenarios()))
    loaded = {n_: load_scenario(n_) for n_ in names}
    plan = []
    seed = start_seed
    while len(plan) < n:
        name = names[seed % len(names)]
        rng = np.random.default_rng([seed, 3])
        args = sample_args(loaded[name], skill, rng)
        if args is not None:
            plan.append((name, args, seed))
        seed += 1
        if seed - start_seed > 20 * n + 100:
            raise ValueError(f"no built-in scenario has what {skill} needs")
    return plan


@dataclass
class Row:
    skill: str
    episodes: int = 0
    successes: int = 0
    setup_failures: int = 0
    reasons: Counter = field(default_factory=Counter)
    failed: dict[str, list[str]] = field(default_factory=dict)  # reason -> ["scenario:seed", ...]
    sim_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def started(self) -> int:
        return self.episodes - self.setup_failures

    @property
    def rate(self) -> float:
        return self.successes / self.started if self.started else 0.0


def _worker(job: tuple[str, str, dict[str, str], int]) -> tuple[str, bool, str, bool, float, str, int, float]:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from policy.episodes import CHAINS, run_chain, run_episode
    from scenarios.world import SimWorld, WorldConfig

    import time

    skill, scenario, args, seed = job
    world = _world(scenario)
    t0 = time.perf_counter()
    if skill in CHAINS:
        out = run_chain(world, CHAINS[skill](args["object"], args["person"]), seed)
    else:
        out = run_episode(world, skill, args, seed)
    sim = float(sum(r.seconds for r in out.chain))
    return skill, bool(out.success), out.reason, out.setup_failed, sim, scenario, seed, time.perf_counter() - t0


_WORLDS: dict = {}


def _world(scenario: str):
    from scenarios.world import SimWorld, WorldConfig

    if scenario not in _WORLDS:
        _WORLDS[scenario] = SimWorld(scenario, WorldConfig(cameras=(), head_depth=False, image_size=(120, 160)))
    return _WORLDS[scenario]


def evaluate(skills: list[str], episodes: int, workers: int = 1, scenarios: list[str] | None = None,
             progress: Callable[[int, int], None] | None = None, first: int = 0) -> dict[str, Row]:
    """Run `episodes` episodes per skill (and chain) and tally successes and failure reasons.

    `first` skips that many episodes of each row's plan, so a long table can be run in parts
    (episodes 0..49, then 50..199) that add up to the same episodes as one run."""
    jobs = []
    for skill in skills:
        for name, args, seed in episode_plan(skill, first + episodes, scenarios)[first:]:
            jobs.append((skill, name, args, seed))
    rows = {s: Row(s) for s in skills}
    done = 0
    if workers <= 1:
        results = map(_worker, jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
        results = pool.map(_worker, jobs, chunksize=4)
    try:
        for skill, ok, reason, setup_failed, seconds, scenario, seed, wall in results:
            row = rows[skill]
            row.episodes += 1
            row.sim_seconds += seconds
            row.wall_seconds += wall
            if setup_failed:
                row.setup_failures += 1
            elif ok:
                row.successes += 1
            if setup_failed or not ok:
                row.reasons[reason] += 1
                row.failed.setdefault(reason, []).append(f"{scenario}:{seed}")
            done += 1
            if progress:
                progress(done, len(jobs))
    finally:
        if pool is not None:
            pool.shutdown()
    return rows
