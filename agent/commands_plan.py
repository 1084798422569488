"""The planner's commands: `vla-agent plan` and `vla-agent planner eval|bench|validate|library`.

`register(app)` adds them to the main CLI (agent/cli.py). Exit codes follow
agent/exit_codes.py: 0 a plan, 2 bad input (empty, too long, not English, unknown goal,
unknown object, bad scenario or library file), 3 cannot plan (the scene cannot support
the goal, or the goal is ambiguous and needs `--choose`), 1 for eval/bench below target.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from agent.exit_codes import ExitCode

from agent.console import console, err_console

ACCURACY_TARGET = 0.95
P50_TARGET_MS = 20.0


def _fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(int(code))


def _library(files: list[Path] | None):
    from planner.library import LibraryError, default_library, load_library

    try:
        return load_library(list(files)) if files else default_library()
    except LibraryError as exc:
        _fail("the planner library is not usable:\n" + "\n".join(f"  {i}" for i in exc.issues))


def _answers(choose: list[str] | None) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for item in choose or []:
        slot, sep, value = item.partition("=")
        if not sep or not slot.strip() or not value.strip():
            _fail(f"--choose takes SLOT=ID (e.g. object=red_cup), got {item!r}")
        ids = [v.strip() for v in value.split(",") if v.strip()]
        out[slot.strip()] = ids[0] if len(ids) == 1 else ids
    return out


def _single_thread_encoder() -> None:
    """Planner-only commands run the encoder on one torch thread (see planner.language.Encoder)."""
    import os

    from planner.language import THREADS_ENV

    os.environ.setdefault(THREADS_ENV, "1")


def register(app: typer.Typer) -> None:
    """Add `plan` and the `planner` sub-app to the CLI."""
    planner_app = typer.Typer(help="The planner's goal test set, benchmark and library files.", no_args_is_help=True)
    app.add_typer(planner_app, name="planner")

    @app.command("plan")
    def plan_command(
        goal: Annotated[str, typer.Argument(help="The goal in plain words, e.g. \"serve a drink to the person\".")],
        scenario: Annotated[str, typer.Option("--scenario", help="Built-in scenario name or YAML file.")] = "kitchen",
        as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON (the graph as networkx node-link data).")] = False,
        out_json: Annotated[Optional[Path], typer.Option("--out-json", help="Also write the graph's JSON to this file.")] = None,
        dot: Annotated[Optional[Path], typer.Option("--dot", help="Also write the graph as Graphviz DOT to this file.")] = None,
        png: Annotated[Optional[Path], typer.Option("--png", help="Also render the graph to PNG (needs Graphviz's `dot`).")] = None,
        choose: Annotated[Optional[list[str]], typer.Option("--choose", help="Answer a question: SLOT=ID, e.g. object=red_cup (repeatable).")] = None,
        library: Annotated[Optional[list[Path]], typer.Option("--library", help="Extra skill/method library files or folders (repeatable).")] = None,
    ) -> None:
        """Decompose a goal into a task graph for a scenario and print it; nothing is executed.

        The belief is the scenario file's own layout (objects where the file puts them), the
        stand-in for perception. Exit code 0 with a plan, 3 when the goal cannot be achieved
        here or needs an answer (re-run with --choose), 2 for bad input.
        """
        from planner.planning import plan
        from planner.render import RenderError, to_dot, to_text, write_png
        from scenarios.loading import ScenarioError, load_scenario

        _single_thread_encoder()
        lib = _library(library)
        try:
            sc = load_scenario(scenario)
        except ScenarioError as exc:
            _fail(f"{scenario} is not a usable scenario:\n" + "\n".join(f"  {i}" for i in exc.issues))
        with err_console.status("planning (the first goal loads the language model)…"):
            outcome = plan(goal, sc, library=lib, answers=_answers(choose))
        if as_json:
            sys.stdout.write(outcome.model_dump_json(indent=2) + "\n")
        if outcome.kind == "clarification":
            if not as_json:
                console.print(f"[bold yellow]question:[/] {outcome.question}", highlight=False)
                for c in outcome.candidates:
                    console.print(f"  --choose {outcome.slot}={c.id}   ({c.description})", highlight=False)
            raise typer.Exit(int(ExitCode.CANNOT_PLAN))
        if outcome.kind == "error":
            if not as_json:
                err_console.print(f"[bold red]cannot plan:[/] {outcome.reason}", highlight=False)
                if outcome.closest_goals:
                    err_console.print("closest known goals: " + "; ".join(f'"{g}"' for g in outcome.closest_goals), highlight=False)
            raise typer.Exit(int(ExitCode.BAD_INPUT if outcome.bad_input else ExitCode.CANNOT_PLAN))
        graph = outcome.graph
        if not as_json:
            console.print(to_text(graph), highlight=False, markup=False, soft_wrap=True)
            for note in outcome.notes:
                console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
        for path, text in ((out_json, graph.to_json()), (dot, to_dot(graph) if dot else "")):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                err_console.print(f"wrote {path}", highlight=False)
        if png is not None:
            try:
                write_png(graph, png)
                err_console.print(f"wrote {png}", highlight=False)
            except RenderError as exc:
                _fail(str(exc), ExitCode.FAILED)

    @planner_app.command("eval")
    def eval_command(
        goalset: Annotated[Optional[Path], typer.Option("--goalset", help="Goal test set YAML (default: planner/goalset.yaml).")] = None,
        show_all: Annotated[bool, typer.Option("--all", help="List every case, not only the misses.")] = False,
        library: Annotated[Optional[list[Path]], typer.Option("--library", help="Extra library files or folders.")] = None,
    ) -> None:
        """Run the goal test set and print the accuracy: exact decompositions, questions asked
        back on ambiguous goals, refusals (with reasons) of impossible ones.

        Exit code 1 if accuracy is below 95% or any ambiguous goal is not asked back or any
        impossible goal is not refused.
        """
        from rich.progress import Progress

        from planner.evaluation import evaluate, goalset_path, load_goalset

        _single_thread_encoder()
        lib = _library(library)
        path = goalset or goalset_path()
        try:
            cases = load_goalset(path)
        except Exception as exc:
            _fail(f"{path} is not a usable goal set: {exc}")
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("loading the language model", total=len(cases))
            from planner.language import intent_model

            intent_model(lib)
            progress.update(task, description="planning")
            reports = []
            for case in cases:
                reports.append(evaluate([case], lib, base=path.parent).results[0])
                progress.advance(task)
        from planner.evaluation import Report

        report = Report(reports)
        table = Table(title=f"Goal test set: {len(cases)} goals" + ("" if show_all else " (misses only; --all for every case)"))
        for col in ("", "scenario", "goal", "outcome"):
            table.add_column(col)
        for r in report.results:
            if show_all or not r.exact:
                o = r.outcome
                what = {"plan": lambda: f"{len(o.graph)} subtasks ({o.method})",
                        "clarification": lambda: f"asks: {o.question}",
                        "error": lambda: f"{o.code}: {o.reason}"}[o.kind]()
                table.add_row("ok" if r.exact else "MISS", r.case.scenario, r.case.goal_text()[:60], what if r.exact else r.why)
        if table.row_count:
            console.print(table)
        kinds = report.by_kind()
        tags = Table(title="By kind of goal")
        tags.add_column("tag")
        tags.add_column("exact", justify="right")
        for tag, (ok, n) in report.by_tag().items():
            tags.add_row(tag, f"{ok}/{n}")
        console.print(tags)
        plan_ok, plan_n = kinds.get("plan", (0, 0))
        ask_ok, ask_n = kinds.get("clarification", (0, 0))
        ref_ok, ref_n = kinds.get("error", (0, 0))
        exact = sum(r.exact for r in report.results)
        console.print(f"accuracy: {exact}/{len(report.results)} = {100 * report.accuracy:.1f}% exact "
                      f"(decompositions {plan_ok}/{plan_n}, ambiguous asked back {ask_ok}/{ask_n}, "
                      f"refused with the expected reason {ref_ok}/{ref_n})", highlight=False)
        if report.accuracy < ACCURACY_TARGET or ask_ok < ask_n or ref_ok < ref_n:
            raise typer.Exit(int(ExitCode.FAILED))

    @planner_app.command("bench")
    def bench_command(
        repeats: Annotated[int, typer.Option(help="Passes over the goal set's plannable goals.")] = 5,
        library: Annotated[Optional[list[Path]], typer.Option("--library", help="Extra library files or folders.")] = None,
    ) -> None:
        """Goal -> validated task graph latency (p50, p95) with the encoder warm, over the goal
        set's plannable goals. Exit code 1 if p50 is above 20 ms."""
        import os

        import torch

        from planner.evaluation import benchmark

        if not 1 <= repeats <= 100:
            _fail(f"--repeats must be within 1..100, got {repeats}")
        _single_thread_encoder()
        lib = _library(library)
        with err_console.status("warming up (language model, phrase embeddings, maps)…"):
            result = benchmark(repeats=repeats, library=lib)
        table = Table(title=f"Planner latency: {result.goals} goals x {result.repeats} passes, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("p50 (ms)", f"{result.p50:.1f}")
        table.add_row("p95 (ms)", f"{result.p95:.1f}")
        table.add_row("samples", str(len(result.samples_ms)))
        console.print(table)
        if result.p50 > P50_TARGET_MS:
            raise typer.Exit(int(ExitCode.FAILED))

    @planner_app.command("validate")
    def validate_command(
        files: Annotated[list[Path], typer.Argument(help="Library YAML files (skills, methods, groups, words).")],
    ) -> None:
        """Check library files, together with the built-in library: FILE:LINE:COLUMN: FIELD: MESSAGE."""
        from planner.library import load_library, validate_files

        issues = validate_files(files)
        if issues:
            for issue in issues:
                err_console.print(str(issue), highlight=False, markup=False)
            err_console.print(f"{len(issues)} problem(s)", style="red")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        lib = load_library(list(files), include_env=False)
        console.print(f"[green]ok[/] {len(lib.skills)} skills, {len(lib.methods)} methods with the built-in library", highlight=False)

    @planner_app.command("library")
    def library_command(
        library: Annotated[Optional[list[Path]], typer.Option("--library", help="Extra library files or folders.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print skills and methods as JSON.")] = False,
    ) -> None:
        """The skills (parameters, preconditions, effects, instructions) and the goal methods."""
        lib = _library(library)
        if as_json:
            data = {"skills": {n: s.model_dump() for n, s in lib.skills.items()},
                    "methods": {n: m.model_dump() for n, m in lib.methods.items()}}
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
            return
        skills = Table(title="Skills")
        for col in ("skill", "parameters", "preconditions", "effects", "instruction", "timeout, retries"):
            skills.add_column(col)
        for s in lib.skills.values():
            skills.add_row(s.name, ", ".join(f"{k}: {v}" for k, v in s.params.items()), "\n".join(s.preconditions),
                           "\n".join(s.effects), s.instructions[0], f"{s.timeout_s:g} s, {s.retries}")
        console.print(skills)
        methods = Table(title="Goal methods")
        for col in ("method", "steps", "example goals"):
            methods.add_column(col)
        for m in lib.methods.values():
            steps = " → ".join(m.steps) + (f"  (for each {m.for_each})" if m.for_each else "")
            methods.add_row(m.name, steps, "\n".join(f'"{e}"' for e in m.examples[:3]))
        console.print(methods)
