"""A task graph for people and tools: readable text, Graphviz DOT, PNG (when `dot` exists).

JSON lives on TaskGraph itself (`to_json`); this module is for looking at a plan.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import networkx as nx

from planner.taskgraph import TaskGraph


class RenderError(Exception):
    """A picture could not be made (no Graphviz, or it failed); the message says what to do."""


def to_text(graph: TaskGraph) -> str:
    """Numbered subtasks in execution order, with what each waits for and checks."""
    attrs = graph.attrs
    lines = []
    head = f"goal: {attrs.get('goal', '?')}  (method {attrs.get('method', '?')}, confidence {attrs.get('confidence', 0):.2f})"
    lines.append(head)
    if attrs.get("reason"):
        lines.append(f"replanned: {attrs['reason']}")
    if not len(graph):
        lines.append("  (nothing to do)")
    groups = {s.group for s in graph.subtasks()}
    for sub in graph.order():
        after = graph.predecessors(sub.id)
        wait = f"  after {', '.join(after)}" if after else ("  (can start now)" if len(groups) > 1 else "")
        lines.append(f"  {sub.id:>4}  {sub.label:<36} \"{sub.instruction}\"{wait}")
        lines.append(f"        success: {', '.join(map(str, sub.success))};  timeout {sub.timeout_s:g} s, {sub.retries} retries")
    if len(groups) > 1:
        lines.append(f"  {len(groups)} independent chains; each runs in order, the chains in any order")
    return "\n".join(lines)


def to_dot(graph: TaskGraph) -> str:
    """Graphviz DOT: one box per subtask (label, instruction), one cluster per chain."""
    g = nx.DiGraph()
    g.graph["graph"] = {"rankdir": "LR", "label": _quote(str(graph.attrs.get("goal", ""))), "labelloc": "t"}
    g.graph["node"] = {"shape": "box", "style": "rounded", "fontname": "Helvetica"}
    for sub in graph.order():
        g.add_node(sub.id, label=_quote(f"{sub.id}: {sub.label}\\n{sub.instruction}"))
    g.add_edges_from(graph.graph.edges)
    try:
        return nx.nx_pydot.to_pydot(g).to_string()
    except ImportError:  # pydot missing: write the simple DOT ourselves
        out = ["digraph plan {", "  rankdir=LR; node [shape=box, style=rounded];"]
        out += [f"  {n} [label={d['label']}];" for n, d in g.nodes(data=True)]
        out += [f"  {a} -> {b};" for a, b in g.edges]
        return "\n".join(out + ["}"]) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def write_png(graph: TaskGraph, path: Path) -> Path:
    """Render the DOT with Graphviz's `dot`; RenderError if it is not installed or fails."""
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError("Graphviz is not installed (no `dot` on PATH): install it (apt-get install graphviz) "
                          "or write DOT with --dot and render it elsewhere")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([exe, "-Tpng", "-o", str(path)], input=to_dot(graph).encode(), check=True, capture_output=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        raise RenderError(f"dot failed: {exc.stderr.decode(errors='replace').strip()}") from None
    except subprocess.TimeoutExpired:
        raise RenderError("dot took longer than 60 s") from None
    return path
