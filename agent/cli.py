"""`vla-agent`: one command, with subcommands, for everything a user does with the agent.

Exit codes (see `agent.exit_codes`): 0 success, 1 the job ran but failed, 2 bad input
(malformed scenario, unknown name, bad option), 130 interrupted.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco
# OpenMP threads that spin while waiting make torch many times slower on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from agent.exit_codes import ExitCode
from agent.logging import configure_logging

from agent.console import console, err_console

app = typer.Typer(
    name="vla-agent",
    help=(
        "A hierarchical task-planning agent for a humanoid robot in a MuJoCo room.\n\n"
        "Start with `vla-agent demo` (renders the default scenario and plays a scripted reach), "
        "`vla-agent scenario list` (the built-in rooms) and `vla-agent scenario new myroom` "
        "(a commented scenario file to edit)."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    add_completion=False,
)
scenario_app = typer.Typer(help="List, check, preview and create scenario files.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print timings measured on this machine.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")
app.add_typer(bench_app, name="bench")


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug events to stderr.")] = False,
) -> None:
    configure_logging(verbose=verbose)


def _fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(int(code))


def _load(name_or_file: str):
    from scenarios.loading import ScenarioError, load_scenario

    try:
        return load_scenario(name_or_file)
    except ScenarioError as exc:
        _fail(f"{name_or_file} is not a usable scenario:\n" + "\n".join(f"  {i}" for i in exc.issues))


# ---------------------------------------------------------------------------------- scenario
@scenario_app.command("list")
def scenario_list() -> None:
    """The built-in scenarios, with what is in each and its example goals."""
    from scenarios.loading import DEFAULT_SCENARIO, builtin_scenarios, load_scenario

    table = Table(title="Built-in scenarios", show_lines=True)
    for col in ("name", "furniture", "objects", "people", "example goals"):
        table.add_column(col)
    for name, path in builtin_scenarios().items():
        sc = load_scenario(path)
        table.add_row(
            name + (" (default)" if name == DEFAULT_SCENARIO else ""),
            "\n".join(f"{f.id} ({f.kind})" for f in sc.furniture),
            "\n".join(f"{o.id} on {o.on}" for o in sc.objects),
            "\n".join(p.id for p in sc.people),
            "\n".join(f'"{g.text}"' for g in sc.goals),
        )
    console.print(table)


@scenario_app.command("validate")
def scenario_validate(
    files: Annotated[list[str], typer.Argument(help="Scenario YAML files or built-in names.")],
) -> None:
    """Check scenario files: each problem is printed as FILE:LINE:COLUMN: FIELD: MESSAGE (got VALUE).

    Exit code 0 when every file is valid, 2 when any is not.
    """
    from scenarios.loading import ScenarioError, load_scenario

    bad = 0
    for f in files:
        try:
            sc = load_scenario(f)
        except ScenarioError as exc:
            bad += 1
            for issue in exc.issues:
                err_console.print(str(issue), highlight=False, markup=False)
            continue
        console.print(
            f"[green]ok[/] {f}: {sc.name}, {len(sc.furniture)} furniture, {len(sc.objects)} objects, "
            f"{len(sc.people)} people, {len(sc.goals)} goals",
            highlight=False,
        )
    if bad:
        err_console.print(f"{bad} of {len(files)} scenario file(s) invalid", style="red")
        raise typer.Exit(int(ExitCode.BAD_INPUT))


@scenario_app.command("render")
def scenario_render(
    name: Annotated[str, typer.Argument(help="Built-in scenario name or YAML file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path("out/scenario.png"),
    seed: Annotated[int, typer.Option("--seed", "-s", help="Randomisation seed.")] = 0,
    nominal: Annotated[bool, typer.Option("--nominal", help="No randomisation: the file exactly as written.")] = False,
    height: Annotated[int, typer.Option(help="Image height per view, pixels.")] = 480,
    width: Annotated[int, typer.Option(help="Image width per view, pixels.")] = 640,
) -> None:
    """Render the robot's head camera beside an overview of the room, after a reset with --seed."""
    from agent.preview import render_preview

    sc = _load(name)
    if not (16 <= height <= 960 and 16 <= width <= 1280):
        _fail(f"image size {height}x{width} must be within 16x16 .. 960x1280")
    path = render_preview(sc, out, seed=seed, randomise=not nominal, size=(height, width))
    console.print(f"wrote {path}  (left: head camera, right: overview; seed {seed})", highlight=False)


