"""World time for the tree: a timeout decorator and a stall detector that count simulated seconds.

py_trees' stock `Timeout` reads `time.monotonic()`, so a slow machine or a paused debugger
would make subtasks time out. Here every duration is measured on the world's clock
(ticks × control period), so a run behaves the same at any wall-clock speed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import py_trees
from py_trees.common import Status

Clock = Callable[[], float]
"""Returns the world's time in seconds."""


class WorldTimeout(py_trees.decorators.Decorator):
    """`py_trees.decorators.Timeout`, on the world's clock: FAILURE once the child has run
    `duration` simulated seconds without finishing; `on_timeout(message)` records why."""

    def __init__(self, name: str, child: py_trees.behaviour.Behaviour, duration: float, clock: Clock,
                 on_timeout: Callable[[str], None] | None = None) -> None:
        super().__init__(name=name, child=child)
        self.duration = float(duration)
        self.clock = clock
        self.on_timeout = on_timeout
        self.started = 0.0

    def initialise(self) -> None:
        self.started = self.clock()
        self.feedback_message = ""

    def update(self) -> Status:
        elapsed = self.clock() - self.started
        if self.decorated.status == Status.RUNNING and elapsed >= self.duration - 1e-9:
            self.feedback_message = f"timed out after {elapsed:.1f} s (budget {self.duration:g} s)"
            self.decorated.stop(Status.INVALID)  # cancel the child, as the stock Timeout does
            if self.on_timeout is not None:
                self.on_timeout(self.feedback_message)
            return Status.FAILURE
        if self.decorated.status == Status.RUNNING:
            self.feedback_message = f"{elapsed:.1f}/{self.duration:g} s"
        return self.decorated.status


class StallDetector:
    """"No progress for `window_s` simulated seconds".

    Progress is any component of the watched vector moving by more than its tolerance since
    the last time progress was seen. The skill leaf watches what the robot senses, never
    ground truth: the proprioception vector (joints, base odometry, grippers, head), the
    believed positions of the subtask's objects and the confidences of its success
    predicates. A policy that holds still (done, stuck, or waiting on nothing) for the
    window therefore stalls; one that keeps moving never does, and the timeout bounds it.
    """

    def __init__(self, window_s: float, tolerance: float | np.ndarray = 0.01) -> None:
        self.window_s = float(window_s)
        self.tolerance = tolerance
        self._anchor: np.ndarray | None = None
        self._since = 0.0

    def reset(self, now: float) -> None:
        self._anchor, self._since = None, now

    def update(self, now: float, values: np.ndarray) -> bool:
        """Feed the watched quantities at world time `now`; True once stalled."""
        values = np.asarray(values, dtype=np.float64)
        if self._anchor is None or self._anchor.shape != values.shape or np.any(np.abs(values - self._anchor) > self.tolerance):
            self._anchor, self._since = values.copy(), now
            return False
        return now - self._since >= self.window_s - 1e-9

    def idle_for(self, now: float) -> float:
        return now - self._since
