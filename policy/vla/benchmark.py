"""Latency of the VLA policy at batch 1: each inference variant, 1 and 2 threads.

What is timed, per call, with `time.perf_counter`:

- `predict_action_chunk(obs)`: from three 240x320 uint8 world frames, the state and the
  instruction to a (20, 19) chunk in world units — the processor's resize to 64x80 (bilinear,
  antialiased) and normalisation are inside the timing; the instruction embedding is cached
  per string, as at run time (a fixed stand-in embedder fills the cache, so MiniLM is not
  loaded: after the first call both cost one dictionary lookup);
- `select_action(obs)` under receding-horizon execution (a chunk every `n_action_steps`
  calls, a queue pop otherwise), so its p95 is a chunk and its p50 a pop;
- with `async_row`, `select_action` of `AsyncChunkRunner` over the float32 model, paced at
  30 Hz, so the chunk is computed by the worker thread while the loop runs.

The model is the shipped architecture (the default `VLAConfig` reading the navigation goal),
randomly initialised (seed 0) — latency does not depend on the weights — with normalisation statistics drawn at random so that "world units" and
"relative to the action std" differ. Agreement of each variant with float32 is measured on
the same observations.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policy.navigation_goal import GOAL_DIM
from policy.vla.configuration_vla import ENV_KEY, STATE_KEY, TASK_KEY, VLAConfig
from policy.vla.modeling_vla import VLAPolicy
from policy.vla.optimise import AGREEMENT_TOLERANCE, ALL_VARIANTS, Agreement, OptimisedPolicy, VariantUnavailable, agreement
from policy.vla.processor_vla import VLAProcessor
from policy.vla.runtime import AsyncChunkRunner

REPO_ROOT = Path(__file__).resolve().parents[2]
LEROBOT_PYTHON = REPO_ROOT / ".venv-lerobot" / "bin" / "python"
LEROBOT_SCRIPT = REPO_ROOT / "scripts" / "bench_lerobot_act.py"
TARGET_CHUNK_MS = 10.0
INSTRUCTION = "pick up the red cup"


@dataclass
class Row:
    policy: str  # "vla" or "lerobot-act"
    variant: str
    threads: int
    chunk_p50_ms: float | None = None
    chunk_p95_ms: float | None = None
    select_p50_ms: float | None = None
    select_p95_ms: float | None = None
    speedup: float | None = None  # float32 chunk p50 / this chunk p50, same threads
    note: str = ""
    unavailable: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def meets_target(self) -> bool | None:
        """Synchronous rows: chunk p95 within the target. The async row: the loop never waits
        (its select_action p95 within the target), since its chunks are computed off the loop."""
        if self.variant.endswith("async"):
            return None if self.select_p95_ms is None else self.select_p95_ms <= TARGET_CHUNK_MS and not self.extra.get("fallbacks")
        return None if self.chunk_p95_ms is None else self.chunk_p95_ms <= TARGET_CHUNK_MS


@dataclass
class BenchResult:
    rows: list[Row]
    agreements: dict[str, Agreement]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    n: int
    params: int
    torch_version: str = torch.__version__
    lerobot_error: str | None = None

    def to_json(self) -> str:
        return json.dumps({"rows": [asdict(r) for r in self.rows], "agreements": {k: asdict(v) for k, v in self.agreements.items()},
                           "load_before": self.load_before, "load_after": self.load_after, "n": self.n, "params": self.params,
                           "torch": self.torch_version, "lerobot_error": self.lerobot_error}, indent=2)


def stand_in_embedder(dim: int = 384) -> Callable[[list[str]], torch.Tensor]:
    """A fixed unit vector per string (384 = MiniLM's size); only its cache lookup is ever timed."""
    import zlib

    def embed(texts: list[str]) -> torch.Tensor:
        out = []
        for t in texts:
            v = torch.randn(dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode())))
            out.append(v / v.norm())
        return torch.stack(out)

    return embed


