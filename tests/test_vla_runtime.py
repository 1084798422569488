"""The VLA inference runtime: chunk execution strategies, the async runner, optimised variants,
and the `bench policy` command (on a tiny model)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from policy.vla import VLAConfig, VLAPolicy, VLAProcessor
from policy.vla.optimise import (AGREEMENT_TOLERANCE, GPU_VARIANTS, OptimisedPolicy, VariantUnavailable, agreement, build_variant,
                                 cuda_available)
from policy.vla.runtime import AsyncChunkRunner, RecedingHorizonExecutor, TemporalEnsembleExecutor, make_executor
from tests.test_vla_model import TINY, batch, fake_embedder

torch.set_num_threads(1)

A = 3  # action dimension of the stub


class StubPolicy:
    """Deterministic chunks: chunk[i] = 100 * obs['t'] + i in every dimension; counts its calls."""

    def __init__(self, horizon: int = 5, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.horizon = horizon
        self.delay_s = delay_s
        self.gate = gate
        self.calls: list[int] = []
        self.threads: list[str] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def predict_action_chunk(self, obs):
        if self.gate is not None:
            self.gate.wait(5.0)
        if self.delay_s:
            time.sleep(self.delay_s)
        self.calls.append(obs["t"])
        self.threads.append(threading.current_thread().name)
        return np.repeat((100.0 * obs["t"] + np.arange(self.horizon))[:, None], A, axis=1)


def run(executor, ticks: int) -> list[float]:
    return [float(executor.select_action({"t": t})[0]) for t in range(ticks)]


# -- receding horizon -------------------------------------------------------------------------
def test_receding_horizon_executes_the_first_k_of_each_chunk():
    stub = StubPolicy(horizon=5)
    ex = RecedingHorizonExecutor(stub, n_action_steps=3)
    assert run(ex, 8) == [0, 1, 2, 300, 301, 302, 600, 601]
    assert stub.calls == [0, 3, 6]
    ex.reset()
    assert stub.resets == 1
    assert run(ex, 2) == [0, 1]  # the queue was emptied: a fresh chunk from tick 0's observation


def test_receding_horizon_rejects_k_beyond_the_horizon():
    with pytest.raises(ValueError, match="exceeds the chunk's horizon"):
        RecedingHorizonExecutor(StubPolicy(horizon=4), n_action_steps=5).select_action({"t": 0})


# -- temporal ensembling ----------------------------------------------------------------------
def expected_ensemble(t: int, horizon: int, m: float, every: int = 1) -> float:
    starts = [s for s in range(0, t + 1, every) if t - s < horizon]
    vals = np.array([100.0 * s + (t - s) for s in starts])  # oldest first
    w = np.exp(-m * np.arange(len(vals)))
    return float((w * vals).sum() / w.sum())


@pytest.mark.parametrize("m", [0.0, 0.01, 0.5, 2.0])
def test_temporal_ensembling_is_acts_exponential_average(m):
    stub = StubPolicy(horizon=4)
    ex = TemporalEnsembleExecutor(stub, m=m)
    got = run(ex, 10)
    want = [expected_ensemble(t, 4, m) for t in range(10)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert stub.calls == list(range(10))  # one chunk per tick
    # large m trusts the oldest chunk: at tick 5 the chunks from ticks 2..5 propose 203, 302, 401, 500
    if m == 2.0:
        assert abs(got[5] - 203) < abs(got[5] - 500)


def test_temporal_ensembling_every_other_tick_and_reset():
    stub = StubPolicy(horizon=4)
    ex = TemporalEnsembleExecutor(stub, m=0.1, query_every=2)
    np.testing.assert_allclose(run(ex, 7), [expected_ensemble(t, 4, 0.1, every=2) for t in range(7)], rtol=1e-6)
    assert stub.calls == [0, 2, 4, 6]
    ex.reset()
    assert run(ex, 1) == [0.0]


def test_temporal_ensembling_matches_lerobot_online_update():
    """LeRobot's ACTTemporalEnsembler keeps a running weighted mean; the explicit sum must agree."""
    horizon, m = 5, 0.3
    weights = np.exp(-m * np.arange(horizon))
    cum = np.cumsum(weights)
    ens, count = None, None
    stub = StubPolicy(horizon=horizon)
    ex = TemporalEnsembleExecutor(stub, m=m)
    for t in range(9):
        chunk = stub.predict_action_chunk({"t": t})[:, 0].copy()
        if ens is None:
            ens, count = chunk.copy(), np.ones(horizon, dtype=int)
        else:  # LeRobot's update: ens[:-1] = (ens * cum[count-1] + w[count] * new[:-1]) / cum[count]
            ens *= cum[count - 1]
            ens += weights[count] * chunk[:-1]
            ens /= cum[count]
            count = np.minimum(count + 1, horizon)
            ens = np.concatenate([ens, chunk[-1:]])
            count = np.concatenate([count, [1]])
        lerobot_action, ens, count = ens[0], ens[1:], count[1:]
        assert float(ex.select_action({"t": t})[0]) == pytest.approx(lerobot_action, rel=1e-6)


