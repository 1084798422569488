"""Training: seeded, resumable, logged, validated on held-out episodes, EMA export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
