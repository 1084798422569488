"""Tree overhead per tick, without a policy or a world worth the name.

A synthetic plan of subtasks is built into the real tree (units, conditions, skill leaf,
world-time timeout, blackboard, SnapshotVisitor); a null world (a counter) and a constant
policy stand in, and the skill never succeeds, so every tick walks the same path as a real
control step. Measured: `BehaviourTree.tick()` alone, and the executor's full tick
(belief to the blackboard, tree, hold/step bookkeeping, trace lines to a file).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import py_trees
from pydantic import BaseModel

from behaviors.context import BehaviorConfig
from behaviors.executor import Executor
from perception.belief import Belief, RobotBelief
from planner.taskgraph import Subtask, TaskGraph


class _NullWorld:
    def __init__(self) -> None:
        self.t = 0.0
        self.state = np.zeros(8, dtype=np.float32)

    time = property(lambda self: self.t)
    control_period = property(lambda self: 0.05)

    def hold_action(self) -> np.ndarray:
        return np.zeros(4)

    def _obs(self) -> dict[str, Any]:
        return {"observation.state": self.state}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        self.t = 0.0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        self.t += 0.05
        self.state = self.state + 0.05  # always progressing: the stall detector never fires
        return self._obs(), 0.0, False, False, {}


class _ConstantPolicy:
    def reset(self) -> None:
        pass

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        return np.ones(4)

    def predict_action_chunk(self, obs: dict[str, Any]) -> np.ndarray:
        return np.ones((10, 4))


class _StaticPerception:
    def __init__(self) -> None:
        self.belief = Belief(time=0.0, robot=RobotBelief(pose=(0.0, 0.0, 0.0)),
                             predicates={"visible(cup)": 0.9, "near(robot, cup)": 0.9, "holding(cup)": 0.1})

    def reset(self) -> None:
        pass

    def update(self, obs: dict[str, Any]) -> Belief:
        return self.belief


class TreeBenchmark(BaseModel):
    """Best-of-`repeats` timings (µs per tick)."""

    nodes: int
    visited_per_tick: int
    ticks: int
    tree_tick_us: float
    executor_tick_us: float

    def rows(self) -> list[tuple[str, str]]:
        return [("nodes in the tree", str(self.nodes)), ("nodes visited per tick", str(self.visited_per_tick)),
                ("ticks measured", str(self.ticks)), ("BehaviourTree.tick() per tick (µs)", f"{self.tree_tick_us:.1f}"),
                ("executor tick incl. blackboard and trace (µs)", f"{self.executor_tick_us:.1f}")]


def synthetic_graph(nodes: int = 30) -> TaskGraph:
    """A chain of subtasks whose tree has `nodes` nodes (2 + 8 per unit + 1 per precondition)."""
    g = TaskGraph(goal="benchmark")
    n_units, extra = divmod(max(nodes - 2, 8), 8)
    prev: list[str] = []
    for i in range(1, n_units + 1):
        pre = ("visible(cup)",) * (extra if i == 1 else 0)
        g.add(Subtask(id=f"t{i}", skill="pick", args=("cup",), instruction="pick up the cup", preconditions=pre,
                      success=("holding(cup)",), timeout_s=1e9, retries=2, group="cup"), after=prev)
        prev = [f"t{i}"]
    return g


def _best_of(fn: Any, ticks: int, repeats: int) -> float:
    """µs per call: the best of `repeats` runs of `ticks // repeats` calls (as timeit does: the
    machine's other load only ever adds time)."""
    per = max(1, ticks // repeats)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(per):
            fn()
        best = min(best, (time.perf_counter() - t0) / per * 1e6)
    return best


def benchmark_tree(nodes: int = 30, ticks: int = 5000, repeats: int = 5) -> TreeBenchmark:
    g = synthetic_graph(nodes)
    config = BehaviorConfig(stall_s=1e9)
    world = _NullWorld()
    policy = _ConstantPolicy()
    ex = Executor(world, _StaticPerception(), lambda s: policy, g, goal="benchmark", config=config)
    ex.start()
    ex.tick()
    tree = ex.tree
    assert tree is not None
    n_nodes = sum(1 for _ in tree.root.iterate())
    tree_us = _best_of(tree.tick, ticks, repeats)
    visited = len(ex.visitor.visited)
    ex.close()
    py_trees.blackboard.Blackboard.clear()

    with tempfile.TemporaryDirectory() as tmp:
        ex = Executor(_NullWorld(), _StaticPerception(), lambda s: policy, g, goal="benchmark", config=config,
                      trace=Path(tmp) / "trace.jsonl")
        ex.start()
        ex.tick()
        exec_us = _best_of(ex.tick, ticks, repeats)
        ex.close()
    return TreeBenchmark(nodes=n_nodes, visited_per_tick=visited, ticks=ticks, tree_tick_us=tree_us, executor_tick_us=exec_us)