# -- asynchronous runner ----------------------------------------------------------------------
def test_async_runner_prefetches_in_the_background_and_switches_after_k():
    stub = StubPolicy(horizon=8)
    with AsyncChunkRunner(stub, n_action_steps=4, prefetch_at=2, max_wait_s=2.0) as runner:
        got = run(runner, 12)
        # chunk 0 (sync) for ticks 0-3; chunk from tick 2 for ticks 4-7 (as its steps 2..5); chunk from tick 6 for 8-11
        assert got == [0, 1, 2, 3, 202, 203, 204, 205, 602, 603, 604, 605]
        assert stub.calls[:3] == [0, 2, 6]  # and the request from tick 10 may be under way
        assert stub.threads[0] == threading.current_thread().name
        assert all(name == "vla-chunk-worker" for name in stub.threads[1:])
        assert runner.stats.fallbacks == 0
    assert not runner.worker_alive and runner.closed
    with pytest.raises(RuntimeError, match="closed"):
        runner.select_action({"t": 0})


def test_async_runner_falls_back_deterministically_when_the_worker_is_late():
    gate = threading.Event()
    stub = StubPolicy(horizon=6)
    runner = AsyncChunkRunner(stub, n_action_steps=3, prefetch_at=1, max_wait_s=0.01)
    try:
        assert float(runner.select_action({"t": 0})[0]) == 0  # sync first chunk, before the gate applies
        stub.gate = gate  # from now on the worker blocks until released
        t0 = time.perf_counter()
        got = [float(runner.select_action({"t": t})[0]) for t in range(1, 9)]
        assert time.perf_counter() - t0 < 1.0  # never blocked beyond the bounded wait
        # continue chunk 0 past k (3, 4, 5), then hold its last action
        assert got == [1, 2, 3, 4, 5, 5, 5, 5]
        assert runner.stats.fallbacks == 6
        gate.set()  # the worker delivers the chunk requested at tick 1: covers up to tick 6, now stale
        deadline = time.time() + 5
        while runner._result is None and time.time() < deadline:
            time.sleep(0.005)
        a9 = float(runner.select_action({"t": 9})[0])
        assert runner.stats.dropped == 1 and a9 == 5  # dropped, a new request made from tick 9
        runner.max_wait_s = 2.0
        got = [float(runner.select_action({"t": t})[0]) for t in (10, 11, 12)]
        assert got == [901, 902, 903]
    finally:
        gate.set()
        runner.close()
    assert not runner.worker_alive


def test_async_runner_reset_drops_in_flight_work_and_close_joins():
    gate = threading.Event()
    stub = StubPolicy(horizon=6)
    runner = AsyncChunkRunner(stub, n_action_steps=3, prefetch_at=1, max_wait_s=0.0)
    runner.select_action({"t": 0})
    stub.gate = gate
    runner.select_action({"t": 1})  # requests a chunk from tick 1; the worker blocks on the gate
    deadline = time.time() + 5
    while not runner._busy and time.time() < deadline:
        time.sleep(0.001)
    runner.reset()
    gate.set()  # the worker finishes the stale chunk; the sync call below waits for the model lock
    assert float(runner.select_action({"t": 50})[0]) == 5000  # fresh sync chunk; the old one is dropped
    deadline = time.time() + 5
    while runner.stats.dropped == 0 and time.time() < deadline:
        time.sleep(0.005)
    assert runner.stats.dropped == 1
    runner.close()
    assert not runner.worker_alive
    runner.close()  # idempotent


