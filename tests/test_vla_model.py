"""The VLA model through its public interface: learning, persistence, bad observations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from policy.vla import ObservationError, VLAConfig, VLAPolicy, VLAProcessor

# Tiny models on a shared 2-core machine: one intra-op thread avoids spin-waiting on a busy core.
torch.set_num_threads(1)

TINY = VLAConfig(image_size=(24, 32), state_dim=6, action_dim=4, chunk_size=5, n_action_steps=3,
                 channels=(8, 16), grid=(2, 2), text_dim=8, d_model=32, n_heads=4, n_layers=1, dim_feedforward=64, dropout=0.0)
WORDS = {"pick up the red cup": 0, "pick up the blue cup": 1}


def fake_embedder(texts: list[str]) -> torch.Tensor:
    """A deterministic stand-in for MiniLM: one-hot per known instruction."""
    out = torch.zeros(len(texts), TINY.text_dim)
    for i, t in enumerate(texts):
        out[i, WORDS.get(t, 7)] = 1.0
    return out


def batch(n: int, rng: np.random.Generator, task: str) -> dict:
    obs = {k: torch.as_tensor(rng.integers(0, 255, (n, 24, 32, 3), dtype=np.uint8)) for k in TINY.image_keys}
    obs["observation.state"] = torch.as_tensor(rng.normal(size=(n, 6)), dtype=torch.float32)
    obs["task"] = [task] * n
    return obs


def test_tiny_model_overfits_and_follows_the_instruction():
    """Same images and state, two instructions, two different chunks: the words must decide."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    processor = VLAProcessor(TINY, text_embedder=fake_embedder)
    policy = VLAPolicy(TINY, processor)
    red, blue = batch(8, rng, "pick up the red cup"), batch(8, rng, "pick up the blue cup")
    blue.update({k: red[k] for k in red if k != "task"})
    red["action"] = torch.full((8, 5, 4), 0.5)
    blue["action"] = torch.full((8, 5, 4), -0.5)
    merged = {k: torch.cat([red[k], blue[k]]) for k in red if k != "task"}
    merged["task"] = red["task"] + blue["task"]
    opt = torch.optim.AdamW(policy.parameters(), lr=5e-3)
    first = None
    for _ in range(150):
        loss, _ = policy(merged)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.05 * first
    one = {k: v[0].numpy() for k, v in red.items() if k.startswith("observation")}
    a = policy.predict_action_chunk({**one, "task": "pick up the red cup"})
    b = policy.predict_action_chunk({**one, "task": "pick up the blue cup"})
    assert a.shape == (5, 4)
    assert np.allclose(a, 0.5, atol=0.1) and np.allclose(b, -0.5, atol=0.1)


def test_save_then_load_gives_identical_actions(tmp_path: Path):
    rng = np.random.default_rng(1)
    processor = VLAProcessor.fit(TINY, rng.normal(size=(50, 6)), rng.normal(size=(50, 4)), text_embedder=fake_embedder)
    policy = VLAPolicy(TINY, processor).eval()
    obs = {k: v[0].numpy() for k, v in batch(1, rng, "pick up the red cup").items() if k.startswith("observation")}
    obs["task"] = "pick up the red cup"
    before = policy.predict_action_chunk(obs)
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = VLAPolicy.from_pretrained(tmp_path / "ckpt", text_embedder=fake_embedder)
    np.testing.assert_array_equal(before, loaded.predict_action_chunk(obs))
    assert loaded.config == TINY


def test_select_action_consumes_chunks():
    rng = np.random.default_rng(2)
    policy = VLAPolicy(TINY, VLAProcessor(TINY, text_embedder=fake_embedder))
    obs = {k: v[0].numpy() for k, v in batch(1, rng, "x").items() if k.startswith("observation")}
    obs["task"] = "pick up the red cup"
    chunk = policy.predict_action_chunk(obs)
    actions = [policy.select_action(obs) for _ in range(TINY.n_action_steps)]
    np.testing.assert_allclose(np.stack(actions), chunk[: TINY.n_action_steps], rtol=1e-6)
    policy.reset()
    assert len(policy._queue) == 0


def test_bad_observations_get_clear_errors():
    rng = np.random.default_rng(3)
    policy = VLAPolicy(TINY, VLAProcessor(TINY, text_embedder=fake_embedder))
    obs = {k: v[0].numpy() for k, v in batch(1, rng, "x").items() if k.startswith("observation")}
    obs["task"] = "pick up the red cup"
    wrong_key = {("observation.images.front" if k == "observation.images.head" else k): v for k, v in obs.items()}
    with pytest.raises(ObservationError, match="observation.images.head"):
        policy.predict_action_chunk(wrong_key)
    with pytest.raises(ObservationError, match="shape"):
        policy.predict_action_chunk({**obs, "observation.images.head": np.zeros((24, 32), np.uint8)})
    with pytest.raises(ObservationError, match="built for 6"):
        policy.predict_action_chunk({**obs, "observation.state": np.zeros(9, np.float32)})
    with pytest.raises(ObservationError, match="instruction"):
        policy.predict_action_chunk({**obs, "task": ""})
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        VLAPolicy.from_pretrained("/nonexistent")
