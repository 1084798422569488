"""Observation and action conversion for the VLA: checks, resizing, normalisation, text.

The processor owns everything that turns a world observation into model tensors and model
outputs back into world actions, so the model itself only ever sees normalised tensors.
Normalisation statistics are saved beside the weights (`processor.safetensors`).

With `VLAConfig.relative_actions` some action entries (the hands' position targets, the
head's joint targets) are modelled as offsets from the state observed with the chunk, as
UMI-style relative trajectories are: every action of a chunk is relative to the same
observation. With `VLAConfig.target_anchor`, while a manipulation target is given, the hand
nearer to it is predicted relative to the target point instead, normalised by statistics of
its own (`anchor_mean`, `anchor_std`). The processor converts both ways, so callers always
see world actions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from policy.vla.configuration_vla import ENV_KEY, STATE_KEY, TASK_KEY, VLAConfig

PROCESSOR_NAME = "processor.safetensors"
TextEmbedder = Callable[[list[str]], torch.Tensor]


class ObservationError(ValueError):
    """An observation the policy cannot use; the message names the key and what was expected."""


def default_text_embedder() -> TextEmbedder:
    """The frozen MiniLM encoder (shared with the planner), loaded on first use."""
    from planner.language import get_encoder

    encoder = get_encoder()
    return encoder.encode


def relative_action_pairs(action_names: Sequence[str], state_names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """(action index, state index) for every action whose state counterpart is observed:
    `left.x` ↔ `left.ee.x` (hand position targets, base frame) and `head.pan` ↔ `head.pan`.
    Orientations (rotation vector vs. quaternion), grippers and base velocities stay absolute."""
    state_index = {name: i for i, name in enumerate(state_names)}
    pairs = []
    for a, name in enumerate(action_names):
        side, _, coord = name.partition(".")
        counterpart = f"{side}.ee.{coord}" if coord in ("x", "y", "z") else name if side == "head" else None
        if counterpart in state_index:
            pairs.append((a, state_index[counterpart]))
    return tuple(pairs)


def chunk_targets(states: np.ndarray, actions: np.ndarray, chunk_size: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Every action of every chunk of one episode as the model predicts it: (N * chunk_size', A),
    relative entries taken from the state at the chunk's first frame (what normalisation is fit on)."""
    if not pairs:
        return np.asarray(actions)
    out = []
    a_idx, s_idx = (list(x) for x in zip(*pairs))
    for k in range(min(chunk_size, len(actions))):
        rel = np.array(actions[k:], dtype=np.float64)
        rel[:, a_idx] -= states[: len(actions) - k][:, s_idx]
        out.append(rel)
    return np.concatenate(out)


