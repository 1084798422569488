"""`vla-agent perception ...`: accuracy tables, a picture of the detections, latency.

`register(app)` adds the sub-app; the lead wires it into `agent.cli`.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from agent.exit_codes import ExitCode

from agent.console import console, err_console
BUILTIN = ("kitchen", "tidy_table", "living_room", "distractors")


def _fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(int(code))


def _scenario_name(name: str) -> str:
    from scenarios.loading import ScenarioError, load_scenario

    try:
        load_scenario(name)
    except ScenarioError as exc:
        _fail(f"{name} is not a usable scenario:\n" + "\n".join(f"  {i}" for i in exc.issues))
    return name


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def _accuracy_table(title: str, reports: list) -> Table:
    """Localisation per scenario (one row each), narrow enough for an 80-column terminal."""
    table = Table(title=title)
    for col in ("scenario", "frames", "detected/visible", "median cm", "p95 cm", "off > 5 cm"):
        table.add_column(col, justify="right" if col != "scenario" else "left")
    for r in reports:
        med, p95 = r.error_stats()
        table.add_row(r.name, str(r.frames), f"{r.visible_detected} / {r.visible_total}", _fmt(med * 100, 2), _fmt(p95 * 100, 2),
                      str(r.identity_swaps))
    return table


def _predicate_table(title: str, reports: list, never_observed: bool = False) -> Table:
    """Precision/recall of every predicate: one row per scenario, one column per predicate (80 columns)."""
    from perception.evaluation import PREDICATES

    table = Table(title=title + " (precision/recall; - : no positives)")
    table.add_column("scenario")
    for p in PREDICATES:
        table.add_column(p, justify="right")
    for r in reports:
        row = [r.name]
        for p in PREDICATES:
            c = (r.never_observed if never_observed else r.predicates)[p]
            row.append(f"{_fmt(c.precision, 2)}/{_fmt(c.recall, 2)}" if c.tp + c.fn + c.fp else "-")
        table.add_row(*row)
    return table


def _counts_line(report, never_observed: bool = False) -> str:
    from perception.evaluation import PREDICATES

    counts = report.never_observed if never_observed else report.predicates
    return "  ".join(f"{p} {counts[p].tp}/{counts[p].fp}/{counts[p].fn}" for p in PREDICATES)


def register(app: typer.Typer) -> None:
    """Add the `perception` sub-app (eval, show, bench, fit-colours) to a Typer app."""
    perception_app = typer.Typer(help="What the robot believes from its cameras: accuracy, pictures, latency.", no_args_is_help=True)
    app.add_typer(perception_app, name="perception")

    @perception_app.command("eval")
    def perception_eval(
        frames: Annotated[int, typer.Option(help="Randomised frames per built-in scenario (10 per episode).")] = 200,
        scenario: Annotated[list[str] | None, typer.Option("--scenario", help="Scenario(s) to measure; default all built-in.")] = None,
        robustness_frames: Annotated[int, typer.Option(help="Frames per robustness condition.")] = 20,
        seed: Annotated[int, typer.Option("--seed", "-s")] = 0,
        mistakes: Annotated[int, typer.Option(help="Print up to this many individual mistakes.")] = 0,
    ) -> None:
        """Localisation error and predicate precision/recall against ground truth, then robustness.

        Targets: median error <= 2 cm, precision and recall >= 0.97 for every predicate.
        Exit code 1 when a target is missed.
        """
        from perception.evaluation import Report, evaluate_robustness, evaluate_scenario

        if frames < 1 or frames > 100000:
            _fail(f"--frames must be between 1 and 100000, got {frames}")
        names = [_scenario_name(n) for n in (scenario or BUILTIN)]
        reports: list[Report] = []
        robust: list[Report] = []
        conditions = [("kitchen", "occlusion"), ("distractors", "occlusion"), ("kitchen", "dim"), ("kitchen", "bright"),
                      ("distractors", "dim"), ("distractors", "bright")]
        conditions = [(n, c) for n, c in conditions if n in names] if scenario else conditions
        total = frames * len(names) + robustness_frames * len(conditions)
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("rendering and scoring frames", total=total)
            for name in names:
                reports.append(evaluate_scenario(name, frames, seed, progress=lambda k: progress.advance(task, k)))
            for name, cond in conditions:
                if robustness_frames > 0:
                    robust.append(evaluate_robustness(name, robustness_frames, cond, seed, progress=lambda k: progress.advance(task, k)))
        overall = Report("all")
        for r in reports:
            overall.merge(r)
        console.print(_accuracy_table(f"Localisation ({frames} frames per scenario, seed {seed})", [*reports, overall]))
        console.print(_predicate_table("Predicates", [*reports, overall]))
        console.print(f"{overall.name}: tp/fp/fn  {_counts_line(overall)}", highlight=False)
        console.print(
            "How: every grounded atom of the scenario (visible, holding, on, in, given per object; near(robot, x)\n"
            "per furniture, object and person) is scored on every scored frame against ground truth; belief says\n"
            "true when its probability is >= 0.5; precision = tp/(tp+fp), recall = tp/(tp+fn). Atoms about an\n"
            "object that no head frame fed to perception had yet shown (ground truth: >= 30 pixels) are left out\n"
            "above and counted in the next table.", highlight=False)
        console.print(_predicate_table("Never observed so far", [*reports, overall], never_observed=True))
        console.print(f"{overall.name}: tp/fp/fn  {_counts_line(overall, True)}", highlight=False)
        if robust:
            title = ("Robustness: arm occluding the target; lights at the ends of the scenario's range "
                     "(distractors: same category in other colours)")
            console.print(_accuracy_table(title, robust))
            console.print(_predicate_table("Robustness predicates", robust))
        lat = sorted(overall.latencies_ms)
        if lat:
            console.print(f"update latency during eval: p50 {lat[len(lat) // 2]:.1f} ms, p95 {lat[int(len(lat) * 0.95)]:.1f} ms", highlight=False)
        for m in overall.mistakes[:mistakes]:
            console.print(f"  {m}", highlight=False, markup=False)
        med, _ = overall.error_stats()
        ok = med <= 0.02 and all(
            (c.tp + c.fn == 0 or c.recall >= 0.97) and (c.tp + c.fp == 0 or c.precision >= 0.97) for c in overall.predicates.values()
        )
        if not ok:
            raise typer.Exit(int(ExitCode.FAILED))

    @perception_app.command("fit-colours")
    def perception_fit_colours(
        scenes: Annotated[int, typer.Option(help="Recoloured built-in scenes to render.")] = 24,
        frames_per_scene: Annotated[int, typer.Option(help="Random head poses per scene (head and both wrist cameras each).")] = 6,
        seed: Annotated[int, typer.Option("--seed", "-s")] = 0,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Table to write; default the one perception loads.")] = None,
    ) -> None:
        """Refit the pixel colour table from rendered frames labelled by segmentation masks.

        Offline: the simulator's masks are the labels (objects recoloured at random from the
        whole catalogue under the randomised shades and lights); perception itself never reads
        them. The defaults reproduce the shipped table.
        """
        from perception.colours import DEFAULT_LUT
        from perception.training import fit_colour_table

        if not 1 <= scenes <= 10000 or not 1 <= frames_per_scene <= 1000:
            _fail(f"--scenes must be 1..10000 and --frames-per-scene 1..1000, got {scenes} and {frames_per_scene}")
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("rendering labelled frames", total=scenes * frames_per_scene)
            path = fit_colour_table(scenes, frames_per_scene, seed, out or DEFAULT_LUT,
                                    progress=lambda done, total: progress.update(task, completed=done))
        console.print(f"wrote {path}", highlight=False)

    @perception_app.command("show")
    def perception_show(
        name: Annotated[str, typer.Argument(help="Built-in scenario name or YAML file.")],
        seed: Annotated[int, typer.Option("--seed", "-s")] = 0,
        out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("out/perception.png"),
        pan: Annotated[float, typer.Option(help="Head pan (rad) to look with.")] = 0.0,
        tilt: Annotated[float | None, typer.Option(help="Head tilt (rad); default: the home posture.")] = None,
    ) -> None:
        """Reset a scenario, run perception on the head frame and draw its detections on it."""
        from perception.evaluation import hold, set_head
        from perception.perception import Perception
        from perception.visualise import save_detections
        from scenarios.world import SimWorld

        _scenario_name(name)
        world = SimWorld(name)
        world.reset(seed=seed)
        if pan != 0.0 or tilt is not None:
            set_head(world, pan, 0.75 if tilt is None else tilt)
        obs = hold(world, 1)
        perception = Perception.for_world(world)
        belief = None
        for _ in range(3):  # a few looks: the camera mount registration settles
            belief = perception.update(obs, time=world.time)
        assert belief is not None
        path = save_detections(obs["observation.images.head"], perception, belief, out)
        table = Table(title=f"Belief after {name} seed {seed}")
        for col in ("object", "position (m)", "confidence", "visible"):
            table.add_column(col)
        for oid, o in belief.objects.items():
            table.add_row(oid, " ".join(f"{v:+.3f}" for v in o.position), f"{o.confidence:.2f}", "yes" if o.visible else "no")
        console.print(table)
        console.print(f"wrote {path}", highlight=False)
        world.close()

    @perception_app.command("bench")
    def perception_bench(
        scenario: Annotated[str, typer.Option("--scenario", help="Built-in scenario name or YAML file.")] = "distractors",
        updates: Annotated[int, typer.Option(help="Belief updates to time.")] = 100,
        seed: Annotated[int, typer.Option("--seed", "-s")] = 0,
    ) -> None:
        """Latency of one belief update (p50, p95) on this machine, with the per-stage split."""
        import time

        import numpy as np

        from perception.evaluation import hold, set_head
        from perception.perception import Perception
        from scenarios.world import SimWorld

        _scenario_name(scenario)
        if not 1 <= updates <= 100000:
            _fail(f"--updates must be between 1 and 100000, got {updates}")
        world = SimWorld(scenario)
        world.reset(seed=seed)
        perception = Perception.for_world(world)
        frames = []
        for pan in (0.0, 0.3, -0.3, 0.0):
            set_head(world, pan, 0.75)
            frames.append(hold(world, 1))
        for obs in frames * 3:  # warm up, settle the camera registration
            perception.update(obs)
        times, stages = [], []
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("timing updates", total=updates)
            for k in range(updates):
                obs = frames[k % len(frames)]
                t0 = time.perf_counter()
                perception.update(obs)
                times.append((time.perf_counter() - t0) * 1000)
                stages.append(perception.debug.timings_ms)
                progress.advance(task)
        world.close()
        table = Table(title=f"Belief update latency: {scenario}, {updates} updates, 240x320 head RGB-D")
        table.add_column("measure")
        table.add_column("ms", justify="right")
        table.add_row("p50", f"{np.percentile(times, 50):.2f}")
        table.add_row("p95", f"{np.percentile(times, 95):.2f}")
        previous = 0.0
        for stage in stages[0]:
            cumulative = float(np.median([s[stage] for s in stages]))
            table.add_row(f"  stage {stage} (median)", f"{cumulative - previous:.2f}")
            previous = cumulative
        console.print(table)
