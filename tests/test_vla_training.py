"""Training: seeded, resumable, logged, validated on held-out episodes, EMA export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from policy.vla import VLAPolicy, VLAProcessor
from policy.vla.training import TrainConfig, split_by_episode, train
from test_vla_model import TINY, fake_embedder  # noqa: E402

torch.set_num_threads(1)


class ToyEpisodes(Dataset):
    """Eight short episodes whose action chunk depends on the instruction."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.items = []
        self.episode_indices = []
        for ep in range(8):
            task = "pick up the red cup" if ep % 2 else "pick up the blue cup"
            for _ in range(6):
                item = {k: torch.as_tensor(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)) for k in TINY.image_keys}
                item["observation.state"] = torch.as_tensor(rng.normal(size=6), dtype=torch.float32)
                item["action"] = torch.full((5, 4), 0.5 if ep % 2 else -0.5)
                item["action_is_pad"] = torch.zeros(5, dtype=torch.bool)
                item["task"] = task
                self.items.append(item)
                self.episode_indices.append(ep)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


CFG = TrainConfig(steps=12, batch_size=8, lr=3e-3, warmup_steps=2, log_every=2, eval_every=6, save_every=4, val_fraction=0.25)


def _weights(folder: Path) -> dict:
    return VLAPolicy.from_pretrained(folder, text_embedder=fake_embedder).model.state_dict()


def test_split_keeps_episodes_apart():
    data = ToyEpisodes()
    train_set, val_set = split_by_episode(data, 0.25, seed=0)
    train_eps = {data.episode_indices[i] for i in train_set.indices}
    val_eps = {data.episode_indices[i] for i in val_set.indices}
    assert train_eps.isdisjoint(val_eps) and len(val_eps) == 2


def test_training_is_seeded_logged_and_exports_ema(tmp_path: Path):
    data = ToyEpisodes()
    a = train(data, tmp_path / "a", TINY, CFG, VLAProcessor(TINY, text_embedder=fake_embedder))
    b = train(data, tmp_path / "b", TINY, CFG, VLAProcessor(TINY, text_embedder=fake_embedder))
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "same seed, same weights"
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [2, 4, 6, 8, 10, 12]
    assert any("val_l1" in r for r in lines) and all(np.isfinite(r["loss"]) for r in lines if "loss" in r)


def test_training_resumes_where_it_stopped(tmp_path: Path):
    data = ToyEpisodes()
    out = tmp_path / "run"
    train(data, out, TINY, CFG.model_copy(update={"steps": 8}), VLAProcessor(TINY, text_embedder=fake_embedder))
    state = torch.load(out / "training_state.pt", weights_only=False)
    assert state["step"] == 8
    train(data, out, TINY, CFG, VLAProcessor(TINY, text_embedder=fake_embedder))
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 12, "the second run continued from step 8, not from 0"
    assert torch.load(out / "training_state.pt", weights_only=False)["step"] == 12


