"""A run in its own process: the executor and its debugger, driven by messages.

The service starts one process per run (spawned, so MuJoCo's GL context and torch's
threads never cross a fork). The process builds the session, then ticks it, reading
control messages between ticks without blocking (or blocking while paused). Everything
the service needs to know — status changes, the trace's events, the outcome — goes back
over an event queue; requests that need an answer (frame, tree, state) are answered on the
control pipe. Time inside is the world's time, so a paused run is exactly where it was.
"""

from __future__ import annotations

import io
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable

SessionBuilder = Callable[[dict[str, Any]], Any]  # spec -> started Executor


def default_session(spec: dict[str, Any]) -> Any:
    """World, camera perception, the chosen policy and the planner, as `vla-agent run` uses them."""
    from agent.session import build_session

    return build_session(spec["goal"], spec["scenario"], seed=spec["seed"], policy=spec["policy"], trace=spec["trace_path"])


def run_worker(spec: dict[str, Any], control: Connection, events: Any, builder: SessionBuilder | None = None) -> None:
    """Process entry point: build, then tick until finished or cancelled (see module docstring)."""
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    from agent.logging import configure_logging
    from behaviors.debugger import Debugger, DebugError

    configure_logging()  # a spawned worker starts with structlog's print-everything default

    def send(kind: str, **fields: Any) -> None:
        events.put({"kind": kind, **fields})

    try:
        executor = (builder or default_session)(spec)
    except Exception as exc:  # the run cannot start: tell why, then stop
        send("failed", reason=f"could not start the run: {exc}", detail=traceback.format_exc(limit=3))
        return
    debugger = Debugger(executor)
    paused = bool(spec.get("start_paused", False))
    sent = 0
    send("started", graph=executor.graph.to_dict(), status="paused" if paused else "running")

    def flush_events() -> None:
        nonlocal sent
        new = executor.events[sent:]
        sent = len(executor.events)
        for e in new:
            send("trace", event=e)

    def state() -> dict[str, Any]:
        st = debugger.status
        return {"tick": st.tick, "time": st.time, "status": st.status, "subtask": st.subtask,
                "paused": paused, "pause_reason": st.paused, "finished": st.finished,
                "node_states": node_states(executor)}

    cancelled = False
    try:
        while not executor.finished and not cancelled:
            while control.poll(None if paused else 0):
                msg = control.recv()
                op = msg.get("op")
                reply: dict[str, Any] = {"ok": True}
                try:
                    if op == "pause":
                        paused = True
                    elif op == "resume":
                        paused = False
                    elif op == "step":
                        paused = True
                        debugger.step(int(msg.get("n", 1)))
                        flush_events()
                    elif op == "cancel":
                        cancelled = True
                    elif op == "break":
                        reply["breakpoint"] = debugger.add_breakpoint(str(msg["spec"])).describe()
                    elif op == "unbreak":
                        reply["breakpoint"] = debugger.remove_breakpoint(msg["which"]).describe()
                    elif op == "breakpoints":
                        reply["breakpoints"] = [h.describe() for h in debugger.hooks()]
                    elif op == "frame":
                        reply["png"] = frame_png(executor)
                    elif op == "tree":
                        reply["dot"] = tree_dot(executor)
                    elif op == "state":
                        pass
                    else:
                        reply = {"ok": False, "error": f"unknown operation {op!r}"}
                except (DebugError, KeyError, ValueError) as exc:
                    reply = {"ok": False, "error": str(exc)}
                reply["state"] = state()
                control.send(reply)
                send("state", **reply["state"])
                if cancelled or executor.finished:
                    break
            if cancelled or executor.finished:
                break
            if not paused:
                st = debugger.step(1)
                flush_events()
                if st.paused:
                    paused = True
                    send("state", **state())
                elif executor.ticks % 10 == 0:
                    send("state", **state())
        flush_events()
        if cancelled:
            send("cancelled", state=state())
        else:
            send("finished", outcome=executor.outcome.model_dump(mode="json") if executor.outcome else None, state=state())
    except Exception as exc:
        send("failed", reason=f"the run raised {type(exc).__name__}: {exc}", detail=traceback.format_exc(limit=5))
    finally:
        try:
            debugger.close()
            executor.close()
        except Exception:  # noqa: BLE001 - closing must not hide the outcome
            pass


def node_states(executor: Any) -> dict[str, str]:
    """Each subtask's state, pending, running, succeeded or failed, from the run's events."""
    states = {sub.id: "pending" for sub in executor.graph.order()}
    for e in executor.events:
        sid = e.get("subtask")
        if sid in states:
            states[sid] = {"subtask_started": "running", "subtask_succeeded": "succeeded",
                           "subtask_failed": "failed"}.get(e.get("event"), states[sid])
    return states


def frame_png(executor: Any) -> bytes:
    """The current head-camera image as PNG bytes."""
    import numpy as np
    from PIL import Image

    obs = executor.ctx.obs or {}
    img = obs.get("observation.images.head")
    if img is None:
        raise ValueError("the observation has no head camera image")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.asarray(img, dtype=np.uint8))).save(buf, format="PNG")
    return buf.getvalue()


def tree_dot(executor: Any) -> str:
    """The behaviour tree with its current statuses, as Graphviz DOT (py_trees' own drawing)."""
    import py_trees

    graph = py_trees.display.dot_tree(executor.root, with_blackboard_variables=False)
    return graph.to_string()
