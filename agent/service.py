"""The HTTP service (`vla-agent serve`): submit goals, follow and steer runs, browse scenarios.

FastAPI on uvicorn. Runs execute in worker processes (agent/runs.py), so the API stays
responsive while simulations run; every run is kept in the SQLite run store. Bad input is
never a 500: unknown scenario, empty or oversized goal, an ambiguous goal (answered with the
planner's question and candidates), a bad seed or policy, a run id that does not exist —
each gets a 4xx whose message names the problem.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import structlog
from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from agent.runs import RunManager, RunNotLive
from agent.session import POLICIES, vla_available
from agent.store import RunRecord, RunStatus, RunStore

log = structlog.get_logger(__name__)
MAX_GOAL_CHARS = 2000


class RunRequest(BaseModel):
    goal: str = Field(description="what the robot should do, in plain English", examples=["serve a drink to the person"])
    scenario: str = Field("kitchen", description="a built-in scenario name")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="randomisation seed")
    policy: Literal["vla", "expert"] = Field("vla", description="vla (the learned policy) or expert (scripted baseline)")
    start_paused: bool = Field(False, description="pause before the first tick, e.g. to set breakpoints")


class RunCreated(BaseModel):
    id: str
    status: RunStatus
    graph: dict[str, Any] | None = None


class RunView(RunRecord):
    live: dict[str, Any] = Field(default_factory=dict, description="tick, world time and pause state of a live run")


class StepRequest(BaseModel):
    n: int = Field(1, ge=1, le=10_000, description="ticks to run")


class BreakpointRequest(BaseModel):
    spec: str = Field(description="a subtask id, a skill name or a predicate, as in the debugger's `break`")


class ValidateRequest(BaseModel):
    yaml: str = Field(description="the scenario file's text", max_length=1_000_000)
    filename: str = "scenario.yaml"


def _problem(status: int, message: str, **extra: Any) -> HTTPException:
    return HTTPException(status_code=status, detail={"message": message, **extra})


def create_app(store_path: Path | str = Path("runs/runs.sqlite"), max_workers: int = 2, builder: str | None = None,
               runs_dir: Path | str | None = None) -> FastAPI:
    """The service; `builder` ('module:function') replaces the simulator session, e.g. for a real robot."""
    store_path = Path(store_path)
    runs_dir = Path(runs_dir) if runs_dir is not None else store_path.parent

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = RunStore(store_path)
        interrupted = store.mark_interrupted("the service stopped while this run was going")
        if interrupted:
            log.warning("service.runs_interrupted", runs=interrupted)
        app.state.store = store
        app.state.runs = RunManager(store, max_workers=max_workers, builder=builder, runs_dir=runs_dir)
        await asyncio.to_thread(_warm_planner)
        yield
        app.state.runs.shutdown()
        store.close()

    app = FastAPI(
        title="vla-agent",
        version="0.1.0",
        summary="Goals in plain words for a humanoid robot: plan, run, watch, step through.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"],
                     "value": e.get("input") if not isinstance(e.get("input"), (dict, list)) else None} for e in exc.errors()]
        text = "; ".join(f"{p['field'] or 'body'}: {p['message']}" + (f" (got {p['value']!r})" if p["value"] is not None else "")
                         for p in problems)
        return JSONResponse(status_code=422, content={"detail": {"message": text, "problems": problems}})

    def runs(request: Request) -> RunManager:
        return request.app.state.runs

    def record(request: Request, run_id: str) -> RunRecord:
        rec = request.app.state.store.get(run_id)
        if rec is None:
            raise _problem(404, f"there is no run {run_id!r}")
        return rec

    # ----------------------------------------------------------------------------- runs
    @app.post("/runs", status_code=201, response_model=RunCreated, tags=["runs"])
    async def submit(request: Request, body: RunRequest) -> RunCreated:
        """Plan the goal (refusing what cannot be planned, asking back when ambiguous), then run it."""
        goal = body.goal.strip()
        if not goal:
            raise _problem(422, "the goal is empty; say what the robot should do, e.g. 'serve a drink to the person'")
        if len(goal) > MAX_GOAL_CHARS:
            raise _problem(413, f"the goal is {len(goal)} characters long; at most {MAX_GOAL_CHARS}")
        scenario = _scenario_or_404(body.scenario)
        if body.policy == "vla" and not vla_available():
            raise _problem(409, "the VLA policy has no trained checkpoint in this installation; submit with policy 'expert'",
                           policies=list(POLICIES))
        outcome = await asyncio.to_thread(_plan, goal, scenario)
        if outcome.kind == "clarification":
            raise _problem(422, outcome.question, clarification={"question": outcome.question, "slot": outcome.slot,
                                                                 "candidates": [c.model_dump() for c in outcome.candidates]})
        if outcome.kind == "error":
            raise _problem(422, outcome.reason, closest_goals=list(outcome.closest_goals))
        rec = runs(request).submit(goal, body.scenario, body.seed, body.policy, start_paused=body.start_paused)
        return RunCreated(id=rec.id, status=rec.status, graph=outcome.graph.to_dict())

    @app.get("/runs", response_model=list[RunRecord], tags=["runs"])
    async def list_runs(request: Request, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)) -> list[RunRecord]:
        return request.app.state.store.list(limit=limit, offset=offset)

    @app.get("/runs/{run_id}", response_model=RunView, tags=["runs"])
    async def get_run(request: Request, run_id: str) -> RunView:
        """Status, the graph with each node's state, the current subtask and the failure reasons."""
        rec = record(request, run_id)
        return RunView(**rec.model_dump(), live=runs(request).live_state(run_id))

    @app.get("/runs/{run_id}/events", tags=["runs"])
    async def events(request: Request, run_id: str) -> StreamingResponse:
        """Server-sent events: what the run has done so far, then live until it ends."""
        rec = record(request, run_id)
        manager = runs(request)
        past, live = manager.subscribe(run_id)
        if not past and live is None:
            past = _events_from_trace(rec)

        async def stream() -> AsyncIterator[str]:
            try:
                for event in past:
                    yield _sse(event)
                if live is None:
                    return
                while True:
                    if await request.is_disconnected():
                        return
                    try:
                        event = await asyncio.wait_for(live.get(), timeout=15)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield _sse(event)
                    if event["kind"] in ("finished", "cancelled", "failed"):
                        return
            finally:
                if live is not None:
                    manager.unsubscribe(run_id, live)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def _control(request: Request, run_id: str, op: str, **fields: Any) -> dict[str, Any]:
        rec = record(request, run_id)
        try:
            reply = await asyncio.to_thread(runs(request).control, run_id, op, **fields)
        except RunNotLive:
            raise _problem(409, f"run {run_id} is {rec.status.value}; only a live run can be {op}d" if op != "step"
                           else f"run {run_id} is {rec.status.value}; only a live run can be stepped") from None
        except TimeoutError as exc:
            raise _problem(504, str(exc)) from None
        if not reply.get("ok", False):
            raise _problem(422, reply.get("error", f"{op} failed"))
        return reply

    @app.post("/runs/{run_id}/pause", tags=["control"])
    async def pause(request: Request, run_id: str) -> dict[str, Any]:
        return (await _control(request, run_id, "pause"))["state"]

    @app.post("/runs/{run_id}/resume", tags=["control"])
    async def resume(request: Request, run_id: str) -> dict[str, Any]:
        return (await _control(request, run_id, "resume"))["state"]

    @app.post("/runs/{run_id}/step", tags=["control"])
    async def step(request: Request, run_id: str, body: StepRequest = Body(default_factory=StepRequest)) -> dict[str, Any]:
        """Pause (if running) and run `n` ticks."""
        return (await _control(request, run_id, "step", n=body.n))["state"]

    @app.post("/runs/{run_id}/cancel", tags=["control"])
    async def cancel(request: Request, run_id: str) -> dict[str, Any]:
        return (await _control(request, run_id, "cancel"))["state"]

    @app.get("/runs/{run_id}/breakpoints", tags=["control"])
    async def breakpoints(request: Request, run_id: str) -> list[str]:
        return (await _control(request, run_id, "breakpoints"))["breakpoints"]

    @app.post("/runs/{run_id}/breakpoints", status_code=201, tags=["control"])
    async def add_breakpoint(request: Request, run_id: str, body: BreakpointRequest) -> dict[str, str]:
        return {"breakpoint": (await _control(request, run_id, "break", spec=body.spec))["breakpoint"]}

    @app.delete("/runs/{run_id}/breakpoints/{which}", tags=["control"])
    async def remove_breakpoint(request: Request, run_id: str, which: str) -> dict[str, str]:
        target: int | str = int(which) if which.isdigit() else which
        return {"removed": (await _control(request, run_id, "unbreak", which=target))["breakpoint"]}

    @app.get("/runs/{run_id}/frame.png", tags=["looking"], response_class=Response,
             responses={200: {"content": {"image/png": {}}}})
    async def frame(request: Request, run_id: str) -> Response:
        """The current head-camera frame of a live run."""
        reply = await _control(request, run_id, "frame")
        return Response(content=reply["png"], media_type="image/png")

    @app.get("/runs/{run_id}/tree", tags=["looking"])
    async def tree(request: Request, run_id: str, format: Literal["dot", "svg"] = "dot") -> Response:
        """The behaviour tree with its statuses, as Graphviz DOT or (with Graphviz installed) SVG."""
        dot = (await _control(request, run_id, "tree"))["dot"]
        if format == "dot":
            return Response(content=dot, media_type="text/vnd.graphviz")
        exe = shutil.which("dot")
        if exe is None:
            raise _problem(406, "SVG needs Graphviz's `dot`, which is not installed here; ask for format=dot")
        svg = subprocess.run([exe, "-Tsvg"], input=dot.encode(), capture_output=True, check=True, timeout=30).stdout
        return Response(content=svg, media_type="image/svg+xml")

    # ------------------------------------------------------------------------ reference
    @app.get("/scenarios", tags=["scenarios"])
    async def scenarios() -> list[dict[str, Any]]:
        from scenarios.loading import builtin_scenarios, load_scenario

        out = []
        for name, path in builtin_scenarios().items():
            sc = load_scenario(path)
            out.append({"name": name, "description": sc.description, "objects": [o.id for o in sc.objects],
                        "people": [p.id for p in sc.people], "goals": [g.text for g in sc.goals]})
        return out

    @app.post("/scenarios/validate", tags=["scenarios"])
    async def validate(body: ValidateRequest) -> dict[str, Any]:
        """Check a scenario file's text; problems come with line, column, field and value."""
        from scenarios.loading import ScenarioError, parse_scenario

        try:
            sc = parse_scenario(body.yaml, body.filename)
        except ScenarioError as exc:
            return {"valid": False, "issues": [
                {"line": i.line, "column": i.column, "path": i.path, "message": i.message,
                 "value": i.value if isinstance(i.value, (str, int, float, bool, type(None))) else str(i.value), "text": str(i)}
                for i in exc.issues]}
        return {"valid": True, "name": sc.name, "issues": []}

    @app.get("/skills", tags=["planner"])
    async def skills() -> list[dict[str, Any]]:
        from planner.library import default_library

        return [s.model_dump(mode="json") for s in default_library().skills.values()]

    @app.get("/healthz", tags=["service"])
    async def health(request: Request) -> dict[str, Any]:
        return {"ok": True, "workers": request.app.state.runs.max_workers}

    return app


