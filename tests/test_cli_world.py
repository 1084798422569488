"""The world's commands: render, xml, bench and the demo, driven through the CLI."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.cli import app

runner = CliRunner()


def test_render_writes_head_beside_overview(tmp_path: Path):
    out = tmp_path / "k.png"
    result = runner.invoke(app, ["scenario", "render", "kitchen", "--seed", "4", "--out", str(out), "--height", "120", "--width", "160"])
    assert result.exit_code == 0, result.output
    image = np.asarray(Image.open(out))
    assert image.shape == (120, 320, 3)
    assert image[:, :160].std() > 10 and image[:, 160:].std() > 10, "neither view is blank"


def test_render_refuses_bad_input(tmp_path: Path):
    result = runner.invoke(app, ["scenario", "render", "kitchn", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "did you mean 'kitchen'" in result.output
    result = runner.invoke(app, ["scenario", "render", "kitchen", "--height", "5000", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert not (tmp_path / "x.png").exists()


def test_xml_export_loads_in_mujoco(tmp_path: Path):
    result = runner.invoke(app, ["scenario", "xml", "living_room", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    model = mujoco.MjModel.from_xml_path(str(tmp_path / "scene.xml"))
    assert model.body("shelf").id > 0 and model.camera("head_camera").id >= 0


def test_bench_world_prints_the_three_figures():
    result = runner.invoke(app, ["bench", "world", "--seconds", "0.2", "--height", "60", "--width", "80"])
    assert result.exit_code == 0, result.output
    for needle in ("physics steps per second", "ms per RGB frame", "control steps per second"):
        assert needle in result.output
    assert runner.invoke(app, ["bench", "world", "--seconds", "0"]).exit_code == 2


@pytest.mark.slow
def test_demo_reaches_every_target(tmp_path: Path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "kitchen_seed0.png").exists() and (tmp_path / "kitchen_reach.png").exists()
    assert "red_cup" in result.output and "yellow_box" in result.output
    assert "not reached" not in result.output
