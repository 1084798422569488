"""Variants of the VLA model for inference, and their agreement with the float32 model.

Each variant is a callable with the model's signature — normalised (images, state, text) in,
normalised chunk out, float32 CPU tensors both ways — wrapped by `OptimisedPolicy` into
LeRobot's policy interface (the same processor, so resizing, normalisation and the cached
instruction embedding are shared with the float model):

- `float32`: the eager model (the baseline every other variant is compared with);
- `compile`: `torch.compile` (inductor; needs a C++ compiler at first call);
- `int8`: dynamic int8 quantisation of the Linear layers (`torch.ao.quantization.quantize_dynamic`:
  weights int8, activations quantised per batch at run time; convolutions stay float);
- `onnx`: ONNX Runtime on CPU, only when `onnxruntime` is importable (it is not a dependency);
- `float32-cuda`: the eager float32 model on the GPU (what the GPU alone buys);
- `fp16-cuda` / `bf16-cuda`: CUDA autocast, only when a GPU is present;
- `fp16-cuda-graph` / `bf16-cuda-graph`: autocast captured once in a CUDA graph and replayed. At batch 1 this
  model is a few hundred small kernels, so launch overhead, not arithmetic, bounds the eager GPU
  variants; a graph replays them with one launch.

`build_variant` raises `VariantUnavailable` with the reason when a variant cannot run here, so a
benchmark reports why instead of failing. `agreement` measures the largest action difference
against the float32 model on the same observations, in world units and relative to the
action's standard deviation (the processor's normalisation statistics).
"""

from __future__ import annotations

import copy
import importlib.util
import io
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from policy.vla.modeling_vla import VLAModel, VLAPolicy

ModelFn = Callable[..., torch.Tensor]  # (images, state, text[, env]) -> normalised chunk

CPU_VARIANTS = ("float32", "compile", "int8", "onnx")
GPU_VARIANTS = ("float32-cuda", "fp16-cuda", "bf16-cuda", "fp16-cuda-graph", "bf16-cuda-graph")
ALL_VARIANTS = CPU_VARIANTS + GPU_VARIANTS


class VariantUnavailable(RuntimeError):
    """This variant cannot run on this machine; the message says why."""


@dataclass
class Variant:
    name: str
    fn: ModelFn
    device: str
    note: str = ""


def _frozen_copy(model: VLAModel) -> VLAModel:
    m = copy.deepcopy(model).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _example_inputs(model: VLAModel, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """(images, state, text), plus the environment state when the model reads one."""
    c = model.config
    g = torch.Generator().manual_seed(0)
    inputs = (torch.rand(batch, len(c.image_keys), 3, *c.image_size, generator=g),
              torch.randn(batch, c.state_dim, generator=g), torch.randn(batch, c.text_dim, generator=g))
    return inputs + ((torch.randn(batch, c.env_input_dim, generator=g),) if c.env_state_dim else ())


def _input_names(model: VLAModel) -> list[str]:
    return ["images", "state", "text"] + (["env"] if model.config.env_state_dim else [])


def cuda_available() -> bool:
    return torch.cuda.is_available()


def build_variant(model: VLAModel, name: str, warmup: bool = True) -> Variant:
    """The `name` variant of `model` (left untouched); raises VariantUnavailable with the reason.

    `warmup` runs it once on example inputs, so compilation and its failures happen here and
    not inside a timed loop.
    """
    if name not in ALL_VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(ALL_VARIANTS)}")
    builder = _BUILDERS[name]
    variant = builder(model)
    if warmup:
        try:
            with torch.inference_mode():
                variant.fn(*_example_inputs(model))
        except VariantUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise VariantUnavailable(f"{name} failed on its first call: {type(exc).__name__}: {first[:300]}") from exc
    return variant


def _float32(model: VLAModel) -> Variant:
    m = _frozen_copy(model)
    return Variant("float32", m, "cpu", "eager PyTorch")


def _compile(model: VLAModel) -> Variant:
    if not hasattr(torch, "compile"):
        raise VariantUnavailable("this torch has no torch.compile")
    m = _frozen_copy(model)
    try:
        compiled = torch.compile(m, dynamic=False)
    except Exception as exc:  # noqa: BLE001
        raise VariantUnavailable(f"torch.compile refused the model: {type(exc).__name__}: {exc}") from exc
    return Variant("compile", compiled, "cpu", "torch.compile (inductor), static shapes")


