"""Commands for the scripted expert and demonstration data: `collect`, `expert eval`, `expert bench`.

The lead wires them in with `register(app)`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from agent.exit_codes import ExitCode

from agent.console import console, err_console


def _fail(message: str, code: ExitCode = ExitCode.BAD_INPUT) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(int(code))


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err_console, transient=False)


def _scenarios(names: list[str]) -> tuple[str, ...]:
    from scenarios.loading import ScenarioError, builtin_scenarios, load_scenario

    if not names or names == ["all"]:
        return tuple(sorted(builtin_scenarios()))
    for n in names:
        try:
            load_scenario(n)
        except ScenarioError as exc:
            _fail(f"--scenario {n!r} is not a usable scenario:\n" + "\n".join(f"  {i}" for i in exc.issues))
    return tuple(names)


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        _fail(f"--image-size {text!r} must look like HEIGHTxWIDTH, e.g. 96x128")
    if not (16 <= h <= 480 and 16 <= w <= 640):
        _fail(f"--image-size {text!r} must be within 16x16 .. 480x640")
    return h, w


def register(app: typer.Typer) -> None:
    """Add `collect` and the `expert` sub-app (`eval`, `bench`) to `app`."""
    expert_app = typer.Typer(help="The scripted expert: success table and collection benchmark.", no_args_is_help=True)
    app.add_typer(expert_app, name="expert")

    @app.command("collect")
    def collect_cmd(
        out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create (LeRobot v2.1 layout).")],
        scenario: Annotated[list[str], typer.Option("--scenario", help="Scenario name or file; repeat for several; 'all' = built-ins.")] = ["all"],
        skills: Annotated[str, typer.Option("--skills", help="Comma-separated skills: look_for,navigate_to,pick,place,place_in,handover.")] = "pick",
        episodes: Annotated[int, typer.Option("--episodes", "-n", help="Episodes in total (cycling over scenarios and skills).")] = 10,
        seed: Annotated[int, typer.Option("--seed", help="Episode k uses seed SEED+k.")] = 0,
        arg: Annotated[list[str], typer.Option("--arg", help="Pin a skill argument, e.g. --arg object=red_cup.")] = [],
        image_size: Annotated[str, typer.Option("--image-size", help="Recorded camera size HEIGHTxWIDTH.")] = "96x128",
        workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes.")] = 1,
        dart: Annotated[float, typer.Option("--dart", help="Share of episodes with noise on executed actions.")] = 0.25,
        perturb: Annotated[float, typer.Option("--perturb", help="Share of episodes started from a perturbed state.")] = 0.15,
        from_start: Annotated[float, typer.Option("--from-start", help="Share of pick episodes that start where the robot "
                                                  "stands when the object is already within reach (no navigate_to first), "
                                                  "as the planner plans them.")] = 0.0,
        carrying: Annotated[float, typer.Option("--carrying", help="Share of navigate_to episodes driven holding an object "
                                                "the expert first drove to and picked up, as a goal's drives to a surface, "
                                                "a bin or a person are.")] = 0.0,
        offset: Annotated[float, typer.Option("--offset", help="Share of navigate_to, pick, handover, place and place_in "
                                              "episodes that start up to 0.3 m off the approach pose the expert drove "
                                              "to (short of it, past it, beside it, turned): short drives there and "
                                              "back, and manipulations that line up first.")] = 0.0,
        offset_scale: Annotated[float, typer.Option("--offset-scale", help="How far off the pose the --offset episodes "
                                                    "start, as a share of the full ranges (0.3 m short, 0.12 m past, "
                                                    "0.15 m aside, 0.4 rad): 0.2 gives the few centimetres a learned "
                                                    "drive stops off it, which a manipulation takes from where it "
                                                    "stands instead of lining up first.")] = 1.0,
        arm_offset: Annotated[float, typer.Option("--arm-offset", help="Share of the --carrying drives, handovers, places and "
                                                  "place_ins that start with both hands moved off their postures (the "
                                                  "held object's up to 15 cm, the free one up to 30 cm up), as learned "
                                                  "skills leave them.")] = 0.0,
        learned_setup: Annotated[Optional[Path], typer.Option("--learned-setup", help="VLA checkpoint folder that runs each "
                                                              "episode's set-up (the drive and pick before a handover, "
                                                              "say) through the behaviour tree, as whole runs do; the "
                                                              "expert is recorded from where it leaves the robot "
                                                              "(DAgger at the skill boundary). A drive's set-up ends with "
                                                              "the learned drive itself, so the expert records the "
                                                              "correction. --perturb does not apply; --offset and "
                                                              "--arm-offset are refused with it.")] = None,
        takeover_after: Annotated[float, typer.Option("--takeover-after", help="With --learned-setup: the learned policy "
                                                      "also starts each pick, handover, place and place_in itself, for "
                                                      "a random 1 s to this many simulated seconds, and the expert "
                                                      "takes over from where it stopped (DAgger inside a skill: a hand "
                                                      "held over the palm, a grasp half-closed). An episode whose "
                                                      "learned skill succeeded first records nothing. 0: off.")] = 0.0,
        append: Annotated[bool, typer.Option("--append", help="Add the episodes to the dataset already at --out "
                                             "(same image size); numbering continues after its last episode.")] = False,
        supersede: Annotated[bool, typer.Option("--supersede", help="With --append: mark the dataset's earlier episodes "
                                                "of these skills superseded, so training leaves them out (after a change "
                                                "to how the expert performs a skill). Their frames stay on disk.")] = False,
    ) -> None:
        """Record expert demonstrations: camera frames, proprioception, actions, instructions, success.

        Use a --seed range apart from earlier collections when appending (e.g. --seed 10000), or
        the new episodes repeat scenes already recorded."""
        from agent.logging import configure_logging
        from policy.expert.expert import SkillError
        from policy.recording import CollectConfig, collect, plan_episodes

        pinned = {}
        for a in arg:
            if "=" not in a:
                _fail(f"--arg {a!r} must look like NAME=VALUE, e.g. object=red_cup")
            k, v = a.split("=", 1)
            pinned[k.strip()] = v.strip()
        shares = {"--dart": dart, "--perturb": perturb, "--from-start": from_start, "--carrying": carrying, "--offset": offset,
                  "--arm-offset": arm_offset}
        bad = {k: v for k, v in shares.items() if not 0 <= v <= 1}
        if bad:
            _fail(", ".join(f"{k} {v}" for k, v in bad.items()) + ": a share must be between 0 and 1")
        if workers < 1:
            _fail(f"--workers must be at least 1, got {workers}")
        if not 0 < offset_scale <= 1:
            _fail(f"--offset-scale {offset_scale}: must be above 0 and at most 1")
        if learned_setup is not None:
            if offset or arm_offset:
                _fail("--learned-setup starts each episode where the learned policy leaves the robot: "
                      "leave out --offset and --arm-offset")
            if not (learned_setup / "config.json").is_file():
                _fail(f"--learned-setup {learned_setup}: no VLA checkpoint there (no config.json)")
        if takeover_after:
            from policy.episodes import TAKEOVER_MIN_S

            if learned_setup is None:
                _fail("--takeover-after needs --learned-setup: the learned policy that starts the skill")
            if takeover_after < TAKEOVER_MIN_S:
                _fail(f"--takeover-after {takeover_after}: must be 0 (off) or at least {TAKEOVER_MIN_S} s")
        config = CollectConfig(scenarios=_scenarios(scenario), skills=tuple(s.strip() for s in skills.split(",") if s.strip()),
                               episodes=episodes, seed=seed, image_size=_size(image_size), fixed_args=pinned,
                               dart_fraction=dart, perturb_fraction=perturb, from_start_fraction=from_start,
                               carry_fraction=carrying, offset_fraction=offset, arm_offset_fraction=arm_offset,
                               offset_scale=offset_scale,
                               learned_setup=str(learned_setup.resolve()) if learned_setup is not None else None,
                               takeover_after=takeover_after)
        try:
            plan_episodes(config)  # every check happens before anything is written
        except SkillError as exc:
            _fail(str(exc))
        exists = (out / "meta" / "info.json").exists()
        if exists and not append:
            _fail(f"{out} already holds a dataset; choose another --out, delete it, or add --append")
        if supersede and not append:
            _fail("--supersede marks earlier episodes of the dataset being added to: it needs --append")
        if append and not exists:
            _fail(f"--append: {out} holds no dataset to add to (no meta/info.json)")
        if append:
            from policy.recording import existing_dataset

            try:
                existing_dataset(out, config)
            except (ValueError, KeyError, json.JSONDecodeError) as exc:
                _fail(f"--append: {exc}")
        t0 = time.perf_counter()
        with _progress() as progress:
            bar = progress.add_task("recording episodes", total=episodes)
            info = collect(config, out, workers=workers, progress=lambda done, total: progress.update(bar, completed=done),
                           append=append, supersede=supersede, initializer=configure_logging)
        wall = time.perf_counter() - t0

        eps = [json.loads(line) for line in (out / "meta" / "episodes.jsonl").read_text().splitlines()][-episodes:]
        ok = sum(e["success"] for e in eps)
        frames = sum(e["length"] for e in eps)
        console.print(f"wrote {out}: {len(eps)} episodes ({ok} successful, {len(eps) - ok} failed and flagged), "
                      f"{frames} frames; "
                      + (f"{info['appended'][-1]['superseded_episodes']} earlier episodes of {skills} marked superseded; "
                         if supersede else "")
                      + f"the dataset now holds {info['total_episodes']} episodes, {info['total_frames']} frames, "
                      f"{info['total_tasks']} instructions; {frames / wall:.1f} frames/s with {workers} worker(s)", highlight=False)
        if learned_setup is not None:
            from policy.learned_setup import step_success

            rates = step_success(eps)
            console.print("learned set-up steps that succeeded (one attempt each): "
                          + ", ".join(f"{k} {ok}/{n}" for k, (ok, n) in rates.items())
                          + f"; {sum(bool(e.get('recovery')) for e in eps)} recovery episodes", highlight=False)
            if takeover_after:
                led = [e for e in eps if e.get("takeover")]
                console.print(f"learned leads: {len(led)} skills started by the policy; the expert took over "
                              f"{sum(e['length'] > 0 for e in led)} of them, "
                              f"{sum(e['length'] == 0 for e in led)} had succeeded within the lead (nothing recorded)",
                              highlight=False)

    @app.command("collect-targets")
    def collect_targets_cmd(
        dataset: Annotated[Path, typer.Option("--dataset", help="A dataset folder written by `vla-agent collect`.")],
        workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes.")] = 1,
    ) -> None:
        """Add the manipulation target to a dataset's pick, handover, place and place_in episodes
        recorded before it was kept (`target` in episodes.jsonl, see policy.manipulation_target).

        Each episode is re-run without cameras from its seed and options and kept only if the
        replay's states match the recording; no frame is rewritten. Exit code 1 if any did not match."""
        from policy.recording import replay_targets

        if workers < 1:
            _fail(f"--workers must be at least 1, got {workers}")
        if not (dataset / "meta" / "info.json").exists():
            _fail(f"{dataset} holds no dataset (no meta/info.json)")
        t0 = time.perf_counter()
        with _progress() as progress:
            bar = progress.add_task("replaying episodes", total=None)
            counts = replay_targets(dataset, workers=workers,
                                    progress=lambda done, total: progress.update(bar, completed=done, total=total))
        console.print(f"{dataset}: target added to {counts['added']} episodes, {counts['mismatched']} replays did not match "
                      f"the recording (left without), {counts['already']} had one, {counts['skipped']} need none; "
                      f"{time.perf_counter() - t0:.0f} s", highlight=False)
        if counts["mismatched"]:
            raise typer.Exit(int(ExitCode.FAILED))

    @expert_app.command("eval")
    def expert_eval(
        episodes: Annotated[int, typer.Option("--episodes", "-n", help="Seeds per skill and per chain.")] = 200,
        skills: Annotated[str, typer.Option("--skills", help="Comma-separated skills and chains (serve_drink).")] =
            "look_for,navigate_to,pick,place,place_in,handover,serve_drink",
        scenario: Annotated[list[str], typer.Option("--scenario", help="Scenarios to cycle over; default all built-ins.")] = ["all"],
        workers: Annotated[int, typer.Option("--workers", "-j")] = 1,
        first: Annotated[int, typer.Option("--first", help="Skip this many episodes of each row (run a long table in parts).")] = 0,
        json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the rows, with failing scenario:seed lists, as JSON.")] = None,
    ) -> None:
        """Success of the scripted expert per skill and chain over randomised seeds, with failure reasons."""
        from policy.evaluation import CHAIN_NAMES, evaluate
        from policy.expert.expert import SKILLS

        names = [s.strip() for s in skills.split(",") if s.strip()]
        for n in names:
            if n not in SKILLS and n not in CHAIN_NAMES:
                from scenarios.catalog import nearest

                hint = nearest(n, list(SKILLS) + list(CHAIN_NAMES))
                _fail(f"unknown skill {n!r}" + (f"; did you mean {hint!r}?" if hint else "") + f" (known: {', '.join(list(SKILLS) + list(CHAIN_NAMES))})")
        if episodes < 1:
            _fail(f"--episodes must be at least 1, got {episodes}")
        if first < 0:
            _fail(f"--first must be 0 or more, got {first}")
        t0 = time.perf_counter()
        with _progress() as progress:
            bar = progress.add_task("expert episodes", total=episodes * len(names))
            rows = evaluate(names, episodes, workers=workers, scenarios=list(_scenarios(scenario)),
                            progress=lambda d, t: progress.update(bar, completed=d), first=first)
        span = f"episodes {first}..{first + episodes - 1} of each row" if first else f"{episodes} seeds per row"
        table = Table(title=f"Scripted expert (policy: scripted_expert), {span}")
        for col in ("skill / chain", "successes", "rate", "target", "setup failed", "sim s / episode", "failure reasons (scenario:seed)"):
            table.add_column(col)
        all_ok = True
        for r in rows.values():
            target = 0.95 if r.skill in CHAIN_NAMES else 0.98
            all_ok &= r.rate >= target
            table.add_row(r.skill, f"{r.successes}/{r.started}", f"{100 * r.rate:.1f}%", f"{100 * target:.0f}%", str(r.setup_failures),
                          f"{r.sim_seconds / max(r.episodes, 1):.1f}",
                          "\n".join(f"{n}× {reason} ({', '.join(r.failed.get(reason, [])[:6])}{', ...' if n > 6 else ''})"
                                    for reason, n in r.reasons.most_common()) or "-")
        # Piped or in a log, rich would squeeze the table into 80 columns and cut the seeds off.
        (console if console.is_terminal else Console(width=170)).print(table)
        if json_out is not None:
            import json

            json_out.write_text(json.dumps({r.skill: {"episodes": r.episodes, "successes": r.successes, "started": r.started,
                                                      "setup_failures": r.setup_failures, "failed": r.failed,
                                                      "sim_seconds": r.sim_seconds, "wall_seconds": r.wall_seconds}
                                            for r in rows.values()}, indent=2))
        wall = time.perf_counter() - t0
        console.print(f"{sum(r.episodes for r in rows.values())} episodes in {wall / 60:.1f} min wall with {workers} worker(s); "
                      f"{sum(r.wall_seconds for r in rows.values()) / max(sum(r.sim_seconds for r in rows.values()), 1e-9):.2f} "
                      "worker-seconds per simulated second. A setup failure is a failure of the expert's own earlier skill "
                      "(counted apart: the skill itself never started).", highlight=False)
        if not all_ok:
            raise typer.Exit(int(ExitCode.FAILED))

    @expert_app.command("bench")
    def expert_bench(
        episodes: Annotated[int, typer.Option("--episodes", "-n")] = 4,
        workers: Annotated[int, typer.Option("--workers", "-j")] = 1,
        image_size: Annotated[str, typer.Option("--image-size")] = "96x128",
        out: Annotated[Optional[Path], typer.Option("--out", help="Where to record (default: a temporary folder).")] = None,
    ) -> None:
        """Recorded frames per second per core: collect a few pick episodes in the kitchen and time it."""
        import shutil
        import tempfile

        from policy.recording import CollectConfig, collect

        tmp = Path(tempfile.mkdtemp(prefix="vla-bench-")) if out is None else out
        config = CollectConfig(scenarios=("kitchen",), skills=("pick",), episodes=episodes, image_size=_size(image_size))
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        try:
            with _progress() as progress:
                bar = progress.add_task("benchmark episodes", total=episodes)
                info = collect(config, tmp / "ds", workers=workers, progress=lambda d, t: progress.update(bar, completed=d))
        finally:
            if out is None:
                shutil.rmtree(tmp, ignore_errors=True)
        wall = time.perf_counter() - t0
        frames = info["total_frames"]
        table = Table(title=f"Collection benchmark: kitchen pick, {image_size}, 3 cameras, MUJOCO_GL={os.environ.get('MUJOCO_GL')}")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("episodes / frames recorded", f"{episodes} / {frames}")
        table.add_row("wall seconds (incl. unrecorded setup)", f"{wall:.1f}")
        table.add_row("recorded frames per second", f"{frames / wall:.1f}")
        table.add_row(f"recorded frames per second per core ({workers} worker(s))", f"{frames / wall / workers:.1f}")
        load1 = os.getloadavg()
        table.add_row(f"load average, 1 min, before / after (machine: {os.cpu_count()} cores)", f"{load0[0]:.2f} / {load1[0]:.2f}")
        console.print(table)
