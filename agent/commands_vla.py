"""Commands of the VLA inference runtime: `vla-agent bench policy`.

`register(app)` adds `policy` to the existing `bench` group (or, if there is none, a `bench`
group of its own).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from agent.exit_codes import ExitCode

from agent.console import console, err_console


def _find_group(app: typer.Typer, name: str) -> typer.Typer | None:
    for group in app.registered_groups:
        if group.name == name and group.typer_instance is not None:
            return group.typer_instance
    return None


def _ms(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def bench_policy(
    variants: Annotated[str, typer.Option("--variants", help="Comma-separated: float32, compile, int8, onnx, float32-cuda, fp16-cuda, bf16-cuda, fp16-cuda-graph, bf16-cuda-graph (CUDA ones only where a GPU is).")] = "float32,compile,int8,onnx,fp16-cuda,bf16-cuda,fp16-cuda-graph",
    threads: Annotated[str, typer.Option("--threads", help="Comma-separated torch intra-op thread counts.")] = "1,2",
    n: Annotated[int, typer.Option("-n", "--calls", min=10, help="Timed calls per measure.")] = 200,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed calls before each measure.")] = 10,
    no_async: Annotated[bool, typer.Option("--no-async", help="Skip the asynchronous-runner row (it paces 30 Hz: n/30 s per thread count).")] = False,
    with_lerobot: Annotated[bool, typer.Option("--with-lerobot", help="Also time LeRobot's ACT (random init) in its own environment.")] = False,
    lerobot_python: Annotated[Optional[Path], typer.Option("--lerobot-python", help="Python of the LeRobot environment (default .venv-lerobot/bin/python).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON to this file.")] = None,
) -> None:
    """Latency of the VLA policy at batch 1 (p50/p95 of predict_action_chunk and select_action), per
    inference variant and thread count, with speed-ups over float32 and agreement with it."""
    from policy.vla.benchmark import LEROBOT_PYTHON, TARGET_CHUNK_MS, run_benchmark
    from policy.vla.optimise import AGREEMENT_TOLERANCE, ALL_VARIANTS

    names = [v.strip() for v in variants.split(",") if v.strip()]
    bad = [v for v in names if v not in ALL_VARIANTS]
    if bad or not names:
        import difflib

        near = difflib.get_close_matches(bad[0], ALL_VARIANTS, n=1) if bad else []
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        err_console.print(f"[bold red]error:[/] unknown variant {bad[0] if bad else '(none)'!r}{hint}; choose from {', '.join(ALL_VARIANTS)}", highlight=False)
        raise typer.Exit(int(ExitCode.BAD_INPUT))
    try:
        thread_counts = [int(t) for t in threads.split(",") if t.strip()]
        if not thread_counts or any(t < 1 for t in thread_counts):
            raise ValueError
    except ValueError:
        err_console.print(f"[bold red]error:[/] --threads must be comma-separated positive integers, got {threads!r}", highlight=False)
        raise typer.Exit(int(ExitCode.BAD_INPUT))

    with err_console.status("benchmarking ...") as status:
        result = run_benchmark(names, thread_counts, n=n, warmup=warmup, async_row=not no_async, with_lerobot=with_lerobot,
                               lerobot_python=lerobot_python or LEROBOT_PYTHON, progress=lambda m: status.update(m))

    lb, la = result.load_before, result.load_after
    table = Table(title=(f"Policy latency, batch 1, default VLAConfig ({result.params / 1e6:.2f} M params), 3 cameras 240x320 → 64x80 "
                         f"(resize inside the timing), {result.n} calls; load average {lb[0]:.2f} before, {la[0]:.2f} after, {os.cpu_count()} CPUs, "
                         f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}"))
    for col, just in (("policy", "left"), ("variant", "left"), ("threads", "right"), ("chunk p50 ms", "right"), ("chunk p95 ms", "right"),
                      ("select p50 ms", "right"), ("select p95 ms", "right"), ("speed-up", "right"), (f"p95 ≤ {TARGET_CHUNK_MS:.0f} ms", "center"),
                      ("note", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in result.rows:
        if r.unavailable:
            table.add_row(r.policy, r.variant, str(r.threads), "—", "—", "—", "—", "—", "—", f"[yellow]unavailable:[/] {r.unavailable}")
            continue
        ok = r.meets_target
        table.add_row(r.policy, r.variant, str(r.threads), _ms(r.chunk_p50_ms), _ms(r.chunk_p95_ms), _ms(r.select_p50_ms, 3), _ms(r.select_p95_ms),
                      "—" if r.speedup is None else f"{r.speedup:.2f}×", "—" if ok is None else ("[green]yes[/]" if ok else "[red]no[/]"), r.note)
    console.print(table)

    agree = Table(title="Agreement with float32 on the same 8 observations (chunk of 20 × 19 actions)")
    for col in ("variant", "max |Δ| (world units)", "max |Δ| / action std", "mean |Δ|", "tolerance (/ std)", "within"):
        agree.add_column(col, justify="left" if col == "variant" else "right")
    for name, a in result.agreements.items():
        tol = AGREEMENT_TOLERANCE.get(name, 0.0)
        agree.add_row(name, f"{a.max_abs:.2e}", f"{a.max_rel_std:.2e}", f"{a.mean_abs:.2e}", f"{tol:g}", "[green]yes[/]" if a.ok(tol) else "[red]no[/]")
    console.print(agree)
    if any(t > 1 for t in thread_counts) and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        err_console.print("[yellow]note:[/] with OMP_WAIT_POLICY unset, OpenMP threads spin while they wait; on a machine whose cores are "
                          "busy with other work, multi-thread rows can be many times slower. Compare with OMP_WAIT_POLICY=PASSIVE "
                          "(set before the program starts).", highlight=False)
    if with_lerobot and result.lerobot_error:
        err_console.print(f"[yellow]LeRobot ACT not measured:[/] {result.lerobot_error}", highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(result.to_json() + "\n")
        console.print(f"results written to {json_out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `bench policy` to the existing `bench` group (or create `bench`)."""
    bench = _find_group(app, "bench")
    if bench is None:
        bench = typer.Typer(help="Benchmarks that print timings measured on this machine.", no_args_is_help=True)
        app.add_typer(bench, name="bench")
    bench.command("policy")(bench_policy)