def _int8(model: VLAModel) -> Variant:
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as exc:  # pragma: no cover - removed in some future torch
        raise VariantUnavailable(f"torch.ao.quantization.quantize_dynamic is missing: {exc}") from exc
    if "fbgemm" not in torch.backends.quantized.supported_engines and "x86" not in torch.backends.quantized.supported_engines:
        raise VariantUnavailable(f"no x86/fbgemm quantised engine (have {torch.backends.quantized.supported_engines})")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantize_dynamic's deprecation notice (torchao is its successor)
        q = quantize_dynamic(_frozen_copy(model), {nn.Linear}, dtype=torch.qint8)
    _unfuse_transformer(q.transformer)
    n_q = sum(1 for mod in q.modules() if type(mod).__name__ == "Linear" and "quantized" in type(mod).__module__)
    return Variant("int8", q, "cpu", f"dynamic int8, {n_q} Linear layers quantised, convs float32")


def _unfuse_transformer(encoder: nn.TransformerEncoder) -> None:
    """Run the encoder's layers on their plain (unfused) path.

    PyTorch's fused inference fast path reads `linear1.weight` as a tensor; a dynamically
    quantised Linear has `weight()` as a method, so the fast path would fail on it.
    """

    def layer_forward(layer: nn.TransformerEncoderLayer, x: torch.Tensor) -> torch.Tensor:
        if layer.norm_first:
            x = x + layer._sa_block(layer.norm1(x), None, None, is_causal=False)
            return x + layer._ff_block(layer.norm2(x))
        x = layer.norm1(x + layer._sa_block(x, None, None, is_causal=False))
        return layer.norm2(x + layer._ff_block(x))

    def forward(src: torch.Tensor, mask: Any = None, src_key_padding_mask: Any = None, is_causal: Any = None) -> torch.Tensor:
        if mask is not None or src_key_padding_mask is not None:
            raise ValueError("the unfused int8 transformer takes no masks")
        out = src
        for layer in encoder.layers:
            out = layer_forward(layer, out)
        return encoder.norm(out) if encoder.norm is not None else out

    encoder.forward = forward  # type: ignore[method-assign]


def _onnx(model: VLAModel) -> Variant:
    if importlib.util.find_spec("onnxruntime") is None:
        raise VariantUnavailable("onnxruntime is not installed in this environment (not a project dependency)")
    import onnxruntime as ort  # pragma: no cover - not installed in the project venv

    m = _frozen_copy(model)  # pragma: no cover
    buf = io.BytesIO()  # pragma: no cover
    try:  # pragma: no cover
        torch.onnx.export(m, _example_inputs(model), buf, input_names=_input_names(model), output_names=["chunk"], opset_version=18)
    except Exception as exc:  # noqa: BLE001  # pragma: no cover
        raise VariantUnavailable(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    opts = ort.SessionOptions()  # pragma: no cover
    opts.intra_op_num_threads = torch.get_num_threads()  # pragma: no cover
    try:  # pragma: no cover
        session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - an exporter/runtime version mismatch is reported, not fatal
        raise VariantUnavailable(f"ONNX Runtime refused the exported model: {type(exc).__name__}: {str(exc)[:200]}") from exc

    names = _input_names(model)  # pragma: no cover

    def run(*inputs: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        out = session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0]
        return torch.from_numpy(out)

    return Variant("onnx", run, "cpu", f"ONNX Runtime {ort.__version__}")  # pragma: no cover


def _on_gpu(model: VLAModel, dtype: torch.dtype) -> VLAModel:
    if not cuda_available():
        raise VariantUnavailable("no CUDA device here (this torch build or machine has no GPU)")
    if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise VariantUnavailable("this GPU does not support bfloat16")
    return _frozen_copy(model).to("cuda")


def _cuda(dtype: torch.dtype, name: str) -> Callable[[VLAModel], Variant]:
    """Eager on the GPU: float32 as it is, half precisions under autocast."""

    def build(model: VLAModel) -> Variant:
        m = _on_gpu(model, dtype)

        def run(*inputs: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not torch.float32):
                out = m(*(x.to("cuda", non_blocking=True) for x in inputs))
            return out.float().cpu()

        note = "eager float32 on the GPU" if dtype is torch.float32 else f"CUDA autocast {dtype}"
        return Variant(name, run, "cuda", note)

    return build


def _cuda_graph(dtype: torch.dtype, name: str) -> Callable[[VLAModel], Variant]:
    """Autocast captured in a CUDA graph over static batch-1 buffers (PyTorch's whole-network
    capture recipe: warm up on a side stream, capture with the autocast cache off, replay)."""

    def build(model: VLAModel) -> Variant:
        m = _on_gpu(model, dtype)
        static = [t.to("cuda") for t in _example_inputs(model)]
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.inference_mode():
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side), torch.autocast("cuda", dtype=dtype, cache_enabled=False):
                    for _ in range(3):
                        m(*static)
                torch.cuda.current_stream().wait_stream(side)
                with torch.cuda.graph(graph), torch.autocast("cuda", dtype=dtype, cache_enabled=False):
                    out = m(*static)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            raise VariantUnavailable(f"CUDA graph capture failed: {type(exc).__name__}: {str(exc)[:300]}") from exc

        def run(*inputs: torch.Tensor) -> torch.Tensor:
            if inputs[0].shape != static[0].shape:
                raise ValueError(f"{name} is captured for images of shape {tuple(static[0].shape)}, got {tuple(inputs[0].shape)}")
            for buf, x in zip(static, inputs, strict=True):
                buf.copy_(x.contiguous())  # the processor's images can be a transposed view
            graph.replay()
            return out.float().cpu()

        # The graph reads the weights at the addresses it was captured with: the model must live as
        # long as the graph, or the allocator hands its memory to other tensors (wrong actions).
        run.captured = (m, graph, static, out)  # type: ignore[attr-defined]

        return Variant(name, run, "cuda", f"CUDA graph of autocast {dtype}, batch 1")

    return build


