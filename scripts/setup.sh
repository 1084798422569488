#!/usr/bin/env bash
# Set up vla-agent on a fresh Debian or Ubuntu machine, idempotently:
#   1. the GL libraries MuJoCo's offscreen rendering needs (EGL and OSMesa, from Mesa) and
#      Graphviz (task graphs as PNG, behaviour trees as SVG),
#   2. a virtual environment in .venv,
#   3. PyTorch 2.13.0 -- the CPU build when the machine has no NVIDIA GPU, never a
#      multi-GB CUDA build by accident,
#   4. this project, editable, with its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 graphviz; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    log "please install these Debian packages (needs root): ${missing[*]}"; exit 1
  fi
  log "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
pip_install() {
  # Some machines' pip configuration names package folders that do not exist; its warnings
  # about them are noise, so they are filtered out (real errors still show).
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2> >(grep -v "WARNING: Location '" >&2)
}

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  torch_req="torch==2.13.0"
else
  torch_req="torch==2.13.0+cpu"  # the local label only matches CPU builds
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  log "installing $torch_req"
  pip_install "$torch_req" 2>/dev/null \
    || pip_install "$torch_req" --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
fi

log "installing vla-agent and its dependencies"
pip_install -e ".[dev]"
log "ready: .venv/bin/vla-agent --help"
