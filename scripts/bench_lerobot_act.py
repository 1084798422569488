"""Latency of LeRobot's ACT policy, randomly initialised, for comparison with the project's VLA.

Run with the separate LeRobot environment (LeRobot 0.4.4 needs torch < 2.11):

    .venv-lerobot/bin/python scripts/bench_lerobot_act.py --threads 1 2 --n 200 [--json]

Same inputs as `vla-agent bench policy`: three cameras given as 240x320 uint8 world frames,
resized to 64x80 inside the timing (bilinear with antialiasing, as the VLA's processor does),
then mean/std normalised; state 52, action 19, chunk 20, n_action_steps 10, batch 1. ACT keeps
its default architecture (ResNet-18 backbone, d_model 512, 4 encoder and 1 decoder layers,
VAE latent zero at inference) but with `pretrained_backbone_weights=None` (nothing downloaded).
LeRobot 0.4 moved normalisation out of the policy into processor pipelines; this script does
the equivalent arithmetic itself so both timings cover frame → action.

Prints one JSON object per thread count with `--json`, otherwise a plain table. Importing nothing
from the project, it runs in any environment that has lerobot.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

CAMERAS = ("observation.images.head", "observation.images.left_wrist", "observation.images.right_wrist")


def build(image_size: tuple[int, int], state_dim: int, action_dim: int, chunk: int, n_action_steps: int):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy

    inputs = {k: PolicyFeature(type=FeatureType.VISUAL, shape=(3, *image_size)) for k in CAMERAS}
    inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))}
    config = ACTConfig(input_features=inputs, output_features=outputs, chunk_size=chunk, n_action_steps=n_action_steps,
                       pretrained_backbone_weights=None, device="cpu", push_to_hub=False)
    torch.manual_seed(0)
    return ACTPolicy(config).eval()


def percentiles(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--n", type=int, default=200, help="timed calls per measure")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--frame", type=int, nargs=2, default=[240, 320])
    ap.add_argument("--image-size", type=int, nargs=2, default=[64, 80])
    ap.add_argument("--state-dim", type=int, default=52)
    ap.add_argument("--action-dim", type=int, default=19)
    ap.add_argument("--chunk", type=int, default=20)
    ap.add_argument("--n-action-steps", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import lerobot

    policy = build(tuple(args.image_size), args.state_dim, args.action_dim, args.chunk, args.n_action_steps)
    n_params = sum(p.numel() for p in policy.parameters())
    rng = np.random.default_rng(0)
    frames = [{k: rng.integers(0, 256, (*args.frame, 3), dtype=np.uint8) for k in CAMERAS} for _ in range(8)]
    states = [rng.normal(size=args.state_dim).astype(np.float32) for _ in range(8)]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def batch(i: int) -> dict[str, torch.Tensor]:
        out = {}
        for k, img in frames[i % len(frames)].items():
            x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float() / 255.0
            x = F.interpolate(x, size=tuple(args.image_size), mode="bilinear", align_corners=False, antialias=True)
            out[k] = (x - mean) / std
        out["observation.state"] = torch.from_numpy(states[i % len(states)]).unsqueeze(0)
        return out

    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            for i in range(args.warmup):
                policy.predict_action_chunk(batch(i))
            chunk_t = []
            for i in range(args.n):
                t0 = time.perf_counter()
                policy.predict_action_chunk(batch(i))
                chunk_t.append(time.perf_counter() - t0)
            policy.reset()
            sel_t = []
            b = None
            for i in range(args.n):
                t0 = time.perf_counter()
                # like the VLA's processor, prepare the frames only when a new chunk is due
                if b is None or len(policy._action_queue) == 0:
                    b = batch(i)
                a = policy.select_action(b)
                sel_t.append(time.perf_counter() - t0)
        assert tuple(a.shape[-1:]) == (args.action_dim,), a.shape
        c50, c95 = percentiles(chunk_t)
        s50, s95 = percentiles(sel_t)
        results.append({"policy": "lerobot-act", "threads": threads, "chunk_p50_ms": c50, "chunk_p95_ms": c95,
                        "select_p50_ms": s50, "select_p95_ms": s95, "n": args.n, "params": n_params,
                        "lerobot": getattr(lerobot, "__version__", "?"), "torch": torch.__version__, "python": platform.python_version()})
    if args.json:
        for r in results:
            print(json.dumps(r))
    else:
        print(f"LeRobot {results[0]['lerobot']} ACT (random init, {n_params / 1e6:.1f} M params), torch {torch.__version__}")
        print("threads  chunk p50  chunk p95  select p50  select p95  (ms)")
        for r in results:
            print(f"{r['threads']:>7}  {r['chunk_p50_ms']:9.2f}  {r['chunk_p95_ms']:9.2f}  {r['select_p50_ms']:10.3f}  {r['select_p95_ms']:10.2f}")


if __name__ == "__main__":
    main()
