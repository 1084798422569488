"""Commands of the behaviour-tree issue: `replay TRACE`, `debug GOAL --scenario S` and
`bench tree`, plus the wiring of a simulated run (world, perception, scripted expert,
planner) that the executor needs. `register(app)` adds them to the `vla-agent` app."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from agent.exit_codes import ExitCode
from behaviors.context import BehaviorConfig
from behaviors.executor import Executor

from agent.console import console, err_console


def sim_executor(goal: str, scenario: Any, seed: int = 0, trace: Path | str | None = None,
                 config: BehaviorConfig | None = None, world_config: Any = None, policy: str = "expert") -> Executor:
    """A started Executor for `goal` in the MuJoCo `scenario`, built by `agent.session` (camera
    perception, the policy, the planner for the plan and its repairs)."""
    from agent.session import build_session

    return build_session(goal, scenario, seed=seed, policy=policy, trace=trace, config=config, world_config=world_config)


SessionFactory = Callable[[str, str, int, Path], Executor]


def _default_session(goal: str, scenario: str, seed: int, trace: Path) -> Executor:
    return sim_executor(goal, scenario, seed=seed, trace=trace)


def register(app: typer.Typer, session_factory: SessionFactory | None = None) -> None:
    """Add `replay`, `debug` and `bench tree` (into the existing `bench` group when there is one)."""
    make_session = session_factory or _default_session

    @app.command("replay")
    def replay(
        trace: Annotated[Path, typer.Argument(help="A run's trace file (runs/RUN-ID/trace.jsonl).")],
        tick: Annotated[Optional[int], typer.Option("--tick", "-t", help="Also draw the tree as it stood after this tick.")] = None,
        tree_only: Annotated[bool, typer.Option("--tree-only", help="Only draw the tree (at --tick, default the last).")] = False,
    ) -> None:
        """Print a recorded run as a timeline, and its behaviour tree at any tick."""
        from behaviors.trace import Replay, TraceError

        try:
            rp = Replay.load(trace)
        except TraceError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        if tick is not None and not 0 <= tick <= rp.last_tick:
            err_console.print(f"[bold red]error:[/] --tick must be within 0..{rp.last_tick}, got {tick}", highlight=False)
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        st = rp.started
        if not tree_only:
            console.print(f"goal {st.get('goal')!r} in {st.get('scenario')} (seed {st.get('seed')}), run {st.get('run_id')}, "
                          f"{rp.last_tick} ticks", highlight=False)
            console.print(_timeline_table(rp.timeline()))
        if tick is not None or tree_only:
            at = rp.last_tick if tick is None else tick
            text = rp.tree_at(at)
            console.print(f"tree after tick {at}:", highlight=False)
            console.print(text or "(no snapshot before this tick)", highlight=False, markup=False, soft_wrap=True)
        if rp.finished is None:
            console.print("[yellow]the run did not finish (no run_finished event)[/]")
        elif rp.finished["outcome"]["status"] != "succeeded":
            raise typer.Exit(int(ExitCode.FAILED))

    @app.command("debug")
    def debug(
        goal: Annotated[str, typer.Argument(help='The goal, e.g. "serve a drink".')],
        scenario: Annotated[str, typer.Option("--scenario", help="Built-in scenario name or YAML file.")] = "kitchen",
        seed: Annotated[int, typer.Option("--seed", "-s")] = 0,
        trace: Annotated[Optional[Path], typer.Option("--trace", help="Trace file; default runs/RUN-ID/trace.jsonl.")] = None,
        frames: Annotated[Path, typer.Option("--frames", help="Where `frame` saves camera images.")] = Path("runs/frames"),
    ) -> None:
        """Step through a plan: an interactive prompt with step, next, continue, break, tree, bb,
        belief, frame, plan, help and quit."""
        import time as _time
        import uuid

        from behaviors.console import DebugConsole
        from behaviors.debugger import Debugger
        from behaviors.trace import default_trace_path

        path = trace or default_trace_path(_time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
        err_console.print(f"planning {goal!r} in {scenario} (seed {seed}) ...", highlight=False)
        from agent.session import PlanFailed, PolicyUnavailable

        try:
            ex = make_session(goal, scenario, seed, path)
        except PolicyUnavailable as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(int(ExitCode.CANNOT_PLAN))
        except PlanFailed as exc:
            err_console.print(f"[bold red]error:[/] cannot plan {goal!r}: {exc}", highlight=False)
            raise typer.Exit(int(ExitCode.BAD_INPUT if getattr(exc.outcome, "kind", "") != "error" or
                                  getattr(exc.outcome, "bad_input", True) else ExitCode.CANNOT_PLAN))
        except Exception as exc:  # a scenario that does not load, an unknown name
            from scenarios.loading import ScenarioError

            if isinstance(exc, ScenarioError):
                err_console.print(f"[bold red]error:[/] {scenario} is not a usable scenario:\n" +
                                  "\n".join(f"  {i}" for i in exc.issues), highlight=False)
                raise typer.Exit(int(ExitCode.BAD_INPUT))
            raise
        dbg = Debugger(ex)
        shell = DebugConsole(dbg, frames_dir=frames, stdout=sys.stdout)
        try:
            shell.cmdloop()
        finally:
            dbg.close()
            ex.close()
        sys.stdout.write(f"trace: {path}\n")
        if ex.outcome is not None and ex.outcome.status != "succeeded":
            raise typer.Exit(int(ExitCode.FAILED))

    def bench_tree(
        nodes: Annotated[int, typer.Option(help="Nodes in the synthetic tree.")] = 30,
        ticks: Annotated[int, typer.Option(help="Ticks measured, in 10 runs; the best run counts.")] = 10000,
    ) -> None:
        """Behaviour-tree overhead per tick, without a policy or a world (target ≤ 100 µs for 30 nodes)."""
        from behaviors.benchmark import benchmark_tree

        if not 9 <= nodes <= 2000 or not 10 <= ticks <= 10**7:
            err_console.print("[bold red]error:[/] --nodes must be in 9..2000 and --ticks in 10..10000000", highlight=False)
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        result = benchmark_tree(nodes, ticks, repeats=10)
        table = Table(title=f"Behaviour-tree overhead ({result.nodes} nodes, best of 10 runs of {ticks // 10} ticks)")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for label, value in result.rows():
            table.add_row(label, value)
        console.print(table)

    bench = _find_group(app, "bench")
    if bench is not None:
        bench.command("tree")(bench_tree)
    else:
        behaviors_app = typer.Typer(help="Behaviour-tree tools.", no_args_is_help=True)
        app.add_typer(behaviors_app, name="behaviors")
        behaviors_app.command("bench")(bench_tree)


def _find_group(app: typer.Typer, name: str) -> typer.Typer | None:
    for group in app.registered_groups:
        if group.name == name and group.typer_instance is not None:
            return group.typer_instance
    return None


def _timeline_table(events: list[dict[str, Any]]) -> Table:
    table = Table(show_lines=False)
    for col in ("tick", "time (s)", "event", "details"):
        table.add_column(col, justify="right" if col in ("tick", "time (s)") else "left")
    for e in events:
        kind = e["event"]
        if kind in ("run_started",):
            continue
        table.add_row(str(e.get("tick", "")), f"{e.get('time', 0):.2f}", kind, _details(e))
    return table


def _details(e: dict[str, Any]) -> str:
    kind = e["event"]
    if kind == "subtask_started":
        return f"{e['subtask']} {e['skill']}({', '.join(e.get('args', []))}): \"{e.get('instruction', '')}\""
    if kind == "subtask_retry":
        return f"{e['subtask']} attempt {e['attempt']}: {e['reason']}"
    if kind == "subtask_succeeded":
        return f"{e['subtask']} after {e.get('attempts', 1)} attempt(s)"
    if kind == "subtask_failed":
        return f"{e['subtask']}: {e['reason']}"
    if kind == "belief_changed":
        parts = [f"+{p}" for p in e.get("became_true", [])] + [f"-{p}" for p in e.get("became_false", [])]
        return " ".join(parts)
    if kind == "actions":
        return f"{e['count']} actions, |a| mean {e['mean_norm']:.3f} max {e['max_norm']:.3f}"
    if kind == "replanned":
        return f"#{e.get('replans')}: {', '.join(e.get('subtasks', []))} (because {e.get('reason')})"
    if kind == "goal_not_done":
        return f"check {e.get('checks')}: {', '.join(e.get('subtasks', []))} still to do"
    if kind == "run_finished":
        o = e["outcome"]
        return f"{o['status'].upper()}" + (f" at {o['failed_subtask']}" if o.get("failed_subtask") else "") + \
            "".join(f"; {r}" for r in o.get("reasons", []))
    return ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "tick", "time", "ts"))