def _warm_planner() -> None:
    """Load the language encoder and the library once, so the first request is not slow."""
    from planner.planning import plan

    plan("serve a drink to the person", "kitchen")


def _scenario_or_404(name: str) -> Any:
    from scenarios.loading import ScenarioError, builtin_scenarios, load_scenario

    if name not in builtin_scenarios():
        from scenarios.catalog import nearest

        hint = nearest(name, list(builtin_scenarios()))
        raise _problem(404, f"there is no scenario {name!r}" + (f"; did you mean {hint!r}?" if hint else ""),
                       scenarios=list(builtin_scenarios()))
    try:
        return load_scenario(name)
    except ScenarioError as exc:  # pragma: no cover - built-ins validate in tests
        raise _problem(422, str(exc)) from None


def _plan(goal: str, scenario: Any) -> Any:
    from planner.planning import plan

    return plan(goal, scenario)


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['kind']}\ndata: {json.dumps(event, default=str)}\n\n"


def _events_from_trace(rec: RunRecord) -> list[dict[str, Any]]:
    """A finished run's events, read back from its trace (what a restarted service still has)."""
    events: list[dict[str, Any]] = []
    if rec.trace_path and Path(rec.trace_path).exists():
        for line in Path(rec.trace_path).read_text().splitlines():
            try:
                events.append({"kind": "trace", "event": json.loads(line)})
            except json.JSONDecodeError:
                continue
    events.append({"kind": rec.status.value if rec.status.finished else "state", "outcome": rec.outcome, "reasons": rec.reasons})
    return events
