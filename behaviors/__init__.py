"""Behaviour trees from task graphs, traces and the debugger. Arrive with issue 5."""
