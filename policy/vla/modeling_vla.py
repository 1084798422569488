"""The VLA policy: instruction-conditioned image encoder, a small transformer, an action-chunk head.

Shape of the model (ACT-like, sized for a CPU):

- the instruction is embedded once by the frozen MiniLM encoder (cached per string);
- each camera image goes through the same CNN whose every stage is FiLM-modulated by the
  instruction, so what the network attends to depends on the words (DESIGN.md: the data
  makes the instruction decide the outcome, and the architecture lets it);
- the last feature map is pooled to a small grid of tokens per camera, plus a state token
  and an instruction token, plus H learned action queries;
- a transformer encoder mixes them; the query outputs are the normalised action chunk.

LeRobot's method names: `reset`, `select_action`, `predict_action_chunk`, `forward` (the
training loss), `save_pretrained` / `from_pretrained`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from policy.vla.configuration_vla import VLAConfig
from policy.vla.processor_vla import TextEmbedder, VLAProcessor

WEIGHTS_NAME = "model.safetensors"


class FiLMBlock(nn.Module):
    """Conv (stride 2) → GroupNorm → FiLM(instruction) → ReLU."""

    def __init__(self, c_in: int, c_out: int, text_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.norm = nn.GroupNorm(min(8, c_out), c_out)
        self.film = nn.Linear(text_dim, 2 * c_out)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(text).chunk(2, dim=-1)
        x = self.norm(self.conv(x))
        return torch.relu(x * (1 + gamma[..., None, None]) + beta[..., None, None])


class ImageEncoder(nn.Module):
    """Instruction-conditioned CNN shared by all cameras; outputs a grid of tokens."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        chans = (3, *config.channels)
        self.blocks = nn.ModuleList(FiLMBlock(a, b, config.text_dim) for a, b in zip(chans[:-1], chans[1:]))
        self.pool = nn.AdaptiveAvgPool2d(config.grid)
        self.proj = nn.Linear(config.channels[-1], config.d_model)

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """images (B, N, 3, H, W), text (B, T) → tokens (B, N * gh * gw, d)."""
        b, n = images.shape[:2]
        x = images.flatten(0, 1)
        t = text.repeat_interleave(n, dim=0)
        for block in self.blocks:
            x = block(x, t)
        x = self.pool(x).flatten(2).transpose(1, 2)  # (B*N, cells, C)
        return self.proj(x).reshape(b, -1, self.proj.out_features)