@scenario_app.command("new")
def scenario_new(
    name: Annotated[str, typer.Argument(help="Name of the new scenario (lower case, digits, _ or -).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="File to write; default NAME.yaml.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented template scenario that validates as it is; edit it from there."""
    import re

    from scenarios.loading import parse_scenario, template_text

    if not re.fullmatch(r"[a-z][a-z0-9_\-]*", name):
        _fail(f"{name!r} is not a valid scenario name: use lower case letters, digits, _ and -, starting with a letter")
    path = out or Path(f"{name}.yaml")
    if path.exists() and not force:
        _fail(f"{path} exists; pass --force to overwrite it")
    text = template_text(name)
    parse_scenario(text, str(path))  # the template must always validate
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    console.print(f"wrote {path}; check it with `vla-agent scenario validate {path}` and look at it with "
                  f"`vla-agent scenario render {path}`", highlight=False)


@scenario_app.command("schema")
def scenario_schema(
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="File to write; default: print it.")] = None,
) -> None:
    """The JSON Schema of scenario files, for editors (e.g. the YAML language server)."""
    import json

    from scenarios.loading import scenario_json_schema

    text = json.dumps(scenario_json_schema(), indent=2)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.write_text(text + "\n")
        console.print(f"wrote {out}", highlight=False)


@scenario_app.command("xml")
def scenario_xml(
    name: Annotated[str, typer.Argument(help="Built-in scenario name or YAML file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for scene.xml and humanoid.xml.")] = Path("out/mjcf"),
) -> None:
    """Write the scene's MJCF (with the robot beside it), to open in `python -m mujoco.viewer`."""
    from scenarios.builder import build_mjcf
    from scenarios.robot import HUMANOID_XML

    sc = _load(name)
    xml, _ = build_mjcf(sc)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scene.xml").write_text(xml)
    (out / HUMANOID_XML.name).write_bytes(HUMANOID_XML.read_bytes())
    console.print(f"wrote {out / 'scene.xml'}; view it with `python -m mujoco.viewer --mjcf={out / 'scene.xml'}`", highlight=False)


# --------------------------------------------------------------------------------------- run
@app.command("run")
def run(
    goal: Annotated[str, typer.Argument(help='What the robot should do, e.g. "serve a drink to the person".')],
    scenario: Annotated[str, typer.Option("--scenario", help="Built-in scenario name or YAML file.")] = "kitchen",
    policy: Annotated[str, typer.Option("--policy", help="vla (the learned policy) or expert (the scripted baseline).")] = "vla",
    seed: Annotated[int, typer.Option("--seed", "-s", help="Randomisation seed of the scene.")] = 0,
    video: Annotated[Optional[Path], typer.Option("--video", help="Write head camera | overview as an MP4.")] = None,
    trace: Annotated[Optional[Path], typer.Option("--trace", help="Trace file; default runs/RUN-ID/trace.jsonl.")] = None,
    choose: Annotated[Optional[list[str]], typer.Option("--choose", help="Answer the planner's question: SLOT=ID.")] = None,
) -> None:
    """Plan a goal from what the cameras see, run it as a behaviour tree and report the outcome.

    Exit codes: 0 succeeded, 1 the execution failed, 2 bad input, 3 the goal cannot be planned
    here (or the planner needs an answer: repeat with --choose SLOT=ID).
    """
    import time as _time
    import uuid

    from agent.running import execute
    from agent.session import POLICIES, PlanFailed, PolicyUnavailable, build_session
    from behaviors.trace import default_trace_path

    if policy not in POLICIES:
        from scenarios.catalog import nearest

        hint = nearest(policy, list(POLICIES))
        _fail(f"unknown policy {policy!r}" + (f"; did you mean {hint!r}?" if hint else "") + f" (known: {', '.join(POLICIES)})")
    if seed < 0:
        _fail(f"--seed must be 0 or more, got {seed}")
    answers = {}
    for item in choose or []:
        slot, sep, value = item.partition("=")
        if not sep or not slot or not value:
            _fail(f"--choose takes SLOT=ID, got {item!r}")
        answers[slot] = value
    sc = _load(scenario)
    path = trace or default_trace_path(_time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
    console.print(f"planning {goal!r} in {sc.name} (seed {seed}, policy {policy}) ...", highlight=False)
    try:
        ex = build_session(goal, sc, seed=seed, policy=policy, trace=path, answers=answers or None)
    except PolicyUnavailable as exc:
        _fail(str(exc), ExitCode.CANNOT_PLAN)
    except PlanFailed as exc:
        outcome = exc.outcome
        if getattr(outcome, "kind", "") == "clarification":
            err_console.print(f"[bold yellow]question:[/] {outcome.question}", highlight=False)
            for c in outcome.candidates:
                err_console.print(f"  --choose {outcome.slot}={c.id}   ({c.description})", highlight=False)
            raise typer.Exit(int(ExitCode.CANNOT_PLAN))
        _fail(f"cannot plan {goal!r}: {exc}", ExitCode.BAD_INPUT if getattr(outcome, "bad_input", False) else ExitCode.CANNOT_PLAN)
    from planner.render import to_text

    console.print(to_text(ex.graph), highlight=False, markup=False)
    try:
        summary = execute(ex, console, video=video)
    finally:
        ex.close()
    table = Table(title=f"{'succeeded' if summary.status == 'succeeded' else 'FAILED'}: {goal}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("subtasks done", f"{summary.subtasks_done} of {summary.subtasks_total}")
    table.add_row("retries / replans", f"{summary.retries} / {summary.replans}")
    table.add_row("time", f"{summary.world_seconds:.1f} s simulated, {summary.wall_seconds:.1f} s wall, {summary.ticks} ticks")
    if summary.failed_subtask:
        table.add_row("failed at", summary.failed_subtask)
    for i, reason in enumerate(summary.reasons):
        table.add_row("why" if i == 0 else "", reason)
    table.add_row("trace", f"{summary.trace}  (vla-agent replay {summary.trace})")
    if summary.video:
        table.add_row("video", summary.video)
    console.print(table)
    if summary.status != "succeeded":
        raise typer.Exit(int(ExitCode.FAILED))


# -------------------------------------------------------------------------------------- eval
@app.command("eval")
def eval_command(
    scenarios: Annotated[list[str], typer.Option("--scenarios", help="Built-in scenarios; repeat for several.")] = ["kitchen"],  # noqa: B006
    goals: Annotated[Optional[list[str]], typer.Option("--goal", help="Only these example goals (exact text); repeat.")] = None,
    seeds: Annotated[int, typer.Option("--seeds", "-n", help="Seeds per goal.")] = 20,
    first_seed: Annotated[int, typer.Option("--first-seed", help="Seeds are FIRST..FIRST+N-1.")] = 0,
    policy: Annotated[str, typer.Option("--policy", help="vla or expert.")] = "vla",
    workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes.")] = 2,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for eval.json, eval.md, eval.png, traces and "
                                      "episodes.jsonl (one line per run as it finishes).")] = Path("out/eval"),
    posture_reset: Annotated[bool, typer.Option("--posture-reset/--no-posture-reset",
                                                help="After a failed attempt, start the next one from the reset posture "
                                                     "(empty hands home, held object to carry, head on the target); "
                                                     "--no-posture-reset measures without it.")] = True,
) -> None:
    """Success table per scenario and example goal over seeds, with a per-skill failure breakdown.

    Each episode is a full run (plan from the cameras, behaviour tree, perception checks). The
    agent's verdict and the ground truth's (the goal's success predicates in the scenario
    file) are both counted; exit code 1 if any goal succeeds in fewer than 90% of its runs.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from agent.evaluation import episodes_for, evaluate, summarise, write_reports
    from agent.session import POLICIES, vla_available

    if policy not in POLICIES:
        _fail(f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    if policy == "vla" and not vla_available():
        _fail("the VLA policy has no trained checkpoint here; use --policy expert", ExitCode.CANNOT_PLAN)
    if not 1 <= seeds <= 10_000 or not 1 <= workers <= 64 or first_seed < 0:
        _fail("--seeds must be in 1..10000, --workers in 1..64 and --first-seed at least 0")
    for name in scenarios:
        _load(name)
    try:
        episodes = episodes_for(scenarios, goals, seeds, policy, first_seed, posture_reset=posture_reset)
    except ValueError as exc:
        _fail(str(exc))
    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[ok]} ok, {task.fields[truth]} by ground truth"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
        bar = progress.add_task("eval", total=len(episodes), ok=0, truth=0)
        ok = truth = 0

        def tick(result) -> None:
            nonlocal ok, truth
            ok += result.agent_success
            truth += result.world_success
            progress.update(bar, advance=1, ok=ok, truth=truth)

        results = evaluate(episodes, workers=workers, trace_dir=out / "traces", progress=tick, log=out / "episodes.jsonl")
    rows = summarise(results)
    paths = write_reports(results, rows, out, policy)
    table = Table(title=f"Evaluation, {policy} policy, {seeds} seeds per goal" + ("" if posture_reset else ", no posture reset"))
    for col in ("scenario", "goal", "success", "ground truth", "false successes", "failures by skill", "top reason"):
        table.add_column(col)
    for row in rows:
        table.add_row(row.scenario, row.goal, f"{row.agent_successes}/{row.episodes} ({row.rate:.0%})",
                      f"{row.world_successes}/{row.episodes}", str(row.false_successes),
                      ", ".join(f"{k} {v}" for k, v in row.failures_by_skill.most_common()) or "-",
                      row.reasons.most_common(1)[0][0] if row.reasons else "-")
    console.print(table)
    console.print(f"wrote {paths['json']}, {paths['markdown']}, {paths['png']}", highlight=False)
    if any(row.rate < 0.9 for row in rows):
        raise typer.Exit(int(ExitCode.FAILED))


# -------------------------------------------------------------------------------------- demo
@app.command("demo")
def demo(
    scenario: Annotated[str, typer.Option("--scenario", help="Built-in scenario name or YAML file.")] = "kitchen",
    seed: Annotated[int, typer.Option("--seed", "-s")] = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the pictures.")] = Path("out"),
) -> None:
    """Render a scenario and play a scripted reach of the hands above the objects in front of the robot.

    Writes OUT/<scenario>_seed<S>.png (head camera beside the overview) and
    OUT/<scenario>_reach.png (the head camera at each reach target), and prints the
    end-effector error at each target. Exit code 1 if any target is missed by more than 1 cm.
    """
    from agent.demo import run_reach_demo

    sc = _load(scenario)
    result = run_reach_demo(sc, out, seed=seed, console=console)
    table = Table(title=f"Scripted reach in {sc.name} (seed {seed})")
    for col in ("target", "position (base frame, m)", "error (mm)", "reached in (s)"):
        table.add_column(col)
    for r in result.reaches:
        table.add_row(r.label, " ".join(f"{v:+.3f}" for v in r.target), f"{r.error_mm:.1f}",
                      f"{r.seconds:.2f}" if r.seconds is not None else "not reached")
    console.print(table)
    console.print(f"picture of the scene: {result.scene_png}\npictures of the reach: {result.reach_png}", highlight=False)
    if not result.ok:
        raise typer.Exit(int(ExitCode.FAILED))


# ------------------------------------------------------------------------------------- bench
@bench_app.command("world")
def bench_world(
    scenario: Annotated[str, typer.Option("--scenario", help="Built-in scenario name or YAML file.")] = "kitchen",
    seconds: Annotated[float, typer.Option(help="Simulated seconds per measurement.")] = 5.0,
    height: Annotated[int, typer.Option(help="Camera image height.")] = 240,
    width: Annotated[int, typer.Option(help="Camera image width.")] = 320,
) -> None:
    """Physics steps per second, milliseconds per camera frame, and control steps per second
    at 20 Hz with the head and one wrist camera rendered every step."""
    from scenarios.benchmark import benchmark_world

    sc = _load(scenario)
    if seconds <= 0 or seconds > 600:
        _fail(f"--seconds must be in (0, 600], got {seconds}")
    result = benchmark_world(sc, seconds=seconds, image_size=(height, width))
    table = Table(title=f"World benchmark: {sc.name}, {height}x{width} images, MUJOCO_GL={os.environ.get('MUJOCO_GL')}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in result.rows():
        table.add_row(label, value)
    console.print(table)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    store: Annotated[Path, typer.Option(help="SQLite run store; runs' traces go beside it.")] = Path("runs/runs.sqlite"),
    workers: Annotated[int, typer.Option(help="Runs simulated at once, each in its own process.")] = 2,
    session: Annotated[Optional[str], typer.Option(help="module:function building a run's session (default: the simulator).")] = None,
) -> None:
    """The HTTP service: POST /runs, follow /runs/{id}/events, pause/step/resume/cancel, frames and trees.

    OpenAPI documentation at http://HOST:PORT/docs once it runs.
    """
    import uvicorn

    from agent.runs import load_builder
    from agent.service import create_app

    if not 1 <= port <= 65535:
        _fail(f"--port must be in 1..65535, got {port}")
    if not 1 <= workers <= 64:
        _fail(f"--workers must be in 1..64, got {workers}")
    try:
        load_builder(session)
    except (ImportError, AttributeError, ValueError) as exc:
        _fail(f"--session {session!r} cannot be used: {exc}")
    console.print(f"serving on http://{host}:{port} (docs at /docs), store {store}", highlight=False)
    uvicorn.run(create_app(store, max_workers=workers, builder=session), host=host, port=port, log_level="warning")


def _register_commands() -> None:
    """Commands that live beside the packages they drive."""
    from agent import (commands_behaviors, commands_expert, commands_perception, commands_plan, commands_policy, commands_train,
                       commands_vla)

    commands_plan.register(app)
    commands_perception.register(app)
    commands_expert.register(app)
    commands_behaviors.register(app)
    commands_train.register(app)
    commands_vla.register(app)
    commands_policy.register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))


if __name__ == "__main__":
    main()