def test_async_runner_surfaces_worker_errors():
    class Failing(StubPolicy):
        def predict_action_chunk(self, obs):
            if obs["t"] > 0:
                raise ValueError("camera unplugged")
            return super().predict_action_chunk(obs)

    with AsyncChunkRunner(Failing(horizon=4), n_action_steps=2, prefetch_at=0, max_wait_s=2.0) as runner:
        runner.select_action({"t": 0})
        runner.select_action({"t": 1})
        with pytest.raises(RuntimeError, match="camera unplugged"):
            for t in range(2, 6):
                runner.select_action({"t": t})


def test_executors_run_the_real_policy_and_make_executor_checks_mode():
    policy = VLAPolicy(TINY, VLAProcessor(TINY, text_embedder=fake_embedder)).eval()
    obs = {k: v[0].numpy() for k, v in batch(1, np.random.default_rng(3), "x").items() if k.startswith("observation")}
    obs["task"] = "pick up the red cup"
    for mode in ("receding", "ensemble", "async"):
        with make_executor(policy, mode, TINY.n_action_steps) as ex:
            actions = [ex.select_action(obs) for _ in range(7)]
            assert all(a.shape == (TINY.action_dim,) and a.dtype == np.float32 for a in actions)
    with pytest.raises(ValueError, match="unknown execution mode"):
        make_executor(policy, "sometimes", 3)


def test_executors_are_policies_for_the_skill_leaves():
    from behaviors.protocols import PolicyLike

    stub = StubPolicy()
    for ex in (RecedingHorizonExecutor(stub, 2), TemporalEnsembleExecutor(stub), AsyncChunkRunner(stub, 2)):
        with ex:
            assert isinstance(ex, PolicyLike)
            assert ex.predict_action_chunk({"t": 1}).shape == (5, A)


# -- optimised variants -----------------------------------------------------------------------
def tiny_policy(seed: int = 0) -> tuple[VLAPolicy, list[dict]]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    processor = VLAProcessor.fit(TINY, rng.normal(size=(50, 6)), rng.normal(size=(50, 4)) * 0.2, text_embedder=fake_embedder)
    policy = VLAPolicy(TINY, processor).eval()
    obs = []
    for i in range(4):
        o = {k: v[0].numpy() for k, v in batch(1, rng, "x").items() if k.startswith("observation")}
        o["task"] = ["pick up the red cup", "pick up the blue cup"][i % 2]
        obs.append(o)
    return policy, obs


@pytest.mark.parametrize("name", ["float32", "int8"])
def test_cpu_variant_agrees_with_float32(name):
    policy, obs = tiny_policy()
    opt = OptimisedPolicy.build(policy, name)
    a = agreement(policy, opt, obs)
    assert a.n_obs == 4 and a.variant == name
    assert a.max_rel_std <= AGREEMENT_TOLERANCE[name], a
    # the LeRobot interface works on the variant too
    opt.reset()
    assert opt.select_action(obs[0]).shape == (TINY.action_dim,)


@pytest.mark.slow  # inductor's first compile takes 15-40 s on two busy cores
def test_compile_variant_agrees_or_says_why():
    """torch.compile needs a C++ toolchain; when it cannot run, the reason is reported, not raised."""
    policy, obs = tiny_policy()
    torch._dynamo.reset()
    try:
        opt = OptimisedPolicy.build(policy, "compile")
    except VariantUnavailable as exc:
        assert str(exc)
        pytest.skip(f"torch.compile unavailable here: {exc}")
    a = agreement(policy, opt, obs)
    assert a.max_rel_std <= AGREEMENT_TOLERANCE["compile"], a


