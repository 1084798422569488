"""The VLA checkpoint in the repository: it loads, reads what the world gives and acts sanely."""

from __future__ import annotations

import numpy as np
import pytest

from agent.session import DEFAULT_CHECKPOINT
from policy.vla import VLAPolicy
from scenarios.world import SimWorld


@pytest.fixture(scope="module")
def shipped() -> VLAPolicy:
    assert (DEFAULT_CHECKPOINT / "model.safetensors").exists(), "the default checkpoint must ship with the repository"
    return VLAPolicy.from_pretrained(DEFAULT_CHECKPOINT)


def test_the_shipped_checkpoint_is_small_and_matches_the_world(shipped: VLAPolicy):
    size = sum(p.stat().st_size for p in DEFAULT_CHECKPOINT.iterdir())
    assert size < 10 * 2**20, f"{size / 2**20:.1f} MiB: the repository ships a few MB, not more"
    world = SimWorld("kitchen")
    obs, _ = world.reset(seed=0)
    world.close()
    for key in shipped.config.image_keys:
        assert key in obs, f"the checkpoint reads {key}, which the world does not give"
    assert shipped.config.state_dim == obs["observation.state"].shape[0]
    assert shipped.config.action_dim == world.action_space.shape[0]


def test_the_shipped_checkpoint_acts_within_the_action_space(shipped: VLAPolicy):
    world = SimWorld("kitchen")
    obs, _ = world.reset(seed=1)
    obs["task"] = "pick up the red cup"
    shipped.reset()
    chunk = shipped.predict_action_chunk(obs)
    assert chunk.shape == (shipped.config.chunk_size, shipped.config.action_dim) and np.isfinite(chunk).all()
    low, high = world.action_space.low, world.action_space.high
    span = high - low
    assert ((chunk >= low - 0.05 * span) & (chunk <= high + 0.05 * span)).all(), "actions far outside the action space"
    for _ in range(3):  # the queue serves n_action_steps actions per chunk and stays in step with the world
        obs, *_ = world.step(shipped.select_action({**obs, "task": "pick up the red cup"}))
    world.close()
