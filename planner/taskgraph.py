"""Subtask and TaskGraph: what the planner hands to the behaviour tree.

A TaskGraph is a `networkx.DiGraph` whose nodes are subtask ids carrying a `Subtask`
(node attribute `subtask`) and whose edges mean "must finish before". Subtasks that do not
depend on each other (tidying several objects) have no path between them, so an executor
may run them in either order. The wrapper adds a stable topological order, JSON
round-tripping and the plan's provenance (goal, method, reasons) in `graph.graph`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, field_serializer

from scenarios.predicates import Predicate


class Subtask(BaseModel):
    """One skill call: the unit the behaviour tree runs and perception checks."""

    model_config = ConfigDict(frozen=True)

    id: str
    skill: str
    args: tuple[str, ...] = Field(description="scene ids, in the skill's parameter order")
    instruction: str = Field(description="what the policy is conditioned on, e.g. 'pick up the red cup'")
    preconditions: tuple[Predicate, ...] = ()
    success: tuple[Predicate, ...] = Field(description="all true once the subtask has succeeded")
    timeout_s: float = Field(description="simulated seconds per attempt")
    retries: int = Field(ge=0, description="attempts after the first before the subtask fails")
    group: str | None = Field(None, description="the chain (e.g. the object being tidied) this subtask belongs to")
    always_run: bool = Field(False, description="run the policy even when the success already holds at the start: a drive "
                                                "whose end pose the next (learned) skill was trained from")

    @field_serializer("preconditions", "success")
    def _as_text(self, preds: tuple[Predicate, ...]) -> list[str]:
        """Predicates as the vocabulary writes them ('holding(red_cup)'); they parse back."""
        return [str(p) for p in preds]

    @property
    def releases(self) -> tuple[str, ...]:
        """Objects this subtask lets go: held as a precondition and not held on success
        (handover, place, place_in). Nothing else may open a hand that holds them."""
        kept = {p.args[0] for p in self.success if p.name == "holding" and not p.negated}
        return tuple(p.args[0] for p in self.preconditions if p.name == "holding" and not p.negated and p.args[0] not in kept)

    @property
    def label(self) -> str:
        return f"{self.skill}({', '.join(self.args)})"


class TaskGraph:
    """A thin wrapper over `networkx.DiGraph` of Subtask nodes and ordering edges."""

    def __init__(self, graph: nx.DiGraph | None = None, **attrs: Any) -> None:
        self.graph: nx.DiGraph = graph if graph is not None else nx.DiGraph()
        self.graph.graph.update(attrs)

    # Construction
    def add(self, subtask: Subtask, after: list[str] | tuple[str, ...] = ()) -> None:
        if subtask.id in self.graph:
            raise ValueError(f"subtask id {subtask.id!r} is already in the graph")
        self.graph.add_node(subtask.id, subtask=subtask)
        for prev in after:
            if prev not in self.graph:
                raise ValueError(f"{subtask.id} cannot come after unknown subtask {prev!r}")
            self.graph.add_edge(prev, subtask.id)

    # Reading
    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def __iter__(self) -> Iterator[Subtask]:
        return iter(self.order())

    def __contains__(self, subtask_id: object) -> bool:
        return subtask_id in self.graph

    def __getitem__(self, subtask_id: str) -> Subtask:
        return self.graph.nodes[subtask_id]["subtask"]

    @property
    def attrs(self) -> dict[str, Any]:
        return self.graph.graph

    def subtasks(self) -> list[Subtask]:
        return [d["subtask"] for _, d in self.graph.nodes(data=True)]

    def order(self) -> list[Subtask]:
        """A topological order that runs each chain to its end before starting the next."""
        index = {n: i for i, n in enumerate(self.graph.nodes)}
        ids = nx.lexicographical_topological_sort(self.graph, key=lambda n: (self._group_rank(n), index[n]))
        return [self.graph.nodes[n]["subtask"] for n in ids]

    def _group_rank(self, node: str) -> int:
        groups = self.graph.graph.setdefault("_group_rank", {})
        group = self.graph.nodes[node]["subtask"].group
        if group not in groups:
            groups[group] = len(groups)
        return groups[group]

    def predecessors(self, subtask_id: str) -> list[str]:
        return list(self.graph.predecessors(subtask_id))

    def independent(self, a: str, b: str) -> bool:
        """Neither subtask must finish before the other."""
        return not (nx.has_path(self.graph, a, b) or nx.has_path(self.graph, b, a))

    def signature(self) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
        """Nodes and edges by label (skill and args), for comparing decompositions."""
        label = {n: d["subtask"].label for n, d in self.graph.nodes(data=True)}
        return frozenset(label.values()), frozenset((label[a], label[b]) for a, b in self.graph.edges)

    # Serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready networkx node-link data; each node carries its subtask's fields."""
        g = nx.DiGraph()
        g.graph.update({k: v for k, v in self.graph.graph.items() if not k.startswith("_")})
        for n, d in self.graph.nodes(data=True):
            g.add_node(n, **d["subtask"].model_dump(mode="json"))
        g.add_edges_from(self.graph.edges)
        return nx.node_link_data(g, edges="edges")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskGraph:
        raw = nx.node_link_graph(data, directed=True, edges="edges")
        out = cls(**raw.graph)
        for n, d in raw.nodes(data=True):
            out.graph.add_node(n, subtask=Subtask.model_validate({**d, "id": n}))
        out.graph.add_edges_from(raw.edges)
        return out

    @classmethod
    def from_json(cls, text: str) -> TaskGraph:
        return cls.from_dict(json.loads(text))
