"""The HTTP service on a real uvicorn server on loopback, driven by an HTTP client.

Runs use the behaviour-tree fakes (tests/service_fakes.py) in real worker processes, so
the service's own machinery — store, worker pool, control pipe, server-sent events,
restarts — is what is tested; the simulator's runs are tested elsewhere.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
pytestmark = pytest.mark.timeout(300)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "VLA_AGENT_PLANNER_THREADS": "1",
               "VLA_AGENT_CHECKPOINT": str(self.store.parent / "no-checkpoint")}  # the 409 for a missing VLA
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "serve", "--port", str(self.port), "--store", str(self.store),
             "--workers", "2", "--session", "service_fakes:fake_session"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stdout.read().decode()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("server did not come up")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("svc") / "runs.sqlite").start()
    yield srv
    srv.kill()


def _wait(client: httpx.Client, run_id: str, statuses: set[str], timeout: float = 60, until=lambda run: True) -> dict:
    """Poll until the run's status is one of `statuses` and `until(run)` holds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = client.get(f"/runs/{run_id}").json()
        if run["status"] in statuses and until(run):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} stayed {run['status']}")


def test_submit_follow_events_and_finish(server: Server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/runs", json={"goal": "serve a drink to the person", "scenario": "kitchen", "policy": "expert"})
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        assert r.json()["graph"]["nodes"], "the planned graph comes back"
        kinds, subtasks = [], []
        with client.stream("GET", f"/runs/{run_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    kinds.append(event["kind"])
                    if event["kind"] == "trace" and event["event"]["event"] == "subtask_succeeded":
                        subtasks.append(event["event"]["subtask"])
                    if event["kind"] in ("finished", "failed", "cancelled"):
                        break
        assert kinds[0] == "started" and kinds[-1] == "finished"
        assert subtasks == ["a1", "b1", "c1"]
        run = client.get(f"/runs/{run_id}").json()
        assert run["status"] == "succeeded" and run["outcome"]["status"] == "succeeded"
        assert run["node_states"] == {"a1": "succeeded", "b1": "succeeded", "c1": "succeeded"}
        assert Path(run["trace_path"]).exists()
        assert any(r["id"] == run_id for r in client.get("/runs").json())


def test_pause_step_resume_breakpoint_frame_tree(server: Server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run_id = client.post("/runs", json={"goal": "serve a drink to the person", "policy": "expert", "start_paused": True}).json()["id"]
        _wait(client, run_id, {"paused"})
        state = client.post(f"/runs/{run_id}/step", json={"n": 3}).json()
        assert state["paused"] and state["tick"] == 3
        assert client.get(f"/runs/{run_id}").json()["status"] == "paused"
        png = client.get(f"/runs/{run_id}/frame.png")
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        dot = client.get(f"/runs/{run_id}/tree")
        assert dot.status_code == 200 and "digraph" in dot.text and "a1" in dot.text
        bp = client.post(f"/runs/{run_id}/breakpoints", json={"spec": "c1"})
        assert bp.status_code == 201, bp.text
        assert len(client.get(f"/runs/{run_id}/breakpoints").json()) == 1
        assert client.post(f"/runs/{run_id}/breakpoints", json={"spec": "no_such_thing"}).status_code == 422
        client.post(f"/runs/{run_id}/resume")
        # the status follows the worker's reports: right after the resume it can still read the old pause
        run = _wait(client, run_id, {"paused"}, until=lambda r: bool((r.get("live") or {}).get("pause_reason")))
        assert "c1" in run["live"]["pause_reason"]
        assert run["node_states"]["b1"] == "succeeded"
        client.post(f"/runs/{run_id}/resume")
        assert _wait(client, run_id, {"succeeded", "failed"})["status"] == "succeeded"
        assert client.post(f"/runs/{run_id}/pause").status_code == 409, "a finished run cannot be paused"


def test_cancel_and_crashed_worker(server: Server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run_id = client.post("/runs", json={"goal": "serve a drink to the person", "policy": "expert", "start_paused": True}).json()["id"]
        _wait(client, run_id, {"paused"})
        assert client.post(f"/runs/{run_id}/cancel").status_code == 200
        run = _wait(client, run_id, {"cancelled"})
        assert "cancelled on request" in run["reasons"]
        crash = client.post("/runs", json={"goal": "serve a drink to the person", "policy": "expert", "seed": 666}).json()["id"]
        run = _wait(client, crash, {"failed"})
        assert any("exit code 3" in r for r in run["reasons"])


@pytest.mark.parametrize("body,status,needle", [
    ({"goal": "serve a drink", "scenario": "kitchn", "policy": "expert"}, 404, "did you mean 'kitchen'"),
    ({"goal": "   ", "policy": "expert"}, 422, "empty"),
    ({"goal": "x" * 10_000, "policy": "expert"}, 413, "characters"),
    ({"goal": "give the cup to the person", "scenario": "distractors", "policy": "expert"}, 422, "Which cup"),
    ({"goal": "bring me a banana", "policy": "expert"}, 422, "banana"),
    ({"goal": "serve a drink", "seed": -1, "policy": "expert"}, 422, "seed"),
    ({"goal": "serve a drink", "policy": "genius"}, 422, "policy"),
    ({"goal": "serve a drink", "policy": "vla"}, 409, "checkpoint"),
    ({"scenario": "kitchen"}, 422, "goal"),
])
def test_bad_requests_are_4xx_with_a_message(server: Server, body: dict, status: int, needle: str):
    r = httpx.post(f"{server.url}/runs", json=body, timeout=30)
    assert r.status_code == status, r.text
    assert needle in json.dumps(r.json())


def test_clarification_lists_candidates(server: Server):
    r = httpx.post(f"{server.url}/runs", json={"goal": "give the cup to the person", "scenario": "distractors", "policy": "expert"}, timeout=30)
    candidates = r.json()["detail"]["clarification"]["candidates"]
    assert {c["id"] for c in candidates} == {"red_cup", "blue_cup", "green_cup"}


def test_unknown_run_and_reference_endpoints(server: Server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for path in ("/runs/nope", "/runs/nope/events", "/runs/nope/frame.png"):
            r = client.get(path)
            assert r.status_code == 404 and "nope" in r.text
        assert client.post("/runs/nope/step", json={"n": 1}).status_code == 404
        names = {s["name"] for s in client.get("/scenarios").json()}
        assert {"kitchen", "tidy_table", "living_room", "distractors"} <= names
        bad = client.post("/scenarios/validate", json={"yaml": "name: x\nroom: {size: [5, 5]}\nrobot: {start: {x: 0, y: 0}}\n"
                                                          "objects:\n  - {id: c, category: cup, colour: redd, on: floor, at: [1, 1]}\n"})
        issue = bad.json()["issues"][0]
        assert not bad.json()["valid"] and issue["line"] == 5 and "did you mean 'red'" in issue["message"]
        assert {"pick", "place", "handover"} <= {s["name"] for s in client.get("/skills").json()}
        spec = client.get("/openapi.json").json()
        assert {"/runs", "/runs/{run_id}/events", "/runs/{run_id}/step", "/scenarios/validate"} <= set(spec["paths"])


def test_restart_finds_every_run_and_marks_interrupted(tmp_path: Path):
    srv = Server(tmp_path / "runs.sqlite").start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            done = client.post("/runs", json={"goal": "serve a drink to the person", "policy": "expert"}).json()["id"]
            _wait(client, done, {"succeeded"})
            live = client.post("/runs", json={"goal": "serve a drink to the person", "policy": "expert", "start_paused": True}).json()["id"]
            _wait(client, live, {"paused"})
    finally:
        srv.kill()
    srv = Server(tmp_path / "runs.sqlite").start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            runs = {r["id"]: r for r in client.get("/runs").json()}
            assert runs[done]["status"] == "succeeded"
            assert runs[live]["status"] == "interrupted" and "service stopped" in runs[live]["reasons"][-1]
            events = client.get(f"/runs/{done}/events").text
            assert "subtask_succeeded" in events, "a finished run's events come back from its trace"
    finally:
        srv.kill()
