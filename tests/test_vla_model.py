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


def one_observation(rng: np.random.Generator, task: str = "pick up the red cup") -> dict:
    """One world-shaped observation (HxWx3 frames, a state vector) with its instruction."""
    obs = {k: v[0].numpy() for k, v in batch(1, rng, "x").items() if k.startswith("observation")}
    obs["task"] = task
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
    obs = one_observation(rng)
    chunk = policy.predict_action_chunk(obs)
    actions = [policy.select_action(obs) for _ in range(TINY.n_action_steps)]
    np.testing.assert_allclose(np.stack(actions), chunk[: TINY.n_action_steps], rtol=1e-6)
    policy.reset()
    assert len(policy._queue) == 0


def test_bad_observations_get_clear_errors():
    rng = np.random.default_rng(3)
    policy = VLAPolicy(TINY, VLAProcessor(TINY, text_embedder=fake_embedder))
    obs = one_observation(rng)
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


RELATIVE = TINY.model_copy(update={"relative_actions": ((0, 3), (2, 5))})


def test_relative_action_pairs_follow_the_names():
    from policy.vla.processor_vla import relative_action_pairs

    actions = ["base.vx", "left.x", "left.y", "left.z", "left.rx", "left.gripper", "head.pan", "head.tilt"]
    state = ["base.x", "head.pan", "head.tilt", "left.ee.x", "left.ee.y", "left.ee.z", "left.ee.qw"]
    assert relative_action_pairs(actions, state) == ((1, 3), (2, 4), (3, 5), (6, 1), (7, 2))
    assert relative_action_pairs(actions, ["base.x"]) == ()


def test_relative_actions_are_anchored_at_the_observed_state():
    """A chunk's relative entries are offsets from the state it was predicted from: the same
    model output lands 1 m further when the hand is 1 m further, and the conversion inverts."""
    from policy.vla.processor_vla import chunk_targets

    rng = np.random.default_rng(4)
    states = np.cumsum(rng.normal(scale=0.02, size=(30, 6)), axis=0) + rng.normal(size=6)  # a slowly moving hand
    actions = rng.normal(size=(30, 4))
    actions[:, 0] = states[:, 3] + 0.01  # the hand target stays a centimetre ahead of the hand
    processor = VLAProcessor.fit(RELATIVE, states, actions, text_embedder=fake_embedder)
    # what the model learns for entry 0 is small offsets (within a 5-step chunk), not positions across the range
    targets = chunk_targets(states, actions, RELATIVE.chunk_size, RELATIVE.relative_actions)
    assert targets.shape == (sum(30 - k for k in range(5)), 4)
    assert float(processor.stats["action_std"][0]) < float(np.std(actions[:, 0]))
    chunk = torch.as_tensor(rng.normal(size=(2, 5, 4)), dtype=torch.float32)
    raw = torch.as_tensor(states[:2], dtype=torch.float32)
    back = processor.unnormalise_action(processor.normalise_action(chunk, raw), raw)
    torch.testing.assert_close(back, chunk, rtol=1e-5, atol=1e-5)
    moved = raw.clone()
    moved[:, 3] += 1.0
    out = processor.unnormalise_action(torch.zeros(2, 5, 4), raw)
    shifted = processor.unnormalise_action(torch.zeros(2, 5, 4), moved)
    torch.testing.assert_close(shifted[..., 0] - out[..., 0], torch.ones(2, 5))
    torch.testing.assert_close(shifted[..., 1:], out[..., 1:])
    with pytest.raises(ValueError, match="raw state"):
        processor.normalise_action(chunk)


def test_relative_policy_saves_loads_and_acts_in_world_units(tmp_path: Path):
    rng = np.random.default_rng(5)
    states, actions = rng.normal(size=(40, 6)), rng.normal(size=(40, 4))
    policy = VLAPolicy(RELATIVE, VLAProcessor.fit(RELATIVE, states, actions, text_embedder=fake_embedder)).eval()
    obs = one_observation(rng)
    before = policy.predict_action_chunk(obs)
    far = {**obs, "observation.state": obs["observation.state"] + np.array([0, 0, 0, 0, 0, 0.5], np.float32)}
    # entry 2 follows state 5 one for one; nothing else moves by more than the network's response
    assert np.allclose(policy.predict_action_chunk(far)[:, 2] - before[:, 2], 0.5, atol=0.5)
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = VLAPolicy.from_pretrained(tmp_path / "ckpt", text_embedder=fake_embedder)
    assert loaded.config.relative_actions == ((0, 3), (2, 5))
    np.testing.assert_array_equal(before, loaded.predict_action_chunk(obs))


def test_relative_pairs_outside_the_sizes_are_refused():
    with pytest.raises(ValueError, match=r"relative_actions pair \(4, 3\)"):
        TINY.model_copy(update={"relative_actions": ((4, 3),)}).model_validate(
            {**TINY.model_dump(), "relative_actions": ((4, 3),)})


def _fit_on_state(state_noise: float) -> tuple[float, float]:
    """Train a tiny model whose targets depend on the state only (the images are noise);
    returns (first, last) clean training loss."""
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    policy = VLAPolicy(TINY, VLAProcessor(TINY, text_embedder=fake_embedder))
    data = batch(16, rng, "pick up the red cup")
    data["action"] = torch.sign(data["observation.state"][:, :4])[:, None, :].expand(16, 5, 4).contiguous()
    opt = torch.optim.AdamW(policy.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    first = policy(data)[0].item()
    for _ in range(120):
        loss, _ = policy(data, state_noise=state_noise, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, policy(data)[0].item()


def test_state_noise_hides_the_state_from_the_model_but_not_from_the_targets():
    """Noise on the state the model reads is seeded and absent by default; with enough of it
    the state no longer tells the model what to do, so targets that depend on it alone are
    not learnt (a real dataset's images carry the phase instead)."""
    rng = np.random.default_rng(6)
    policy = VLAPolicy(RELATIVE, VLAProcessor(RELATIVE, text_embedder=fake_embedder))
    data = batch(4, rng, "pick up the red cup")
    data["action"] = torch.as_tensor(rng.normal(size=(4, 5, 4)), dtype=torch.float32)
    clean = policy(data)[0].item()
    assert policy(data, state_noise=0.0)[0].item() == clean
    noisy = [policy(data, state_noise=1.0, generator=torch.Generator().manual_seed(1))[0].item() for _ in range(2)]
    assert noisy[0] == noisy[1] != clean, "seeded, and the model reads another state"
    first, learnt = _fit_on_state(0.0)
    _, blinded = _fit_on_state(2.0)
    assert learnt < 0.3 * first, (first, learnt)
    assert blinded > 2 * learnt, (learnt, blinded)
