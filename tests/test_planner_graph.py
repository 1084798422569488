"""TaskGraph: structure, independence of chains, JSON/DOT/text, PNG without Graphviz."""

from __future__ import annotations

import os

# One torch thread for the shared MiniLM encoder in this test process: on shared cores two
# threads make each forward pass 10-30x slower (see planner.language.Encoder).
os.environ.setdefault("VLA_AGENT_PLANNER_THREADS", "1")

import json
import shutil

import networkx as nx
import pytest

from planner import PlanResult, TaskGraph, plan
from planner.render import RenderError, to_dot, to_text, write_png


@pytest.fixture(scope="module")
def tidy() -> PlanResult:
    result = plan("tidy the table", "tidy_table")
    assert result.kind == "plan"
    return result


def test_serve_a_drink_is_the_five_step_chain():
    result = plan("serve a drink to the person", "kitchen")
    subs = result.graph.order()
    assert [s.label for s in subs] == [
        "look_for(red_cup)", "navigate_to(red_cup)", "pick(red_cup)", "navigate_to(person_1)", "handover(red_cup, person_1)",
    ]
    assert [s.instruction for s in subs][2:] == ["pick up the red cup", "go to the person", "hand the red cup to the person"]
    assert [str(p) for p in subs[2].success] == ["holding(red_cup)"]
    assert [str(p) for p in subs[4].preconditions] == ["holding(red_cup)", "near(robot, person_1)"]
    assert subs[2].retries == 3 and subs[2].timeout_s == 30
    assert nx.is_directed_acyclic_graph(result.graph.graph)


def test_tidying_objects_are_unordered_chains(tidy):
    g = tidy.graph
    assert len(g) == 15 and g.graph.number_of_edges() == 12
    firsts = [s.id for s in g.order() if s.skill == "look_for"]
    lasts = [s.id for s in g.order() if s.skill == "place_in"]
    assert len(firsts) == 3
    assert g.independent(firsts[0], firsts[1]) and g.independent(lasts[0], firsts[2])
    assert not g.independent(firsts[0], lasts[0])
    order = [s.group for s in g.order()]
    assert order == sorted(order, key=order.index), "the order runs each chain to its end"


def test_json_round_trip_is_networkx_node_link(tidy):
    data = json.loads(tidy.graph.to_json())
    assert {"nodes", "edges", "graph", "directed"} <= set(data)
    assert data["nodes"][0]["success"] == ["visible(blue_can)"]
    back = TaskGraph.from_json(tidy.graph.to_json())
    assert back.signature() == tidy.graph.signature()
    assert back["t3"] == tidy.graph["t3"]
    assert json.loads(tidy.model_dump_json())["graph"]["graph"]["method"] == "tidy"


def test_dot_and_text(tidy):
    dot = to_dot(tidy.graph)
    assert dot.startswith(("digraph", "strict digraph")) and "t1 -> t2" in dot and "put the red ball in the bin" in dot
    text = to_text(tidy.graph)
    assert "goal: tidy the table" in text and "3 independent chains" in text and '"pick up the green box"' in text


def test_png_without_graphviz_says_what_to_do(tidy, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RenderError, match="Graphviz"):
        write_png(tidy.graph, tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_graph_refuses_unknown_predecessor():
    g = TaskGraph()
    sub = plan("pick up the orange ball", "kitchen").graph.order()[0]
    with pytest.raises(ValueError):
        g.add(sub, after=["nope"])
