"""The checks and timings that need a CUDA GPU, in one run, for a lent GPU machine.

Two steps, because the GPU machine has neither MuJoCo nor the MiniLM weights:

1. here, with the project's venv: `python scripts/gpu_check.py record --out .gpu/observations.npz`
   renders real observations of the four built-in rooms (three cameras, 240x320) and embeds
   their instructions with MiniLM, so the GPU run can feed the shipped checkpoint real inputs;
2. on the GPU machine: `python scripts/gpu_check.py run --observations .gpu/observations.npz --out DIR`
   - the VLA test files (model, training, runtime), whose CUDA tests skip without a GPU;
   - `bench policy` over the CPU and CUDA variants (the CPU rows are that machine's CPUs);
   - agreement of each CUDA variant with float32 for the shipped checkpoint on real observations;
   - training throughput (samples/s) of the default-size model on the GPU and on that
     machine's CPUs, on a synthetic dataset shaped like the real one.

`run --device cpu` gives the training-throughput figure on the machine it runs on (this one),
so CPU and GPU training speeds can be put side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROOMS = {"kitchen": "pick up the red cup", "distractors": "pick up the red can", "tidy_table": "pick up the blue cup",
         "living_room": "look for the person"}


def record(out: Path, seeds: int) -> None:
    """Real observations (world frames, state) and MiniLM embeddings of their instructions."""
    from policy.vla.processor_vla import default_text_embedder
    from scenarios.world import SimWorld

    arrays: dict[str, list[np.ndarray]] = {}
    tasks = []
    for room, task in ROOMS.items():
        world = SimWorld(room)
        for seed in range(seeds):
            obs, _ = world.reset(seed=seed)
            for key, value in obs.items():
                if key.startswith("observation."):
                    arrays.setdefault(key, []).append(np.asarray(value))
            tasks.append(task)
        world.close()
    names = sorted(set(tasks))
    embeddings = default_text_embedder()(names).float().numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **{k: np.stack(v) for k, v in arrays.items()}, task=np.array(tasks), task_names=np.array(names),
                        task_embeddings=embeddings)
    print(f"{len(tasks)} observations, {len(names)} instructions -> {out} ({out.stat().st_size / 2**20:.1f} MiB)")


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    line = lambda vals: "| " + " | ".join(str(v).ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    return "\n".join([line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line([r.get(c, "") for c in cols]) for r in rows)])


def run_tests(out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/test_vla_model.py", "tests/test_vla_training.py",
           "tests/test_vla_runtime.py"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400)
    (out / "pytest.log").write_text(proc.stdout + proc.stderr)
    tail = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return {"returncode": proc.returncode, "summary": tail, "seconds": round(time.perf_counter() - t0, 1)}


def shipped_agreement(observations: Path, variants: list[str]) -> list[dict[str, Any]]:
    """Each CUDA variant of the shipped checkpoint against its float32 model, on real observations."""
    import torch

    from agent.session import DEFAULT_CHECKPOINT
    from policy.vla import VLAPolicy
    from policy.vla.optimise import AGREEMENT_TOLERANCE, OptimisedPolicy, VariantUnavailable, agreement

    data = np.load(observations)
    table = dict(zip(data["task_names"].tolist(), torch.from_numpy(data["task_embeddings"])))

    def embed(texts: list[str]) -> torch.Tensor:
        return torch.stack([table[t] for t in texts])

    policy = VLAPolicy.from_pretrained(DEFAULT_CHECKPOINT, text_embedder=embed).eval()
    keys = [k for k in data.files if k.startswith("observation.")]
    obs = [{**{k: data[k][i] for k in keys}, "task": str(data["task"][i])} for i in range(len(data["task"]))]
    rows = []
    for name in variants:
        try:
            a = agreement(policy, OptimisedPolicy.build(policy, name), obs)
        except VariantUnavailable as exc:
            rows.append({"variant": name, "unavailable": str(exc)})
            continue
        tol = AGREEMENT_TOLERANCE[name]
        rows.append({"variant": name, "observations": a.n_obs, "max_abs": f"{a.max_abs:.2e}", "max_rel_std": f"{a.max_rel_std:.2e}",
                     "mean_abs": f"{a.mean_abs:.2e}", "tolerance": tol, "within": a.max_rel_std <= tol})
    return rows


class SyntheticEpisodes:
    """Items shaped like `DemonstrationDataset`'s for the default config: float CHW frames per camera."""

    def __init__(self, n: int, episodes: int = 64, seed: int = 0) -> None:
        import torch

        from policy.vla.configuration_vla import VLAConfig

        c = VLAConfig()
        g = torch.Generator().manual_seed(seed)
        self.frames = {k: torch.rand(n, 3, *c.image_size, generator=g) for k in c.image_keys}
        self.state = torch.randn(n, c.state_dim, generator=g)
        self.action = torch.randn(n, c.chunk_size, c.action_dim, generator=g)
        self.episode_indices = (np.arange(n) * episodes // n).tolist()
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        item = {k: v[i] for k, v in self.frames.items()}
        item.update({"observation.state": self.state[i], "action": self.action[i], "action_is_pad": torch.zeros(len(self.action[i]), dtype=torch.bool),
                     "task": "pick up the red cup" if i % 2 else "put the cup on the table"})
        return item


def training_throughput(device: str, steps: int, batch: int, workdir: Path, deterministic: bool = True) -> dict[str, Any]:
    from policy.vla import VLAProcessor
    from policy.vla.benchmark import stand_in_embedder
    from policy.vla.configuration_vla import VLAConfig
    from policy.vla.training import TrainConfig, train

    cfg = VLAConfig()
    data = SyntheticEpisodes(4096)
    stats = VLAProcessor.fit(cfg, data.state.numpy(), data.action[:, 0].numpy(), text_embedder=stand_in_embedder()).stats
    processor = VLAProcessor(cfg, stats, text_embedder=stand_in_embedder())
    tc = TrainConfig(steps=steps, batch_size=batch, warmup_steps=min(50, steps // 2), log_every=max(1, steps // 4), eval_every=10**6,
                     save_every=10**6, val_fraction=0.05, device=device, deterministic=deterministic)
    out = workdir / f"train_{device}_{batch}_{'det' if deterministic else 'fast'}"
    t0 = time.perf_counter()
    train(data, out, cfg, tc, processor)
    wall = time.perf_counter() - t0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in lines if "samples_per_s" in r][-1]
    return {"device": device, "batch": batch, "deterministic": deterministic, "steps": steps, "samples_per_s": round(last["samples_per_s"], 1), "wall_s": round(wall, 1),
            "final_loss": round(last["loss"], 4)}


def run(observations: Path | None, out: Path, device: str, bench_calls: int) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    print(json.dumps(report), flush=True)
    from policy.vla.optimise import GPU_VARIANTS

    cuda_variants = list(GPU_VARIANTS)
    if device == "cuda":
        report["tests"] = run_tests(out)
        print("tests:", report["tests"], flush=True)
        from agent.commands_vla import bench_policy

        bench_policy(variants=",".join(["float32", "int8", *cuda_variants]), threads="1,2", n=bench_calls, warmup=20, no_async=True,
                     with_lerobot=False, lerobot_python=None, json_out=out / "bench.json")
        if observations is not None:
            report["shipped_agreement"] = shipped_agreement(observations, cuda_variants)
            print(_table(report["shipped_agreement"], ["variant", "observations", "max_abs", "max_rel_std", "mean_abs", "tolerance", "within", "unavailable"]), flush=True)
    runs = [("cuda", 400, 64, True), ("cuda", 400, 64, False), ("cuda", 200, 256, True), ("cpu", 30, 64, True)] if device == "cuda" else [("cpu", 30, 64, True)]
    report["training"] = []
    for dev, steps, batch, det in runs:
        try:
            report["training"].append(training_throughput(dev, steps, batch, out / "work", det))
        except Exception as exc:  # noqa: BLE001 - reported in the table
            report["training"].append({"device": dev, "batch": batch, "error": f"{type(exc).__name__}: {exc}"[:300]})
        print(report["training"][-1], flush=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(_table(report["training"], ["device", "batch", "deterministic", "steps", "samples_per_s", "wall_s", "final_loss", "error"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="render real observations and embed their instructions (needs the project's venv)")
    rec.add_argument("--out", type=Path, default=REPO / ".gpu" / "observations.npz")
    rec.add_argument("--seeds", type=int, default=2)
    r = sub.add_parser("run", help="the GPU checks and timings")
    r.add_argument("--observations", type=Path, default=None)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    r.add_argument("--bench-calls", type=int, default=300)
    args = parser.parse_args()
    if args.cmd == "record":
        record(args.out, args.seeds)
    else:
        run(args.observations, args.out, args.device, args.bench_calls)


if __name__ == "__main__":
    main()
