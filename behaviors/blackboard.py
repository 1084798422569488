"""The run's blackboard: py_trees Blackboard keys under one namespace per run.

py_trees keeps one process-wide blackboard, so each executor gets its own namespace
(`/run_<id>`) and several runs (the HTTP service) never see each other's keys. Keys:

    belief        perception's latest Belief          written by the executor, read by leaves
    subtask       id of the subtask being run         written by the subtask unit
    last_action   summary of the last action sent     written by skill leaves
    failures      list of FailureRecord, in order     appended by leaves, timeouts and units

Every behaviour declares its access with `register_key(access=READ/WRITE)`, so py_trees'
blackboard views and activity stream show who touches what.
"""

from __future__ import annotations

import uuid
from typing import Any

import py_trees
from py_trees.common import Access
from pydantic import BaseModel

BELIEF, SUBTASK, LAST_ACTION, FAILURES = "belief", "subtask", "last_action", "failures"
KEYS = (BELIEF, SUBTASK, LAST_ACTION, FAILURES)


class FailureRecord(BaseModel):
    """One reason something failed, at world time `time`."""

    subtask: str | None
    node: str
    reason: str
    time: float

    def text(self) -> str:
        return f"{self.subtask or '-'}: {self.reason} (at {self.time:.2f} s)"


def new_namespace() -> str:
    return f"/run_{uuid.uuid4().hex[:8]}"


def client(name: str, namespace: str, read: tuple[str, ...] = (), write: tuple[str, ...] = ()) -> py_trees.blackboard.Client:
    """A Blackboard client in the run's namespace with declared read/write keys."""
    c = py_trees.blackboard.Client(name=name, namespace=namespace)
    for key in read:
        c.register_key(key=key, access=Access.READ)
    for key in write:
        c.register_key(key=key, access=Access.WRITE)
    return c


def attach(behaviour: py_trees.behaviour.Behaviour, namespace: str, read: tuple[str, ...] = (),
           write: tuple[str, ...] = ()) -> py_trees.blackboard.Client:
    """Attach a client to a behaviour (so visitors see its keys) and register its keys."""
    c = behaviour.attach_blackboard_client(name=behaviour.name, namespace=namespace)
    for key in read:
        c.register_key(key=key, access=Access.READ)
    for key in write:
        c.register_key(key=key, access=Access.WRITE)
    return c


def initialise(namespace: str) -> py_trees.blackboard.Client:
    """The executor's client; sets every key to its empty value."""
    c = client("executor", namespace, write=KEYS)
    c.belief = None
    c.subtask = None
    c.last_action = None
    c.failures = []
    return c


def record_failure(bb: py_trees.blackboard.Client, record: FailureRecord) -> None:
    failures = list(bb.failures or [])
    failures.append(record)
    bb.failures = failures


def view(namespace: str) -> dict[str, Any]:
    """The run's keys and JSON-ready values (a Belief as its predicates)."""
    out: dict[str, Any] = {}
    for key in KEYS:
        name = f"{namespace}/{key}"
        value = py_trees.blackboard.Blackboard.storage.get(name)
        out[key] = summarise(value)
    return out


def summarise(value: Any) -> Any:
    """A small JSON-ready form of a blackboard value (for traces, snapshots and the debugger)."""
    from perception.belief import Belief

    if isinstance(value, Belief):
        return {"time": round(value.time, 3), "predicates": {k: round(v, 3) for k, v in sorted(value.predicates.items())}}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [summarise(v) for v in value]
    if isinstance(value, dict):
        return {str(k): summarise(v) for k, v in value.items()}
    return value


def clear(namespace: str) -> None:
    """Forget the run's keys (at the end of a run)."""
    for key in KEYS:
        py_trees.blackboard.Blackboard.unset(f"{namespace}/{key}")
