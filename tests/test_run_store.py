"""The run store keeps every run across restarts and marks interrupted ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.store import RunStatus, RunStore


def test_runs_survive_a_restart_and_unfinished_ones_are_marked(tmp_path: Path):
    store = RunStore(tmp_path / "runs.sqlite")
    done = store.create("serve a drink", "kitchen", 0, "expert")
    store.update(done.id, status=RunStatus.SUCCEEDED, outcome={"status": "succeeded"}, graph={"nodes": []})
    going = store.create("tidy the table", "tidy_table", 1, "vla")
    store.update(going.id, status=RunStatus.RUNNING, current_subtask="pick_1")
    store.close()

    again = RunStore(tmp_path / "runs.sqlite")
    assert again.mark_interrupted() == [going.id]
    runs = {r.id: r for r in again.list()}
    assert set(runs) == {done.id, going.id}
    assert runs[done.id].status is RunStatus.SUCCEEDED and runs[done.id].outcome == {"status": "succeeded"}
    assert runs[going.id].status is RunStatus.INTERRUPTED and "service stopped" in runs[going.id].reasons[-1]
    assert runs[going.id].current_subtask == "pick_1"
    assert again.list()[0].id == going.id, "newest first"


def test_bad_updates_are_refused(tmp_path: Path):
    store = RunStore(tmp_path / "runs.sqlite")
    run = store.create("g", "kitchen", 0, "expert")
    with pytest.raises(ValueError, match="cannot update"):
        store.update(run.id, id="other")
    with pytest.raises(KeyError):
        store.update("nope", status=RunStatus.FAILED)
    assert store.get("nope") is None
