"""Behaviour trees from task graphs (py_trees), the executor with its recovery by replanning,
the run trace and the step-through debugger.

    from behaviors import Executor, Debugger
    ex = Executor(world, perception, policy_factory, graph, goal="serve a drink", replanner=..., trace="runs/x/trace.jsonl")
    ex.start(); outcome = ex.run()

Modules: tree (TaskGraph → tree), leaves (skill and condition leaves), clock (world-time
timeout, stall detector), blackboard, executor, recovery (planner adapter), trace (writer,
reader, replay), debugger (API and hooks), console (the prompt), benchmark.
"""

from behaviors.context import BehaviorConfig
from behaviors.debugger import Debugger, DebugError, DebugState
from behaviors.executor import Executor, RunOutcome, TickReport
from behaviors.protocols import PerceptionLike, PolicyFactory, PolicyLike, Replanner, ReplanRefused, WorldLike

__all__ = ["BehaviorConfig", "DebugError", "DebugState", "Debugger", "Executor", "PerceptionLike", "PolicyFactory",
           "PolicyLike", "ReplanRefused", "Replanner", "RunOutcome", "TickReport", "WorldLike"]