def benchmark_policy_model(config: VLAConfig | None = None, seed: int = 0) -> VLAPolicy:
    """The default-size policy, randomly initialised, with random normalisation statistics."""
    config = config or VLAConfig(env_state_dim=GOAL_DIM)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    stats = {
        "state_mean": torch.randn(config.state_dim, generator=g) * 0.5,
        "state_std": torch.rand(config.state_dim, generator=g) + 0.1,
        "action_mean": torch.randn(config.action_dim, generator=g) * 0.3,
        "action_std": torch.rand(config.action_dim, generator=g) * 0.5 + 0.05,
    }
    policy = VLAPolicy(config, VLAProcessor(config, stats, text_embedder=stand_in_embedder(config.text_dim))).eval()
    if policy.model.env is not None:  # zero at initialisation: make the goal matter, so agreement covers its path
        torch.nn.init.normal_(policy.model.env[2].weight, std=0.05, generator=g)
    return policy


def observations(config: VLAConfig, n: int = 8, frame: tuple[int, int] = (240, 320), seed: int = 0) -> list[dict[str, Any]]:
    """World-shaped observations: uint8 HxWx3 frames per camera, float32 state, the instruction."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        obs: dict[str, Any] = {k: rng.integers(0, 256, (*frame, 3), dtype=np.uint8) for k in config.image_keys}
        obs[STATE_KEY] = rng.normal(size=config.state_dim).astype(np.float32)
        obs[TASK_KEY] = INSTRUCTION
        if config.env_state_dim:
            obs[ENV_KEY] = rng.normal(size=config.env_state_dim).astype(np.float32)
        out.append(obs)
    return out


def _pct(xs: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(xs, dtype=np.float64) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def time_policy(policy: Any, obs: Sequence[dict[str, Any]], n: int, warmup: int) -> tuple[list[float], list[float]]:
    """Per-call seconds of predict_action_chunk and of select_action (receding horizon)."""
    for i in range(warmup):
        policy.predict_action_chunk(obs[i % len(obs)])
    chunk = []
    for i in range(n):
        t0 = time.perf_counter()
        policy.predict_action_chunk(obs[i % len(obs)])
        chunk.append(time.perf_counter() - t0)
    policy.reset()
    select = []
    for i in range(n):
        t0 = time.perf_counter()
        policy.select_action(obs[i % len(obs)])
        select.append(time.perf_counter() - t0)
    return chunk, select


def time_async(policy: VLAPolicy, obs: Sequence[dict[str, Any]], n: int, hz: float = 30.0) -> Row:
    runner = AsyncChunkRunner(policy, policy.config.n_action_steps, max_wait_s=0.005)
    period = 1.0 / hz
    select = []
    try:
        runner.reset()
        for i in range(n):
            t0 = time.perf_counter()
            runner.select_action(obs[i % len(obs)])
            dt = time.perf_counter() - t0
            select.append(dt)
            time.sleep(max(0.0, period - dt))
        stats = runner.stats
    finally:
        runner.close()
    c50, c95 = _pct(stats.chunk_latency_s) if stats.chunk_latency_s else (None, None)
    s50, s95 = _pct(select)
    note = f"worker thread, {hz:.0f} Hz loop; {stats.chunks} chunks, {stats.waits} waits, {stats.fallbacks} fallback ticks"
    return Row("vla", "float32 async", torch.get_num_threads(), c50, c95, s50, s95, note=note,
               extra={"waits": stats.waits, "fallbacks": stats.fallbacks, "chunks": stats.chunks})


def run_lerobot(threads: Sequence[int], n: int, python: Path = LEROBOT_PYTHON, timeout: float = 900.0) -> list[Row]:
    """LeRobot's ACT timed by scripts/bench_lerobot_act.py in its own environment."""
    if not Path(python).exists():
        raise FileNotFoundError(f"no LeRobot environment at {python} (see scripts/bench_lerobot_act.py for how to make one)")
    cmd = [str(python), str(LEROBOT_SCRIPT), "--json", "--n", str(n), "--threads", *map(str, threads)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO_ROOT))
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"bench_lerobot_act.py exited {proc.returncode}: {tail[0]}")
    rows = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            rows.append(Row("lerobot-act", "float32", r["threads"], r["chunk_p50_ms"], r["chunk_p95_ms"], r["select_p50_ms"], r["select_p95_ms"],
                            note=f"LeRobot {r['lerobot']} ACT, {r['params'] / 1e6:.1f} M params, torch {r['torch']}", extra=r))
    return rows


