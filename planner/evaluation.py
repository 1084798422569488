"""The goal test set and the latency benchmark behind `vla-agent planner eval` / `bench`.

`planner/goalset.yaml` holds goal phrasings written for this project, over the built-in
scenarios (and `planner/goalset_scenes/`), each with the outcome it must produce: a
decomposition (chains of skill calls; chains compare as an unordered set, steps within a
chain in order), a question back (with its candidates) or a refusal (with words the reason
must contain). A case counts as exact only when the outcome matches in full.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from perception.belief import Belief
from planner.library import Library, default_library
from planner.planning import plan
from planner.results import Outcome
from planner.scene_belief import belief_from_scenario
from scenarios.loading import load_scenario
from scenarios.schema import Scenario

Kind = Literal["plan", "clarification", "error"]


def goalset_path() -> Path:
    return Path(str(resources.files("planner") / "goalset.yaml"))


def expand_chain(chain: dict[str, list[str] | str] | list[str]) -> list[str]:
    """A chain written out, or in shorthand: {fetch: [obj, person]}, {put_on: [obj, surface]},
    {put_in: [obj, bin]}, {pick: obj}, {find: obj}, {go: target}."""
    if isinstance(chain, list):
        return chain
    (key, value), = chain.items()
    a = [value] if isinstance(value, str) else list(value)
    grab = [f"look_for({a[0]})", f"navigate_to({a[0]})", f"pick({a[0]})"]
    if key == "fetch":
        return grab + [f"navigate_to({a[1]})", f"handover({a[0]}, {a[1]})"]
    if key == "put_on":
        return grab + [f"navigate_to({a[1]})", f"place({a[0]}, {a[1]})"]
    if key == "put_in":
        return grab + [f"navigate_to({a[1]})", f"place_in({a[0]}, {a[1]})"]
    if key == "pick":
        return grab
    if key == "find":
        return [f"look_for({a[0]})"]
    if key == "go":
        return [f"navigate_to({a[0]})"]
    raise ValueError(f"unknown chain shorthand {key!r} (fetch, put_on, put_in, pick, find, go)")


class GoalCase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str
    goal: str
    tags: list[str] = Field(default_factory=list)
    plan: list[dict[str, Any] | list[str]] | None = None
    ask: list[str] | None = None
    refuse: str | None = None
    code: str | None = None

    @model_validator(mode="after")
    def _one_expectation(self) -> GoalCase:
        if sum(x is not None for x in (self.plan, self.ask, self.refuse)) != 1:
            raise ValueError(f"case {self.goal[:40]!r}: give exactly one of plan, ask, refuse")
        if self.plan is not None:
            for chain in self.plan:
                expand_chain(chain)  # type: ignore[arg-type]
        return self

    @property
    def expected_kind(self) -> Kind:
        return "plan" if self.plan is not None else ("clarification" if self.ask is not None else "error")

    def goal_text(self) -> str:
        """`goal` with `{repeat:N:text}` expanded (for the oversized-goal case)."""
        if self.goal.startswith("{repeat:"):
            _, n, text = self.goal[1:-1].split(":", 2)
            return text * int(n)
        return self.goal


@dataclass
class CaseResult:
    case: GoalCase
    outcome: Outcome
    exact: bool
    why: str
    ms: float


@dataclass
class Report:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(r.exact for r in self.results) / max(1, len(self.results))

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """expected kind -> (exact, total)."""
        out: dict[str, list[int]] = {}
        for r in self.results:
            e = out.setdefault(r.case.expected_kind, [0, 0])
            e[0] += r.exact
            e[1] += 1
        return {k: (v[0], v[1]) for k, v in out.items()}

    def by_tag(self) -> dict[str, tuple[int, int]]:
        counts: Counter[str] = Counter()
        exact: Counter[str] = Counter()
        for r in self.results:
            for t in r.case.tags or ["untagged"]:
                counts[t] += 1
                exact[t] += r.exact
        return {t: (exact[t], counts[t]) for t in sorted(counts)}


def load_goalset(path: Path | None = None) -> list[GoalCase]:
    p = path or goalset_path()
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    return [GoalCase.model_validate(c) for c in data["cases"]]


def _scenario(name: str, base: Path, cache: dict[str, tuple[Scenario, Belief]]) -> tuple[Scenario, Belief]:
    if name not in cache:
        candidate = base / name
        sc = load_scenario(candidate if candidate.suffix in (".yaml", ".yml") else name)
        cache[name] = (sc, belief_from_scenario(sc))
    return cache[name]


def judge(case: GoalCase, outcome: Outcome) -> tuple[bool, str]:
    """(exact, explanation) of an outcome against the case's expectation."""
    if outcome.kind != case.expected_kind:
        got = outcome.kind + (f" ({outcome.code}: {outcome.reason})" if outcome.kind == "error" else "")
        got += f" ({outcome.question})" if outcome.kind == "clarification" else ""
        if outcome.kind == "plan":
            got += f" {[s.label for s in outcome.graph.order()]}"
        return False, f"expected {case.expected_kind}, got {got}"
    if outcome.kind == "plan":
        want = sorted(tuple(expand_chain(c)) for c in case.plan or [])  # type: ignore[arg-type]
        got = sorted(_chains(outcome))
        return (want == got, "" if want == got else f"expected {want}, got {got}")
    if outcome.kind == "clarification":
        want_ids = sorted(case.ask or [])
        got_ids = sorted(c.id for c in outcome.candidates)
        return (want_ids == got_ids, "" if want_ids == got_ids else f"asked about {got_ids}, expected {want_ids}")
    ok = (case.refuse or "").lower() in outcome.reason.lower() and (case.code is None or case.code == outcome.code)
    return ok, "" if ok else f"refused with {outcome.code}: {outcome.reason!r}; expected {case.code or 'any code'} containing {case.refuse!r}"