def _reference_augment(x: torch.Tensor, shift: int, gen: torch.Generator, brightness: float) -> torch.Tensor:
    """Per-sample crop in a plain loop: the gather in `augment` must select the same pixels."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (shift,) * 4, mode="replicate")
    dx = torch.randint(0, 2 * shift + 1, (b,), generator=gen)
    dy = torch.randint(0, 2 * shift + 1, (b,), generator=gen)
    out = torch.stack([padded[i, :, dy[i]: dy[i] + h, dx[i]: dx[i] + w] for i in range(b)])
    scale = 1.0 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * brightness
    return (out * scale).clamp(0, 1)


def test_augment_shifts_each_sample_and_is_seeded():
    from policy.vla.training import augment

    x = torch.rand(5, 3, 12, 16, generator=torch.Generator().manual_seed(1))
    got = augment({"cam": x, "task": ["t"] * 5}, ("cam",), 3, 0.2, torch.Generator().manual_seed(7))["cam"]
    want = _reference_augment(x, 3, torch.Generator().manual_seed(7), 0.2)
    assert got.shape == x.shape and torch.equal(got, want)
    again = augment({"cam": x}, ("cam",), 3, 0.2, torch.Generator().manual_seed(7))["cam"]
    assert torch.equal(got, again), "same generator seed, same augmentation"
    assert not torch.equal(got, x), "the images were changed"
    uint8 = (x * 255).to(torch.uint8).permute(0, 2, 3, 1)  # channels-last uint8, as a camera gives
    assert augment({"cam": uint8}, ("cam",), 0, 0.0, torch.Generator())["cam"].shape == x.shape


def test_training_and_inference_on_a_gpu_match_the_cpu(tmp_path: Path):
    if not torch.cuda.is_available():
        pytest.skip("no GPU: training on CUDA is checked where CUDA is present")
    data = ToyEpisodes()  # pragma: no cover - GPU machines
    folder = train(data, tmp_path / "gpu", TINY, CFG.model_copy(update={"device": "cuda"}), VLAProcessor(TINY, text_embedder=fake_embedder))
    lines = [json.loads(x) for x in (tmp_path / "gpu" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in lines if "loss" in r) and any("val_l1" in r for r in lines)
    cpu = VLAPolicy.from_pretrained(folder, text_embedder=fake_embedder)
    gpu = VLAPolicy.from_pretrained(folder, text_embedder=fake_embedder).to("cuda")
    obs = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in data[0].items() if k not in ("action", "action_is_pad")}
    a, b = cpu.predict_action_chunk(obs), gpu.predict_action_chunk(obs)
    assert np.allclose(a, b, atol=1e-3 * (1 + np.abs(a).max())), np.abs(a - b).max()


class _Skilled(torch.utils.data.Dataset):
    """Items and episodes the way DemonstrationDataset exposes them: 30 pick frames, 10 navigate_to frames."""

    def __init__(self) -> None:
        self.episodes = [{"episode_index": 0, "skill": "pick"}, {"episode_index": 1, "skill": "navigate_to"},
                         {"episode_index": 2, "skill": "navigate_to", "offset": True, "carrying": None}]
        self.items = [(0, f) for f in range(30)] + [(1, f) for f in range(8)] + [(2, f) for f in range(2)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> int:
        return i


def test_skill_weights_draw_a_skill_more_often():
    from torch.utils.data import Subset

    from policy.vla.training import skill_sampler

    data = _Skilled()
    whole = Subset(data, list(range(len(data))))
    assert skill_sampler(whole, {}, seed=0) is None, "no weights: plain shuffling"
    drawn = [data.episodes[data.items[whole.indices[i]][0]]["skill"] for _ in range(50) for i in skill_sampler(whole, {"navigate_to": 9.0}, seed=0)]
    share = drawn.count("navigate_to") / len(drawn)
    assert 0.7 < share < 0.8, share  # 10 frames × 9 against 30 × 1: 0.75 (0.25 unweighted)
    with pytest.raises(ValueError, match="look_for"):
        skill_sampler(whole, {"look_for": 2.0}, seed=0)


def test_episode_weights_draw_a_flagged_episode_more_often():
    """`collect --offset` episodes are a few per cent of their skill's frames; a fine-tune weights them up."""
    from torch.utils.data import Subset

    from policy.vla.training import skill_sampler

    data = _Skilled()
    whole = Subset(data, list(range(len(data))))
    drawn = [data.items[whole.indices[i]][0] for _ in range(50) for i in skill_sampler(whole, {}, seed=0, episode_weights={"offset": 14.0})]
    assert 0.35 < drawn.count(2) / len(drawn) < 0.45  # 2 frames × 14 against 38 × 1: 0.42 (0.05 unweighted)
    both = [data.items[whole.indices[i]][0] for _ in range(50)
            for i in skill_sampler(whole, {"navigate_to": 2.0}, seed=0, episode_weights={"offset": 7.0})]
    assert 0.35 < both.count(2) / len(both) < 0.45, "the weights multiply: 2 × 7 = 14"
    with pytest.raises(ValueError, match="carrying"):
        skill_sampler(whole, {}, seed=0, episode_weights={"carrying": 2.0})  # no episode carried anything
    with pytest.raises(ValueError, match="shiny"):
        skill_sampler(whole, {}, seed=0, episode_weights={"shiny": 2.0})
