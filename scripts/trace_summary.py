"""Summarise a folder of run traces (JSON lines, as `vla-agent eval` and scripts/device_eval.sh
write them): runs finished and succeeded, and per skill how many runs reached it and how often
its first attempt succeeded — where a chain of learned skills breaks. It reads the traces of an
evaluation that was stopped early too (eval.json needs a full run).

    .venv/bin/python scripts/trace_summary.py out/device/traces [more folders ...]
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from behaviors.trace import read_trace  # skips the truncated last line of a run killed mid-write

ATTEMPT_ENDS = ("subtask_succeeded", "subtask_retry", "subtask_failed")


def summarise(folder: Path) -> dict:
    runs = finished = succeeded = 0
    reached: Counter[str] = Counter()
    first_ok: Counter[str] = Counter()
    final: Counter[str] = Counter()
    for path in sorted(folder.glob("*.jsonl")):
        runs += 1
        seen: set[str] = set()
        outcome = None
        for event in read_trace(path):
            kind, skill = event.get("event"), event.get("skill")
            if kind in ATTEMPT_ENDS and skill not in seen:  # the first attempt of each skill in the run
                seen.add(skill)
                reached[skill] += 1
                first_ok[skill] += kind == "subtask_succeeded"
            if kind == "run_finished":
                outcome = event.get("outcome", event)
        if outcome is not None:
            finished += 1
            if outcome.get("status") == "succeeded":
                succeeded += 1
            else:
                final[(outcome.get("reasons") or ["?"])[-1][:100]] += 1
    return {"runs": runs, "finished": finished, "succeeded": succeeded,
            "first_attempt": {s: (first_ok[s], reached[s]) for s in reached}, "final_failures": final.most_common(5)}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for arg in argv:
        s = summarise(Path(arg))
        print(f"{arg}: {s['runs']} traces, {s['finished']} finished, {s['succeeded']} succeeded")
        for skill, (ok, n) in s["first_attempt"].items():
            print(f"  {skill:12s} reached in {n} runs, first attempt succeeded {ok}/{n}")
        for reason, count in s["final_failures"]:
            print(f"  {count:3d} × {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
