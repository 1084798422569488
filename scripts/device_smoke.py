"""Smoke check for scripts/device_eval.sh: every import the eval needs, one EGL frame, one
embedding, and one short episode (plan from the cameras + a few ticks with the given policy).

Exits non-zero with a clear message on the first failure, so a broken device kit costs
seconds, not an evaluation's worth of silently failed episodes."""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")
T0 = time.perf_counter()


if len(sys.argv) == 3 and sys.argv[1] == "--compare":  # here: how far the lent machine's frames are from ours
    import numpy as np

    from scenarios.world import SimWorld

    theirs = np.load(sys.argv[2])
    world = SimWorld("kitchen")
    ours, _ = world.reset(seed=0)
    world.close()
    for k in theirs.files:
        d = np.abs(theirs[k].astype(float) - np.asarray(ours[k]).astype(float))
        print(f"{k}: mean |diff| {d.mean():.2f} of 255, max {d.max():.0f}, pixels off by > 8: {100 * (d.max(-1) > 8).mean():.1f}%")
    sys.exit(0)


def step(name: str):
    def deco(fn):
        try:
            out = fn()
        except BaseException as exc:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            print(f"SMOKE FAILED at {name}: {type(exc).__name__}: {exc}", flush=True)
            sys.exit(3)
        print(f"smoke ok  {name:<10} {time.perf_counter() - T0:6.1f} s  {out if out is not None else ''}", flush=True)
        return out

    return deco


@step("imports")
def _imports():
    import importlib

    names = ["numpy", "torch", "mujoco", "pydantic", "pydantic_core", "yaml", "gymnasium", "typer", "rich",
             "structlog", "PIL", "networkx", "py_trees", "transformers", "safetensors", "scipy", "numba",
             "pyarrow", "agent.cli", "agent.evaluation", "agent.session", "behaviors.executor",
             "perception.perception", "planner.planning", "scenarios.world", "policy"]
    from agent.logging import configure_logging

    configure_logging()  # library debug events stay quiet, as in `vla-agent`
    versions, missing = [], []
    for n in names:
        try:
            m = importlib.import_module(n)
        except Exception as exc:  # noqa: BLE001 - list every missing piece in one go
            missing.append(f"{n} ({type(exc).__name__}: {exc})")
            continue
        if n in ("numpy", "torch", "mujoco", "pydantic", "transformers", "numba"):
            versions.append(f"{n} {getattr(m, '__version__', '?')}")
    if missing:
        raise ImportError("cannot import " + "; ".join(missing))
    return ", ".join(versions)


@step("egl")
def _egl():
    import mujoco
    import numpy as np

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><light pos='0 0 3'/><geom type='box' size='.2 .2 .2' rgba='1 0 0 1'/>"
        "</worldbody></mujoco>")
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, 64, 64) as r:
        r.update_scene(data)
        img = r.render()
    if not np.asarray(img).any():
        raise RuntimeError("EGL frame is all black")
    return f"frame {img.shape}, mean {float(np.asarray(img).mean()):.1f}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}"


@step("frames")
def _frames():
    """The kitchen's three cameras at seed 0, kept for comparison with this machine's renderer
    (`python scripts/device_smoke.py --compare FILE` here)."""
    import numpy as np

    from scenarios.world import SimWorld

    world = SimWorld("kitchen")
    try:
        obs, _ = world.reset(seed=0)
    finally:
        world.close()
    frames = {k: np.asarray(v) for k, v in obs.items() if k.startswith("observation.images.")}
    out = os.environ.get("OUT")
    if out:
        np.savez_compressed(os.path.join(out, "smoke_frames.npz"), **frames)
    return ", ".join(f"{k.rsplit('.', 1)[-1]} {v.shape}" for k, v in frames.items())


@step("encoder")
def _encoder():
    from planner.language import get_encoder

    enc = get_encoder()
    v = enc.encode(["serve a drink to the person"])
    if tuple(v.shape) != (1, 384) or str(v.dtype) != "torch.float32":
        raise RuntimeError(f"embedding has shape {tuple(v.shape)} dtype {v.dtype}")
    return f"{enc.model_dir} dtype {v.dtype}"


@step("episode")
def _episode():
    from agent.session import build_session

    goal = os.environ.get("SMOKE_GOAL", "serve a drink to the person")
    policy = os.environ.get("SMOKE_POLICY", "vla")
    ex = build_session(goal, "kitchen", seed=0, policy=policy)
    try:
        for _ in range(int(os.environ.get("SMOKE_TICKS", "5"))):
            ex.tick()
    finally:
        ex.close()
    return f"{policy}: planned {len(ex.graph)} subtasks, ticked"


print(f"smoke check passed in {time.perf_counter() - T0:.1f} s", flush=True)
