#!/usr/bin/env bash
# Fills the git-ignored folders that scripts/device_eval.sh needs on the lent GPU machine
# (x86-64, Python 3.12, torch/transformers/numba/scipy/... already there, no network):
#   .whl/    py3.12 manylinux x86_64 wheels of the Python packages missing there (one version each)
#   .gl/     the GL/EGL/Vulkan loader debs of the device README's recipe (unpacked there into /)
#   .minilm/ the MiniLM sentence encoder, packed small (32 MiB instead of 87; a float16 copy alone,
#            44 MiB, leaves no room under the limit): float16, its word embeddings int8. There,
#            scripts/device_minilm.py unpacks it into a float16 model folder that
#            $VLA_AGENT_ENCODER_DIR names (planner/language.py computes in float32).
# Run here, from anywhere, with network; idempotent (each folder is rebuilt from scratch).
# Everything that travels must stay under 64 MiB: the script prints the sizes and fails if not.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

for d in .whl .gl .minilm; do
    grep -qxF "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >>.git/info/exclude
done

# --- wheels ------------------------------------------------------------------------------
# The versions this project is tested with locally. Not carried, because the device has them:
# numpy torch transformers tokenizers safetensors huggingface-hub scipy numba pyarrow pillow
# networkx pyyaml cloudpickle pygments markdown-it-py mdurl shellingham annotated-doc click.
# Left out on purpose: mujoco-studio (the MuJoCo Studio app, 34 MB; `import mujoco` and its
# EGL renderer live in mujoco-core) and glfw (MUJOCO_GL=glfw only); fastapi/starlette/uvicorn
# (`vla-agent serve` only) and av (video files only) are never imported by `vla-agent eval`.
# typer/rich/typing-extensions/pyparsing are on the device too, in versions unknown here; the
# local ones are carried so that the CLI and pydantic (typing-extensions>=4.16) behave as here.
WHEELS=(
    mujoco==4.0.0 mujoco-core==4.0.0 PyOpenGL==3.1.10
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    typing-extensions==4.16.0
    gymnasium==1.4.0 farama-notifications==0.0.6
    py_trees==2.6.0 pydot==4.0.1 pyparsing==3.3.3
    structlog==26.1.0
    typer==0.29.2 rich==15.0.0
)
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64 \
    -d .whl "${WHEELS[@]}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

# Every wheel's non-extra requirements must be carried or be on the device (KINDS.md's list).
"$PY" - <<'EOF'
import re, sys, zipfile
from pathlib import Path

on_device = set("""absl-py accelerate aiofiles anyio attrs certifi charset-normalizer click cloudpickle colorama
filelock fsspec h11 hf-xet httpcore httpx huggingface-hub idna jinja2 markdown-it-py markupsafe mdurl numba numpy
packaging pillow protobuf pygments pyparsing pyyaml regex requests rich safetensors scipy shellingham annotated-doc
six sympy tokenizers torch tqdm transformers typer typing-extensions urllib3 networkx pyarrow""".split())
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
carried = {norm(p.name.split("-")[0]): p.name for p in Path(".whl").glob("*.whl")}
if len(carried) != len(list(Path(".whl").glob("*.whl"))):
    sys.exit("two versions of one package in .whl/")
missing = []
for name, fname in sorted(carried.items()):
    with zipfile.ZipFile(Path(".whl") / fname) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        reqs = [l.split(":", 1)[1].strip() for l in z.read(meta).decode().splitlines() if l.startswith("Requires-Dist:")]
    for r in reqs:
        if "extra ==" in r or "extra==" in r or "platform_system == \"Windows\"" in r or "python_version < '3.1" in r:
            continue
        dep = norm(re.match(r"[A-Za-z0-9_.\-]+", r).group(0))
        if dep in carried or dep in on_device:
            continue
        if (name, dep) in {("mujoco", "mujoco-studio"), ("mujoco", "glfw")}:
            continue  # left out on purpose (see above)
        missing.append(f"{fname}: {r}")
print(f"{len(carried)} wheels:", " ".join(sorted(carried.values())))
if missing:
    sys.exit("requirements neither carried nor on the device:\n  " + "\n  ".join(missing))
EOF

# --- GL debs (device README's recipe) -----------------------------------------------------
rm -rf .gl && mkdir -p .gl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
apt-get $o update -qq >/dev/null
(cd .gl && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)

# --- MiniLM: float16, word embeddings int8 (scripts/device_minilm.py; unpacked there) ----------
"$PY" scripts/device_minilm.py pack .minilm

# --- sizes ---------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
total=0
for d in .whl .gl .minilm; do
    b=$(du -sb "$d" | cut -f1); total=$((total + b)); echo "$d  $(mib "$b")"
done
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 -r stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
total=$((total + tree))
echo "tracked + untracked-not-ignored files  $(mib "$tree")"
echo "total that travels with carry [.whl, .gl, .minilm]  $(mib "$total")  (limit 64 MiB)"
if [ "$total" -gt $((60 * 1048576)) ]; then
    echo "too big: over 60 MiB, leaving no margin under the 64 MiB limit" >&2
    exit 1
fi