def run_benchmark(variants: Sequence[str] = ("float32", "compile", "int8", "onnx", "fp16-cuda", "bf16-cuda", "fp16-cuda-graph"),
                  threads: Sequence[int] = (1, 2), n: int = 200, warmup: int = 10, async_row: bool = True,
                  with_lerobot: bool = False, lerobot_python: Path = LEROBOT_PYTHON,
                  progress: Callable[[str], None] | None = None, config: VLAConfig | None = None) -> BenchResult:
    unknown = [v for v in variants if v not in ALL_VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; choose from {', '.join(ALL_VARIANTS)}")
    say = progress or (lambda _msg: None)
    load_before = os.getloadavg()
    previous_threads = torch.get_num_threads()
    policy = benchmark_policy_model(config)
    obs = observations(policy.config)
    rows: list[Row] = []
    agreements: dict[str, Agreement] = {}
    unavailable: dict[str, str] = {}
    try:
        for nt in threads:
            torch.set_num_threads(nt)
            base_p50 = None
            for name in ["float32", *[v for v in variants if v != "float32"]]:
                if name in unavailable:
                    rows.append(Row("vla", name, nt, unavailable=unavailable[name]))
                    continue
                say(f"{name}, {nt} thread{'s' if nt > 1 else ''}: building")
                t0 = time.perf_counter()
                try:
                    if name == "compile":
                        torch._dynamo.reset()  # inductor's CPU kernels fix their thread count when generated
                    variant = OptimisedPolicy.build(policy, name)
                except VariantUnavailable as exc:
                    unavailable[name] = str(exc)
                    rows.append(Row("vla", name, nt, unavailable=str(exc)))
                    continue
                build_s = time.perf_counter() - t0
                if name not in agreements:
                    agreements[name] = agreement(policy, variant, obs)
                say(f"{name}, {nt} thread{'s' if nt > 1 else ''}: timing {n} calls")
                chunk, select = time_policy(variant, obs, n, warmup)
                c50, c95 = _pct(chunk)
                s50, s95 = _pct(select)
                if name == "float32":
                    base_p50 = c50
                note = variant.variant.note + (f"; built + first call {build_s:.0f} s" if build_s >= 1 else "")
                rows.append(Row("vla", name, nt, c50, c95, s50, s95, speedup=(base_p50 / c50) if base_p50 else None, note=note))
            if async_row:
                say(f"float32 async, {nt} thread{'s' if nt > 1 else ''}: {n} ticks at 30 Hz")
                rows.append(time_async(policy, obs, n))
    finally:
        torch.set_num_threads(previous_threads)
    lerobot_error = None
    if with_lerobot:
        say("LeRobot ACT in its own environment")
        try:
            base = {r.threads: r.chunk_p50_ms for r in rows if r.policy == "vla" and r.variant == "float32"}
            for r in run_lerobot(threads, n, lerobot_python):
                r.speedup = base[r.threads] / r.chunk_p50_ms if base.get(r.threads) and r.chunk_p50_ms else None
                rows.append(r)
        except (OSError, RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            lerobot_error = str(exc)
    return BenchResult(rows, agreements, load_before, os.getloadavg(), n, policy.num_parameters(), lerobot_error=lerobot_error)


__all__ = ["AGREEMENT_TOLERANCE", "BenchResult", "Row", "run_benchmark", "TARGET_CHUNK_MS"]