class VLAModel(nn.Module):
    """Normalised tensors in, a normalised action chunk out."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        cells = config.grid[0] * config.grid[1]
        self.images = ImageEncoder(config)
        self.camera_pos = nn.Parameter(torch.zeros(len(config.image_keys) * cells, d))
        self.text = nn.Linear(config.text_dim, d)
        self.state = nn.Sequential(nn.Linear(config.state_dim, d), nn.GELU(), nn.Linear(d, d))
        # The navigation goal joins the proprioception token. Its last layer starts at zero, so a
        # policy fine-tuned from one without it starts out acting exactly as that one did.
        self.env = None
        if config.env_state_dim:
            self.env = nn.Sequential(nn.Linear(config.env_input_dim, d), nn.GELU(), nn.Linear(d, d))
            nn.init.zeros_(self.env[2].weight)
            nn.init.zeros_(self.env[2].bias)
        self.queries = nn.Parameter(torch.zeros(config.chunk_size, d))
        self.type_embed = nn.Parameter(torch.zeros(4, d))  # image, text, state, query
        layer = nn.TransformerEncoderLayer(
            d, config.n_heads, config.dim_feedforward, config.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.action_dim)
        for p in (self.camera_pos, self.queries, self.type_embed):
            nn.init.normal_(p, std=0.02)

    def forward(self, images: torch.Tensor, state: torch.Tensor, text: torch.Tensor, env: torch.Tensor | None = None) -> torch.Tensor:
        b = images.shape[0]
        img = self.images(images, text) + self.camera_pos + self.type_embed[0]
        txt = (self.text(text) + self.type_embed[1]).unsqueeze(1)
        st = self.state(state) + self.type_embed[2]
        if self.env is not None:
            st = st + self.env(env if env is not None else state.new_zeros(b, self.config.env_input_dim))
        st = st.unsqueeze(1)
        q = (self.queries + self.type_embed[3]).unsqueeze(0).expand(b, -1, -1)
        tokens = torch.cat([img, txt, st, q], dim=1)
        out = self.norm(self.transformer(tokens))
        return self.head(out[:, -self.config.chunk_size :])


class VLAPolicy(nn.Module):
    """The policy the skill leaves run: LeRobot's interface over `VLAModel` and its processor."""

    name = "vla"

    def __init__(self, config: VLAConfig, processor: VLAProcessor | None = None) -> None:
        super().__init__()
        self.config = config
        self.processor = processor or VLAProcessor(config)
        self.model = VLAModel(config)
        self._queue: deque[np.ndarray] = deque()

    # -- LeRobot policy interface ----------------------------------------------------------
    def reset(self) -> None:
        """Forget queued actions (call at the start of every subtask)."""
        self._queue.clear()

    def _inputs(self, obs: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Model inputs (images, normalised state, text), the raw state relative actions are
        anchored at and the environment state (None if the policy reads none), all on the model's
        device (observations arrive on the CPU, as the world gives them)."""
        device = next(self.model.parameters()).device
        images = self.processor.images(obs).to(device, non_blocking=True)
        raw = self.processor.raw_state(obs).to(device, non_blocking=True)
        if images.shape[0] != raw.shape[0]:
            raise ValueError(f"batch sizes differ: images {images.shape[0]}, state {raw.shape[0]}")
        text = self.processor.tasks(obs, raw.shape[0]).to(device, non_blocking=True)
        env = self.processor.environment_state(obs, raw.shape[0])
        env = self.processor.environment_features(env, raw).to(device, non_blocking=True) if env is not None else None
        return images, self.processor.normalise_state(raw), text, raw, env

    @torch.inference_mode()
    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        """(H, action_dim) for one observation, or (B, H, action_dim) for a batch; world units."""
        was_training = self.training
        self.eval()
        try:
            images, state, text, raw, env = self._inputs(obs)
            chunk = self.processor.unnormalise_action(self.model(images, state, text, env), raw, env).cpu().numpy()
        finally:
            self.train(was_training)
        single = np.asarray(obs[self.processor.config.image_keys[0]]).ndim == 3
        return chunk[0] if single else chunk

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        """The next action; a new chunk is predicted every `n_action_steps` calls."""
        if not self._queue:
            chunk = self.predict_action_chunk(obs)
            self._queue.extend(chunk[: self.config.n_action_steps])
        return self._queue.popleft().astype(np.float32)

    def forward(self, batch: Mapping[str, Any], state_noise: float = 0.0,
                generator: torch.Generator | None = None, image_dropout: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss: L1 on the normalised chunk, ignoring padded steps past an episode's end.

        `state_noise` blurs the normalised state the model reads, not the state relative
        actions are anchored at: the hand pose alone then cannot tell which phase a skill is in
        (the copycat shortcut of behaviour cloning), the cameras must.
        `image_dropout` blanks every camera of that share of the samples that have a
        manipulation target: on the expert's own poses the images predict the reach as well as
        the target does, so without it the model never learns to read the target it needs
        off them (modality dropout)."""
        images, state, text, raw, env = self._inputs(batch)
        if state_noise > 0:
            noise = torch.randn(state.shape, generator=generator) * state_noise  # drawn on the CPU: a seed repeats on any device
            state = state + noise.to(state.device)
        if image_dropout > 0:
            if env is None or not self.config.target_hand_state:
                raise ValueError("image_dropout blanks the cameras of samples with a manipulation target: this policy reads none")
            drop = (torch.rand(images.shape[0], generator=generator) < image_dropout).to(images.device) & self.processor.has_target(env)
            images = images * (~drop).to(images.dtype).view(-1, *([1] * (images.dim() - 1)))
        target = self.processor.normalise_action(torch.as_tensor(batch["action"], dtype=torch.float32, device=raw.device), raw, env)
        if target.shape[1:] != (self.config.chunk_size, self.config.action_dim):
            raise ValueError(f"action has shape {tuple(target.shape)}; expected (B, {self.config.chunk_size}, {self.config.action_dim})")
        pad = batch.get("action_is_pad")
        valid = (torch.ones(target.shape[:2], dtype=torch.bool, device=target.device) if pad is None
                 else ~torch.as_tensor(pad, dtype=torch.bool, device=target.device))
        pred = self.model(images, state, text, env)
        err = (pred - target).abs().mean(-1)
        loss = (err * valid).sum() / valid.sum().clamp(min=1)
        return loss, {"l1": float(loss.detach())}

    # -- persistence ---------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        self.config.save(directory)
        self.processor.save(directory)
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(directory / WEIGHTS_NAME))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, text_embedder: TextEmbedder | None = None) -> VLAPolicy:
        directory = Path(directory)
        if not (directory / WEIGHTS_NAME).exists():
            raise FileNotFoundError(f"no {WEIGHTS_NAME} in {directory}: not a saved VLA checkpoint")
        config = VLAConfig.load(directory)
        policy = cls(config, VLAProcessor.load(directory, config, text_embedder))
        policy.model.load_state_dict(load_file(str(directory / WEIGHTS_NAME)))
        policy.eval()
        return policy

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())