def right_hand_nearer(to_left: np.ndarray | torch.Tensor, to_right: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Per row, whether the target is nearer the right hand than the left, from the target's
    offsets from each (numpy or torch, (..., 3)); ties go to the left. Statistics and run time
    pick the anchored hand by this one rule."""
    return (to_right ** 2).sum(-1) < (to_left ** 2).sum(-1)


def anchored_offsets(config: VLAConfig, states: np.ndarray, actions: np.ndarray, targets: np.ndarray | None) -> np.ndarray:
    """(M, 3) offsets of one episode's anchored hand targets from its manipulation target, every
    action of every chunk that starts on a frame with a valid target (what `anchor_mean` and
    `anchor_std` are fit on); `targets` is (N, 4) as `policy.manipulation_target` encodes it."""
    if targets is None or not config.target_anchor:
        return np.zeros((0, 3))
    hands = np.asarray(states, np.float64)[:, list(config.target_hand_state)]
    left_idx, right_idx = config.hand_actions
    out = []
    for f in np.flatnonzero(np.asarray(targets)[:, 0] > 0):
        point = np.asarray(targets[f, 1:4], np.float64)
        right = right_hand_nearer(point - hands[f, :3], point - hands[f, 3:])
        out.append(np.asarray(actions[f: f + config.chunk_size], np.float64)[:, list(right_idx if right else left_idx)] - point)
    return np.concatenate(out) if out else np.zeros((0, 3))


class VLAProcessor:
    """Normalises states and actions and embeds instructions, with a per-string cache."""

    def __init__(self, config: VLAConfig, stats: Mapping[str, torch.Tensor] | None = None, text_embedder: TextEmbedder | None = None) -> None:
        self.config = config
        zeros = lambda n: torch.zeros(n)  # noqa: E731
        ones = lambda n: torch.ones(n)  # noqa: E731
        stats = dict(stats or {})
        self.stats = {
            "state_mean": stats.get("state_mean", zeros(config.state_dim)).float(),
            "state_std": stats.get("state_std", ones(config.state_dim)).float(),
            "action_mean": stats.get("action_mean", zeros(config.action_dim)).float(),
            "action_std": stats.get("action_std", ones(config.action_dim)).float(),
        }
        if config.target_anchor:
            self.stats["anchor_mean"] = stats.get("anchor_mean", zeros(3)).float()
            self.stats["anchor_std"] = stats.get("anchor_std", ones(3)).float()
        for key, value in self.stats.items():
            want = config.state_dim if key.startswith("state") else 3 if key.startswith("anchor") else config.action_dim
            if value.shape != (want,):
                raise ValueError(f"normalisation stat {key} has shape {tuple(value.shape)}, expected ({want},)")
        self._embed = text_embedder
        self._text_cache: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    # -- statistics -----------------------------------------------------------------------
    @classmethod
    def fit(cls, config: VLAConfig, states: np.ndarray | Sequence[np.ndarray], actions: np.ndarray | Sequence[np.ndarray],
            text_embedder: TextEmbedder | None = None, targets: Sequence[np.ndarray | None] | None = None) -> VLAProcessor:
        """Statistics from training data (arrays, or one array per episode); tiny stds are
        floored so constant dims stay finite. Relative action entries are fit on their offsets
        within chunks, which is what the model predicts; with `target_anchor`, the anchored hand's
        on its offsets from the episodes' `targets` (one (N, 4) array or None per episode)."""
        def moments(x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.as_tensor(x, dtype=torch.float64)
            return x.mean(0).float(), x.std(0).clamp(min=1e-3).float()

        episodes_s = [states] if isinstance(states, np.ndarray) else list(states)
        episodes_a = [actions] if isinstance(actions, np.ndarray) else list(actions)
        sm, ss = moments(np.concatenate(episodes_s))
        predicted = [chunk_targets(s_, a_, config.chunk_size, config.relative_actions) for s_, a_ in zip(episodes_s, episodes_a)]
        am, as_ = moments(np.concatenate(predicted))
        processor = cls(config, {"state_mean": sm, "state_std": ss, "action_mean": am, "action_std": as_}, text_embedder)
        if config.target_anchor:
            processor.fit_anchor(episodes_s, episodes_a, targets or [None] * len(episodes_s))
        return processor

    def fit_anchor(self, states: Sequence[np.ndarray], actions: Sequence[np.ndarray], targets: Sequence[np.ndarray | None]) -> None:
        """Fit `anchor_mean` / `anchor_std` alone (fine-tuning keeps the other statistics)."""
        offsets = np.concatenate([np.zeros((0, 3))] + [anchored_offsets(self.config, s_, a_, t_)
                                                        for s_, a_, t_ in zip(states, actions, targets)])
        if not len(offsets):
            raise ValueError("target_anchor needs episodes with a manipulation target to fit its statistics; none has one")
        self.stats["anchor_mean"] = torch.as_tensor(offsets.mean(0), dtype=torch.float32)
        self.stats["anchor_std"] = torch.as_tensor(offsets.std(0), dtype=torch.float32).clamp(min=1e-3)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.stats.items()}, str(directory / PROCESSOR_NAME))

    @classmethod
    def load(cls, directory: Path, config: VLAConfig, text_embedder: TextEmbedder | None = None) -> VLAProcessor:
        return cls(config, load_file(str(directory / PROCESSOR_NAME)), text_embedder)

    # -- conversion -----------------------------------------------------------------------
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """(B, text_dim) embeddings, computed once per distinct instruction string."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            if self._embed is None:
                self._embed = default_text_embedder()
            with self._lock:
                vectors = self._embed(missing).float()
                if vectors.shape[-1] != self.config.text_dim:
                    raise ValueError(f"text embedder returned size {vectors.shape[-1]}, config.text_dim is {self.config.text_dim}")
                for text, vec in zip(missing, vectors):
                    self._text_cache[text] = vec
        return torch.stack([self._text_cache[t] for t in texts])

    def _stat(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """A statistic on `like`'s device (the processor is not a Module: training on a GPU moves batches, not it)."""
        stat = self.stats[name]
        return stat if stat.device == like.device else stat.to(like.device)

    def normalise_state(self, state: torch.Tensor) -> torch.Tensor:
        return (state - self._stat("state_mean", state)) / self._stat("state_std", state)

    def _frame(self, action: torch.Tensor, state: torch.Tensor | None, env: torch.Tensor | None
               ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """What the model's entries are relative to and normalised by: (anchor or None, mean, std),
        each (B, 1, A) for chunks (B, H, A), or (B, A) / (A,) as `action` is."""
        mean, std = self._stat("action_mean", action), self._stat("action_std", action)
        pairs = self.config.relative_actions
        if not pairs:
            return None, mean, std
        if state is None:
            raise ValueError("this policy predicts actions relative to the observed state: pass the raw state")
        state = torch.as_tensor(state, dtype=torch.float32, device=action.device)
        a_idx, s_idx = (list(x) for x in zip(*pairs))
        anchor = torch.zeros(*state.shape[:-1], action.shape[-1], dtype=state.dtype, device=state.device)
        anchor[..., a_idx] = state[..., s_idx]
        if self.config.target_anchor:
            if env is None:
                raise ValueError("this policy predicts the hand nearer the manipulation target from that target: pass "
                                 "the environment features (VLAProcessor.environment_features)")
            anchor, mean, std = self._target_frame(anchor, mean, std, env.to(action.device).reshape(-1, env.shape[-1]))
        if action.ndim == state.ndim + 1:  # a chunk per state: every step shares its frame
            anchor = anchor.unsqueeze(-2)
            if self.config.target_anchor:  # per-row statistics, shaped like the anchor
                mean, std = mean.unsqueeze(-2), std.unsqueeze(-2)
        return anchor, mean, std

    def _target_frame(self, anchor: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, env: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows with a valid target: the nearer hand's position entries anchored at the target and
        normalised by the anchor statistics."""
        e = self.config.env_state_dim
        rows = anchor.reshape(-1, anchor.shape[-1]).clone()
        mean = mean.expand_as(rows).clone()
        std = std.expand_as(rows).clone()
        valid = env[:, e - 4] > 0
        right = right_hand_nearer(env[:, e: e + 3], env[:, e + 3: e + 6])  # target - hand, from the features
        point = env[:, e - 3: e].to(rows.dtype)
        am, as_ = self._stat("anchor_mean", rows), self._stat("anchor_std", rows)
        for side, idx in ((False, list(self.config.hand_actions[0])), (True, list(self.config.hand_actions[1]))):
            sel = valid & (right == side)
            at = (sel.nonzero(as_tuple=True)[0][:, None], idx)
            rows[at], mean[at], std[at] = point[sel], am, as_
        return rows.reshape(anchor.shape), mean.reshape(anchor.shape), std.reshape(anchor.shape)

    def normalise_action(self, action: torch.Tensor, state: torch.Tensor | None = None, env: torch.Tensor | None = None) -> torch.Tensor:
        """World actions (…, A) → the model's normalised targets; `state` is the raw state the chunk
        starts from, `env` its environment features (read with `target_anchor`)."""
        anchor, mean, std = self._frame(action, state, env)
        if anchor is not None:
            action = action - anchor
        return (action - mean) / std

    def unnormalise_action(self, action: torch.Tensor, state: torch.Tensor | None = None, env: torch.Tensor | None = None) -> torch.Tensor:
        """The model's output → world actions, relative entries anchored at the raw `state` (and,
        with `target_anchor`, the target in `env`)."""
        anchor, mean, std = self._frame(action, state, env)
        out = action * std + mean
        return out if anchor is None else out + anchor

    def images(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """(B, n_cameras, 3, H, W) float images in [0, 1] at the configured size.

        Accepts uint8 HxWx3 (one frame, as the world gives) or BxHxWx3, or float BxCxHxW.
        uint8 frames are resized as uint8 (bilinear, antialiased), float images as float.
        """
        out = []
        h, w = self.config.image_size
        for key in self.config.image_keys:
            if key not in batch:
                raise ObservationError(f"observation has no {key!r}; this policy reads {list(self.config.image_keys)} and {STATE_KEY!r}")
            x = torch.as_tensor(np.asarray(batch[key])) if not isinstance(batch[key], torch.Tensor) else batch[key]
            if x.ndim == 3:
                x = x.unsqueeze(0)
            if x.ndim != 4 or (x.shape[-1] != 3 and x.shape[1] != 3):
                raise ObservationError(f"{key} has shape {tuple(x.shape)}; expected HxWx3 or BxHxWx3 uint8 (or Bx3xHxW float)")
            if x.shape[-1] == 3 and x.shape[1] != 3:
                x = x.permute(0, 3, 1, 2)
            if x.dtype == torch.uint8 and x.shape[-2:] != (h, w):
                # resize uint8 frames in channels-last layout, PyTorch's vectorised antialiased path:
                # ~25x faster on CPU than resizing float images, within one grey level of it
                x = F.interpolate(x.contiguous(memory_format=torch.channels_last), size=(h, w), mode="bilinear",
                                  align_corners=False, antialias=True)
            out.append(x.float() / 255.0 if x.dtype == torch.uint8 else x.float())
        if len({x.shape for x in out}) == 1:  # same-sized cameras: one resize call for all (same result, less overhead)
            if out[0].shape[-2:] == (h, w):
                return torch.stack(out, dim=1)
            b = out[0].shape[0]
            x = F.interpolate(torch.cat(out), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
            return x.reshape(len(out), b, *x.shape[1:]).transpose(0, 1)
        out = [x if x.shape[-2:] == (h, w) else F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True) for x in out]
        return torch.stack(out, dim=1)

    def state(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """(B, state_dim) normalised proprioception."""
        return self.normalise_state(self.raw_state(batch))

    def raw_state(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """(B, state_dim) proprioception in world units, checked."""
        if STATE_KEY not in batch:
            raise ObservationError(f"observation has no {STATE_KEY!r} (proprioception)")
        x = torch.as_tensor(np.asarray(batch[STATE_KEY]), dtype=torch.float32) if not isinstance(batch[STATE_KEY], torch.Tensor) else batch[STATE_KEY].float()
        if x.ndim == 1:
            x = x.unsqueeze(0)
        if x.shape[-1] != self.config.state_dim:
            raise ObservationError(f"{STATE_KEY} has {x.shape[-1]} values; this policy was built for {self.config.state_dim}")
        return x

    def environment_state(self, batch: Mapping[str, Any], batch_size: int) -> torch.Tensor | None:
        """(B, env_state_dim) navigation goal as given (metres and unit vectors: already of order 1),
        None if this policy reads none. Absent means no goal: zeros, as every skill but
        navigate_to is trained with."""
        dim = self.config.env_state_dim
        if not dim:
            return None
        if ENV_KEY not in batch:
            return torch.zeros(batch_size, dim)
        x = batch[ENV_KEY]
        x = x.float() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=torch.float32)
        if x.ndim == 1:
            x = x.unsqueeze(0)
        if x.shape != (batch_size, dim):
            raise ObservationError(f"{ENV_KEY} has shape {tuple(x.shape)}; this policy reads ({batch_size}, {dim}) "
                                   "(see policy.navigation_goal)")
        return x

    def environment_features(self, env: torch.Tensor, raw_state: torch.Tensor) -> torch.Tensor:
        """(B, env_input_dim): the environment state, then with `target_hand_state` the target's
        offset from each hand (zero where no target is valid)."""
        idx = self.config.target_hand_state
        if not idx:
            return env
        valid, point = env[:, -4:-3], env[:, -3:]  # the target is the environment state's last four entries
        hands = raw_state[:, list(idx)].to(env.dtype)
        return torch.cat([env, valid * (point - hands[:, :3]), valid * (point - hands[:, 3:])], dim=1)

    def has_target(self, features: torch.Tensor) -> torch.Tensor:
        """(B,) bool: which rows of `environment_features` carry a valid manipulation target."""
        return features[:, self.config.env_state_dim - 4] > 0

    def tasks(self, batch: Mapping[str, Any], batch_size: int) -> torch.Tensor:
        task = batch.get(TASK_KEY)
        if task is None or (isinstance(task, str) and not task.strip()):
            raise ObservationError(f"observation has no {TASK_KEY!r}: the policy needs the instruction it is conditioned on")
        texts = [task] * batch_size if isinstance(task, str) else list(task)
        if len(texts) != batch_size:
            raise ObservationError(f"{len(texts)} task strings for a batch of {batch_size}")
        return self.embed_text(texts)
