"""Sessions for the service tests: the behaviour-tree fakes, slowed down to wall-clock speeds
where pausing, stepping and cancelling can be watched; seed 666 crashes its worker."""

from __future__ import annotations

import os
import time
from typing import Any

from behaviors.executor import Executor
from behaviors_fakes import FakeFactory, FakePerception, FakeWorld, Script, chain


class SlowWorld(FakeWorld):
    def step(self, action):  # type: ignore[override]
        time.sleep(0.01)
        if self.steps == 15 and self.seed == 666:
            os._exit(3)
        return super().step(action)

    def reset(self, *, seed=None, options=None):  # type: ignore[override]
        self.seed = seed
        return super().reset(seed=seed, options=options)


def fake_session(spec: dict[str, Any]) -> Executor:
    ids = ["a1", "b1", "c1"]
    world = SlowWorld({sid: Script(duration=1.0, effects=(f"visible({sid})",)) for sid in ids}, ids)
    ex = Executor(world, FakePerception(), FakeFactory(world), chain(ids), goal=spec["goal"], trace=spec["trace_path"],
                  seed=spec["seed"], scenario=spec["scenario"], run_id=spec["run_id"])
    ex.start()
    return ex