_BUILDERS: dict[str, Callable[[VLAModel], Variant]] = {
    "float32": _float32,
    "compile": _compile,
    "int8": _int8,
    "onnx": _onnx,
    "float32-cuda": _cuda(torch.float32, "float32-cuda"),
    "fp16-cuda": _cuda(torch.float16, "fp16-cuda"),
    "bf16-cuda": _cuda(torch.bfloat16, "bf16-cuda"),
    "fp16-cuda-graph": _cuda_graph(torch.float16, "fp16-cuda-graph"),
    "bf16-cuda-graph": _cuda_graph(torch.bfloat16, "bf16-cuda-graph"),
}


class OptimisedPolicy:
    """LeRobot's policy interface over a variant, sharing the float policy's processor."""

    def __init__(self, policy: VLAPolicy, variant: Variant) -> None:
        self.policy = policy
        self.config = policy.config
        self.processor = policy.processor
        self.variant = variant
        self.name = f"vla[{variant.name}]"
        self._queue: deque[np.ndarray] = deque()
        self._lock = threading.Lock()

    @classmethod
    def build(cls, policy: VLAPolicy, name: str, warmup: bool = True) -> OptimisedPolicy:
        return cls(policy, build_variant(policy.model, name, warmup=warmup))

    def reset(self) -> None:
        self._queue.clear()

    @torch.inference_mode()
    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        images, state, text, raw, env = self.policy._inputs(obs)
        inputs = (images, state, text) + ((env,) if env is not None else ())
        with self._lock:
            out = self.variant.fn(*inputs)
        chunk = self.processor.unnormalise_action(out.float(), raw, env).numpy()
        single = np.asarray(obs[self.config.image_keys[0]]).ndim == 3
        return chunk[0] if single else chunk

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        if not self._queue:
            self._queue.extend(self.predict_action_chunk(obs)[: self.config.n_action_steps])
        return self._queue.popleft().astype(np.float32)


@dataclass(frozen=True)
class Agreement:
    variant: str
    max_abs: float  # world units, over every observation, step and action dimension
    max_rel_std: float  # max |difference| / action std
    mean_abs: float
    n_obs: int

    def ok(self, rel_tol: float) -> bool:
        return self.max_rel_std <= rel_tol


def agreement(reference: VLAPolicy, candidate: Any, observations: Sequence[Mapping[str, Any]]) -> Agreement:
    """How far `candidate`'s chunks are from the float32 `reference`'s on the same observations."""
    std = reference.processor.stats["action_std"].numpy()
    diffs = []
    for obs in observations:
        a = np.asarray(reference.predict_action_chunk(obs), dtype=np.float64)
        b = np.asarray(candidate.predict_action_chunk(obs), dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"chunk shapes differ: reference {a.shape}, {getattr(candidate, 'name', 'candidate')} {b.shape}")
        diffs.append(np.abs(a - b))
    d = np.stack(diffs)
    name = getattr(getattr(candidate, "variant", None), "name", getattr(candidate, "name", "candidate"))
    return Agreement(name, float(d.max()), float((d / std).max()), float(d.mean()), len(observations))


# Tolerances the tests and the benchmark hold each variant to (max |diff| / action std). float32 is a
# frozen copy of the same model: equal up to the order CPU kernels reduce in (4e-7 seen on 16 cores).
AGREEMENT_TOLERANCE = {"float32": 1e-5, "compile": 1e-3, "onnx": 1e-3, "int8": 0.05, "float32-cuda": 5e-3, "fp16-cuda": 0.02, "bf16-cuda": 0.05,
                       "fp16-cuda-graph": 0.02, "bf16-cuda-graph": 0.05}
