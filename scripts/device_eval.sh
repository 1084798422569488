#!/usr/bin/env bash
# `vla-agent eval` on the lent GPU machine (no network; Python 3.12 with torch, transformers, ...),
# from the kit that scripts/device_kit.sh fills here: carry .whl, .gl and .minilm.
#
#   bash scripts/device_eval.sh --scenarios kitchen --goal "serve a drink to the person" \
#       --seeds 15 --first-seed 0 --policy vla -j 15
#
# Arguments go to `vla-agent eval` unchanged (VLA_COMMAND="policy eval" runs the skill-by-skill
# evaluation instead); leave out --out: the report goes to a scratch folder and what may come
# back is copied under $OUT (at most 8 files): device_eval.log (all output), eval.json, eval.md, episodes.jsonl
# (one line per finished run, also when EVAL_TIMEOUT stops the evaluation before its reports),
# eval.png and traces.tar.gz, or policy eval's trials.jsonl (written trial by trial), table.md
# and summary.json.
# A smoke check runs first (imports, one EGL frame, one embedding, a short planned episode:
# about 20 s); if it fails the script stops with exit code 3 before the evaluation starts.
# EVAL_TIMEOUT=SECONDS stops the evaluation early (SIGINT) so that the log and the traces of
# finished episodes still come back inside the device tool's limit; eval.json needs a full run.
# Two evaluations side by side: start the second with KIT_READY=1 once the first's kit is in,
# each with its own OUT and SCRATCH.
# Exit codes: the evaluation's own (0, 1 when a goal succeeds in fewer than 90% of its runs,
# 2 bad options, 130 stopped), 3 smoke check failed, 4 kit could not be installed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/device}
mkdir -p "$OUT"
SCRATCH=${SCRATCH:-/tmp/vla-eval}
SITE=${SITE:-/tmp/site}

main() {
    local t0=$SECONDS
    echo "== kit: GL debs, wheels, encoder  ($(nproc) cores; $(nvidia-smi -L 2>/dev/null | head -1))"
    if [ -z "${KIT_READY:-}" ]; then  # KIT_READY=1: a run beside this one installed it (same SITE)
        for f in .gl/*.deb; do dpkg -x "$f" / || { echo "KIT FAILED: dpkg -x $f"; return 4; }; done
        ldconfig
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
            || { echo "KIT FAILED: pip install of .whl/*.whl"; return 4; }
        python3 scripts/device_minilm.py unpack .minilm /tmp/minilm || { echo "KIT FAILED: unpacking .minilm"; return 4; }
    fi
    export PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}
    export MUJOCO_GL=egl VLA_AGENT_ENCODER_DIR=/tmp/minilm PYTHONUNBUFFERED=1
    local vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f "$vendor" ]; then
        export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor  # the device README's fix when EGL finds no driver
    fi
    echo "   kit ready in $((SECONDS - t0)) s"

    local prev="" a v
    for a in "$@"; do  # the smoke episode uses the evaluation's policy
        case "$a" in --policy=*) v=${a#--policy=}; export SMOKE_POLICY=${v%%,*} ;; esac
        [ "$prev" = --policy ] && export SMOKE_POLICY=${a%%,*}
        prev=$a
    done
    echo "== smoke check (policy ${SMOKE_POLICY:-vla})"
    if ! timeout -k 5 120 python3 scripts/device_smoke.py; then
        echo "SMOKE FAILED: see above; the evaluation was not started"
        return 3
    fi
    local cmd
    read -ra cmd <<< "${VLA_COMMAND:-eval}"
    timeout -k 5 60 python3 -m agent.cli "${cmd[@]}" --help >/dev/null || { echo "SMOKE FAILED: python3 -m agent.cli ${cmd[*]} --help"; return 3; }

    echo "== vla-agent ${cmd[*]} $*"
    rm -rf "$SCRATCH"
    local rc
    if [ -n "${EVAL_TIMEOUT:-}" ]; then
        timeout -s INT -k 30 "$EVAL_TIMEOUT" python3 -m agent.cli "${cmd[@]}" --out "$SCRATCH" "$@"
    else
        python3 -m agent.cli "${cmd[@]}" --out "$SCRATCH" "$@"
    fi
    rc=$?
    echo "== eval exit code $rc after $((SECONDS - t0)) s in all"
    for f in eval.json eval.md eval.png episodes.jsonl trials.jsonl table.md summary.json; do [ -f "$SCRATCH/$f" ] && cp "$SCRATCH/$f" "$OUT/"; done
    [ -d "$SCRATCH/traces" ] && tar -czf "$OUT/traces.tar.gz" -C "$SCRATCH" traces
    ls -la "$OUT"
    return $rc
}

main "$@" 2>&1 | tee "$OUT/device_eval.log"
exit "${PIPESTATUS[0]}"
