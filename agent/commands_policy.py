"""`vla-agent policy eval`: closed-loop success per skill and scenario, VLA beside the expert."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from agent.console import console, err_console
from agent.exit_codes import ExitCode

policy_app = typer.Typer(help="Evaluate policies skill by skill in closed loop.", no_args_is_help=True)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(int(ExitCode.BAD_INPUT))


def _split(text: str, known: tuple[str, ...], what: str) -> list[str]:
    from scenarios.catalog import nearest

    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        _fail(f"--{what} is empty; choose from {', '.join(known)}")
    for name in names:
        if name not in known:
            hint = nearest(name, list(known))
            _fail(f"unknown {what[:-1] if what.endswith('s') else what} {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")
                  + f"; choose from {', '.join(known)}")
    return names


def _rate(cell) -> str:
    if cell is None or cell.started == 0:
        return "—"
    rate = f"{cell.successes}/{cell.started} ({100 * cell.rate:.0f}%)"
    return rate + (f", {cell.setup_failures} set-up failed" if cell.setup_failures else "")


def markdown(cells: dict, policies: list[str], variations: list[str]) -> str:
    """The tables as Markdown (one per variation), drives' arrival and failure reasons below each."""
    from policy.closed_loop import Cell, arrival_summary

    lines = []
    for variation in variations:
        keys = sorted({(s, sc) for (v, s, sc, _p) in cells if v == variation},
                      key=lambda k: (k[0], k[1] == "all", k[1]))
        if not keys:
            continue
        lines += [f"### {variation}", "", "| skill | scenario | " + " | ".join(policies) + " | false confirmations |",
                  "|---|---|" + "---|" * len(policies) + "---|"]
        for skill, sc in keys:
            row = [_rate(cells.get((variation, skill, sc, p))) for p in policies]
            fc = ", ".join(f"{p} {cells[(variation, skill, sc, p)].agent_only}" for p in policies if (variation, skill, sc, p) in cells)
            name = f"**{skill}**" if sc == "all" else skill
            lines.append(f"| {name} | {sc} | " + " | ".join(row) + f" | {fc} |")
        lines.append("")
        lines += [f"Arrival of {p}'s drives ({sc}): {text}" + "\n" for (skill, sc) in keys for p in policies
                  if skill == "navigate_to" and (text := arrival_summary(cells.get((variation, skill, sc, p), Cell())))]
        for p in policies:
            reasons = {}
            for (v, s, sc, pp), cell in cells.items():
                if v == variation and pp == p and sc == "all":
                    for r, n in cell.reasons.items():
                        reasons[f"{s}: {r}"] = reasons.get(f"{s}: {r}", 0) + n
            if reasons:
                lines.append(f"Failures of {p}: " + "; ".join(f"{r} ×{n}" for r, n in sorted(reasons.items(), key=lambda x: -x[1])))
                lines.append("")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")

    @policy_app.command("eval")
    def policy_eval(
        policies: Annotated[str, typer.Option("--policy", help="Comma-separated policies to compare: vla, expert.")] = "vla,expert",
        skills: Annotated[str, typer.Option("--skills", help="Comma-separated skills.")] = "look_for,navigate_to,pick,place,place_in,handover",
        seeds: Annotated[int, typer.Option("--seeds", "-n", min=1, help="Trials per skill and scenario.")] = 50,
        scenarios: Annotated[Optional[list[str]], typer.Option("--scenario", help="Built-in scenario; repeat for several (default: all).")] = None,
        variations: Annotated[str, typer.Option("--variations", help="Comma-separated: nominal, wide_poses, lights, unseen_phrasing, from_start (pick only: from the start pose, no navigate_to), carrying (navigate_to only: holding an object the expert picked up, to a person or surface), off_pose (pick, handover, place, place_in: from up to 0.3 m off the approach pose, hands moved, as a learned drive leaves them).")] = "nominal",
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="VLA checkpoint folder (default: $VLA_AGENT_CHECKPOINT, else the shipped one).")] = None,
        first_seed: Annotated[int, typer.Option("--first-seed", help="Seed of the first trial; far from collection seeds.")] = 100_000,
        runtime: Annotated[str, typer.Option("--runtime", help="How the VLA's chunks become actions: receding (execute n_action_steps, predict again), ensemble (ACT's temporal ensembling) or async.")] = "receding",
        retries: Annotated[int, typer.Option("--retries", min=0, help="Attempts after the first (0: the skill's own success, no second chance).")] = 0,
        workers: Annotated[int, typer.Option("--workers", "-j", min=1, help="Worker processes.")] = 1,
        out: Annotated[Optional[Path], typer.Option("--out", help="Write trials (JSON lines) and the table (Markdown) here.")] = None,
    ) -> None:
        """Closed-loop success of each skill, the policies side by side on the same trials.

        Every trial is one skill call run through the behaviour tree as the agent runs it: the
        expert sets up the skill's start state, the policy drives from cameras, proprioception
        and the instruction, camera perception decides completion within the skill's timeout
        (one attempt unless --retries); success needs the tree to
        succeed AND the simulator's ground truth to agree. "False confirmations" counts trials
        perception confirmed although the effect did not hold.

        Variations beyond the training distribution: wide_poses (object and robot start poses
        from twice the scenario's ranges), lights (intensities outside the range),
        unseen_phrasing (instructions phrased in ways absent from training). Start states a
        whole goal reaches: from_start (pick where the robot starts), carrying (a drive holding
        something), off_pose (a skill started where a learned drive stops, hands off their
        postures).
        """
        from agent.logging import configure_logging
        from agent.session import checkpoint_path, vla_available
        from policy.closed_loop import SKILL_NAMES, VARIATIONS, arrival_summary, evaluate, plan_trials, tabulate
        from scenarios.loading import builtin_scenarios

        pols = _split(policies, ("vla", "expert"), "policies")
        skill_list = _split(skills, SKILL_NAMES, "skills")
        var_list = _split(variations, VARIATIONS, "variations")
        _split(runtime, ("receding", "ensemble", "async"), "runtime")
        known = tuple(sorted(builtin_scenarios()))
        names = [_split(s, known, "scenario")[0] for s in scenarios] if scenarios else None
        ckpt = checkpoint or checkpoint_path()
        if "vla" in pols and not vla_available(ckpt):
            _fail(f"no VLA checkpoint at {ckpt} (model.safetensors missing); train one or pass --policy expert")
        jobs = plan_trials(pols, skill_list, seeds, names, var_list, first_seed)
        console.print(f"{len(jobs)} trials: {', '.join(skill_list)} × {len(names or known)} scenario(s) × {seeds} seeds × "
                      f"{', '.join(pols)} × {', '.join(var_list)}", highlight=False)
        trials_file = None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            trials_file = (out / "trials.jsonl").open("w")
        failures = 0
        with Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
            bar = progress.add_task("trials", total=len(jobs), info="")

            def on_trial(trial, done: int, total: int) -> None:
                nonlocal failures
                failures += int(not trial.success)
                if trials_file is not None:
                    trials_file.write(trial.model_dump_json() + "\n")
                    trials_file.flush()
                progress.update(bar, completed=done, info=f"{trial.policy} {trial.skill} {'ok' if trial.success else 'FAIL'}; {failures} failed")

            trials = evaluate(jobs, ckpt if "vla" in pols else None, workers, on_trial, retries, runtime,
                              initializer=configure_logging)
        if trials_file is not None:
            trials_file.close()
        cells = tabulate(trials)
        for variation in var_list:
            table = Table(title=f"closed-loop success ({variation}; perception judges, ground truth must agree)")
            table.add_column("skill")
            table.add_column("scenario")
            for p in pols:
                table.add_column(p, justify="right")
            table.add_column("false confirmations", justify="right")
            keys = sorted({(s, sc) for (v, s, sc, _p) in cells if v == variation}, key=lambda k: (skill_list.index(k[0]), k[1] == "all", k[1]))
            for skill, sc in keys:
                row = [_rate(cells.get((variation, skill, sc, p))) for p in pols]
                fc = " ".join(str(cells[(variation, skill, sc, p)].agent_only) for p in pols if (variation, skill, sc, p) in cells)
                table.add_row(skill if sc != "all" else f"[bold]{skill}[/]", sc, *row, fc,
                              end_section=sc == "all")
            console.print(table)
        md = markdown(cells, pols, var_list)
        for line in md.splitlines():
            if line.startswith(("Failures of", "Arrival of")):
                console.print(line, highlight=False, soft_wrap=True)
        if out is not None:
            (out / "table.md").write_text(md + "\n")
            summary = {f"{v}/{s}/{sc}/{p}": {"successes": c.successes, "started": c.started, "setup_failures": c.setup_failures,
                                              "false_confirmations": c.agent_only, "rate": None if math.isnan(c.rate) else c.rate,
                                              "reasons": dict(c.reasons), **({"arrival": arrival_summary(c)} if c.arrivals else {})}
                       for (v, s, sc, p), c in cells.items()}
            (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            console.print(f"wrote {out / 'trials.jsonl'}, {out / 'table.md'}, {out / 'summary.json'}", highlight=False)
