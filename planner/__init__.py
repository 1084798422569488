"""Planner: goal text to a task graph of subtasks. Arrives with issue 4."""
