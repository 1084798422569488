"""collect → train → a policy that acts in the world, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agent.cli import app
from policy.recording import CollectConfig, collect

runner = CliRunner()


def test_train_refuses_a_folder_that_is_not_a_dataset(tmp_path: Path):
    result = runner.invoke(app, ["train", "--dataset", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "2"])
    assert result.exit_code == 2 and "not a dataset" in result.output
    result = runner.invoke(app, ["train", "--dataset", str(tmp_path), "--out", str(tmp_path / "run"), "--image-size", "big"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["train", "--dataset", str(tmp_path), "--out", str(tmp_path / "run"), "--actions", "delta"])
    assert result.exit_code == 2 and "relative or absolute" in result.output
    result = runner.invoke(app, ["train", "--dataset", str(tmp_path), "--out", str(tmp_path / "run"), "--skill-weight", "navigate_to=lots"])
    assert result.exit_code == 2 and "navigate_to=lots" in result.output
    result = runner.invoke(app, ["train", "--dataset", str(tmp_path), "--out", str(tmp_path / "run"), "--episode-weight", "shiny=2"])
    assert result.exit_code == 2 and "shiny" in result.output and "offset" in result.output


@pytest.mark.slow
def test_collect_train_and_act(tmp_path: Path):
    torch.set_num_threads(1)
    data = tmp_path / "data"
    collect(CollectConfig(scenarios=("kitchen",), skills=("pick",), episodes=2, seed=3, image_size=(32, 40),
                          dart_fraction=0.0, perturb_fraction=0.0), data)
    out = tmp_path / "run"
    args = ["train", "--dataset", str(data), "--out", str(out), "--steps", "6", "--batch-size", "8",
            "--image-size", "32x40", "--chunk-size", "5", "--threads", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 6 and np.isfinite(metrics[-1]["loss"])

    from policy.vla import VLAPolicy
    from scenarios.world import SimWorld

    policy = VLAPolicy.from_pretrained(out / "pretrained")
    # by default the hands' positions and the head's angles are learnt relative to the observed state
    names = json.loads((data / "meta" / "info.json").read_text())["features"]
    pairs = {(names["action"]["names"][a], names["observation.state"]["names"][s]) for a, s in policy.config.relative_actions}
    assert pairs == {("left.x", "left.ee.x"), ("left.y", "left.ee.y"), ("left.z", "left.ee.z"), ("right.x", "right.ee.x"),
                     ("right.y", "right.ee.y"), ("right.z", "right.ee.z"), ("head.pan", "head.pan"), ("head.tilt", "head.tilt")}
    world = SimWorld("kitchen")
    try:
        obs, _ = world.reset(seed=0, options={"task": "pick up the red cup"})
        action = policy.select_action(obs)
        assert action.shape == world.action_space.shape and np.all(np.isfinite(action))
        world.step(np.clip(action, world.action_space.low, world.action_space.high))
    finally:
        world.close()
    again = runner.invoke(app, args)  # resuming a finished run changes nothing
    assert again.exit_code == 0
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()][-1] == 6
    result = runner.invoke(app, args[:4] + [str(tmp_path / "never"), "--episode-weight", "offset=3"])
    assert result.exit_code == 2 and "no episode" in result.output and "offset" in result.output
    # fine-tuning starts from the saved weights and keeps the saved config and normaliser
    tuned = tmp_path / "tuned"
    result = runner.invoke(app, ["train", "--dataset", str(data), "--out", str(tuned), "--steps", "2", "--batch-size", "8",
                                 "--lr", "1e-12", "--threads", "1", "--init-from", str(out / "pretrained")])
    assert result.exit_code == 0, result.output
    assert "fine-tuning" in result.output and "(32, 40)" in result.output
    child = VLAPolicy.from_pretrained(tuned / "pretrained")
    assert child.config == policy.config
    before, after = policy.model.state_dict(), child.model.state_dict()
    assert all(torch.allclose(before[k].float(), after[k].float(), atol=1e-6) for k in before), "a 1e-12 step moves nothing"
    assert all(torch.equal(child.processor.stats[k], policy.processor.stats[k]) for k in policy.processor.stats)
    bad = runner.invoke(app, ["train", "--dataset", str(data), "--out", str(tmp_path / "x"), "--init-from", str(tmp_path)])
    assert bad.exit_code == 2 and "not a saved VLA checkpoint" in " ".join(bad.output.split())
    from policy.vla import VLAProcessor
    from test_vla_model import TINY, fake_embedder

    other = tmp_path / "other"
    VLAPolicy(TINY, VLAProcessor(TINY, text_embedder=fake_embedder)).save_pretrained(other)
    mismatch = runner.invoke(app, ["train", "--dataset", str(data), "--out", str(tmp_path / "y"), "--init-from", str(other)])
    assert mismatch.exit_code == 2 and "expects state_dim 6" in " ".join(mismatch.output.split()), mismatch.output