def _chains(result) -> list[tuple[str, ...]]:
    """The plan's chains (maximal paths) as tuples of labels; checks that nothing else is ordered."""
    g = result.graph.graph
    chains = []
    for start in [n for n in g.nodes if g.in_degree(n) == 0]:
        path = [start]
        while g.out_degree(path[-1]) == 1:
            path.append(next(iter(g.successors(path[-1]))))
        chains.append(tuple(result.graph[n].label for n in path))
    if sum(len(c) for c in chains) != g.number_of_nodes():
        chains.append(("<graph is not a set of chains>",))
    return chains


def evaluate(cases: list[GoalCase] | None = None, library: Library | None = None, base: Path | None = None) -> Report:
    """Run every case through `plan` and judge it."""
    lib = library or default_library()
    cases = cases if cases is not None else load_goalset()
    base = base or goalset_path().parent
    scenes: dict[str, tuple[Scenario, Belief]] = {}
    report = Report()
    for case in cases:
        sc, belief = _scenario(case.scenario, base, scenes)
        t0 = time.perf_counter()
        outcome = plan(case.goal_text(), sc, belief, library=lib)
        ms = 1000 * (time.perf_counter() - t0)
        exact, why = judge(case, outcome)
        report.results.append(CaseResult(case, outcome, exact, why, ms))
    return report


@dataclass
class Benchmark:
    samples_ms: list[float]
    goals: int
    repeats: int

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        s = sorted(self.samples_ms)
        return s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]


def benchmark(repeats: int = 3, cases: list[GoalCase] | None = None, library: Library | None = None, base: Path | None = None) -> Benchmark:
    """Goal -> validated graph latency over the goal set's plannable goals, encoder warm."""
    lib = library or default_library()
    cases = [c for c in (cases if cases is not None else load_goalset()) if c.expected_kind == "plan"]
    base = base or goalset_path().parent
    scenes: dict[str, tuple[Scenario, Belief]] = {}
    for c in cases:  # warm up: encoder, phrase embeddings, lexicons, free-space grids
        sc, belief = _scenario(c.scenario, base, scenes)
        plan(c.goal_text(), sc, belief, library=lib)
    samples = []
    for _ in range(repeats):
        for c in cases:
            sc, belief = scenes[c.scenario]
            t0 = time.perf_counter()
            plan(c.goal_text(), sc, belief, library=lib)
            samples.append(1000 * (time.perf_counter() - t0))
    return Benchmark(samples, len(cases), repeats)