def test_onnx_variant_is_reported_unavailable_without_onnxruntime():
    import importlib.util

    policy, obs = tiny_policy()
    if importlib.util.find_spec("onnxruntime") is None:
        with pytest.raises(VariantUnavailable, match="onnxruntime is not installed"):
            build_variant(policy.model, "onnx")
    else:  # pragma: no cover - only where onnxruntime is installed
        a = agreement(policy, OptimisedPolicy.build(policy, "onnx"), obs)
        assert a.max_rel_std <= AGREEMENT_TOLERANCE["onnx"]


@pytest.mark.parametrize("name", GPU_VARIANTS)
def test_gpu_variant_agrees_with_float32(name):
    policy, obs = tiny_policy()
    if not cuda_available():
        with pytest.raises(VariantUnavailable, match="no CUDA device"):
            build_variant(policy.model, name)
        pytest.skip("no GPU: the CUDA variants are checked where CUDA is present")
    try:  # pragma: no cover - GPU machines
        opt = OptimisedPolicy.build(policy, name)
    except VariantUnavailable as exc:  # e.g. no bf16 on an old GPU
        pytest.skip(str(exc))
    a = agreement(policy, opt, obs)  # pragma: no cover
    assert a.max_rel_std <= AGREEMENT_TOLERANCE[name], a  # pragma: no cover


def test_unknown_variant_is_a_value_error():
    policy, _ = tiny_policy()
    with pytest.raises(ValueError, match="unknown variant"):
        build_variant(policy.model, "int4")


# -- the command ------------------------------------------------------------------------------
def cli_app() -> typer.Typer:
    from agent import commands_vla

    app = typer.Typer()
    bench = typer.Typer()
    app.add_typer(bench, name="bench")

    @app.command("other")
    def other() -> None:  # a second command keeps typer from collapsing the group
        pass

    commands_vla.register(app)
    return app


def test_bench_policy_command_prints_the_table(monkeypatch, tmp_path):
    import policy.vla.benchmark as bm

    real = bm.run_benchmark
    monkeypatch.setattr(bm, "run_benchmark", lambda *a, **kw: real(*a, **{**kw, "config": TINY}))
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli_app(), ["bench", "policy", "--variants", "float32,int8,onnx,fp16-cuda", "--threads", "1",
                                            "-n", "10", "--warmup", "1", "--no-async", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "float32" in result.output and "int8" in result.output and "Agreement" in result.output
    assert "load average" in result.output
    assert out.exists() and '"chunk_p50_ms"' in out.read_text()


def test_bench_policy_rejects_unknown_variant():
    result = CliRunner().invoke(cli_app(), ["bench", "policy", "--variants", "float32,int9"])
    assert result.exit_code == 2
    assert "int9" in result.output and "int8" in result.output


def test_bench_policy_reports_a_missing_lerobot_env(monkeypatch, tmp_path):
    import policy.vla.benchmark as bm

    real = bm.run_benchmark
    monkeypatch.setattr(bm, "run_benchmark", lambda *a, **kw: real(*a, **{**kw, "config": TINY}))
    result = CliRunner().invoke(cli_app(), ["bench", "policy", "--variants", "float32", "--threads", "1", "-n", "10", "--no-async",
                                            "--with-lerobot", "--lerobot-python", str(tmp_path / "nope" / "python")])
    assert result.exit_code == 0, result.output
    assert "LeRobot ACT not measured" in result.output


def test_cuda_graph_variant_refuses_another_batch_size():
    policy, obs = tiny_policy()
    if not cuda_available():
        pytest.skip("no GPU: the CUDA graph variant is checked where CUDA is present")
    opt = OptimisedPolicy.build(policy, "bf16-cuda-graph")  # pragma: no cover - GPU machines
    stacked = {k: np.stack([o[k] for o in obs[:2]]) if k != "task" else obs[0][k] for k in obs[0]}  # pragma: no cover
    with pytest.raises(ValueError, match="captured for images of shape"):  # pragma: no cover
        opt.predict_action_chunk(stacked)
