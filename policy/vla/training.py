"""Behaviour cloning of the VLA on action chunks: resumable, seeded, logged as JSON lines.

The loop follows what LeRobot's ACT training does, sized for a CPU: AdamW with linear
warm-up then cosine decay, EMA weights (torch's AveragedModel) used for validation and
the saved checkpoint, random-shift and brightness augmentation, a validation split by
episode (so validation frames never come from a training episode). Every `save_every`
steps the full state (weights, EMA, optimiser, scheduler, RNG, step) is written, and a
restarted run continues from it — a session may stop at any time.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, Subset, WeightedRandomSampler

from policy.vla.configuration_vla import VLAConfig
from policy.vla.modeling_vla import VLAPolicy
from policy.vla.processor_vla import VLAProcessor

log = structlog.get_logger(__name__)
CHECKPOINT = "training_state.pt"


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(20_000, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(500, ge=0)
    ema_decay: float = Field(0.995, ge=0.0, lt=1.0)
    val_fraction: float = Field(0.1, ge=0.0, lt=0.9)
    val_batches: int = Field(8, ge=1)
    seed: int = 0
    log_every: int = Field(50, ge=1)
    eval_every: int = Field(1000, ge=1)
    save_every: int = Field(500, ge=1)
    augment_shift: int = Field(4, ge=0, description="pixels of random shift (pad + crop)")
    augment_brightness: float = Field(0.15, ge=0.0, le=0.5)
    state_noise: float = Field(0.0, ge=0.0, le=2.0, description="std of Gaussian noise added to the normalised "
                               "observation.state the model reads (targets stay anchored at the clean state): a policy "
                               "that cannot read its phase off the hand pose has to look for it in the images")
    image_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="share of the samples with a manipulation target "
                                 "whose cameras are blanked, so the model learns to reach for the target it is told "
                                 "rather than only for what the expert's own poses look like")
    env_lr_scale: float = Field(1.0, gt=0.0, le=100.0, description="learning-rate multiplier for the environment-state "
                                "input layer: inputs added to a trained policy start at zero weight and grow slowly "
                                "at the rate that fine-tunes the rest")
    grad_clip: float = Field(10.0, gt=0)
    num_workers: int = Field(0, ge=0)
    device: str = "auto"
    deterministic: bool = Field(True, description="on a GPU, deterministic cuDNN/cuBLAS kernels, so a seed gives the same weights (some speed)")
    skill_weights: dict[str, float] = Field(
        default_factory=dict,
        description="sampling weight per skill (default 1): a skill with weight 3 has its frames drawn three times as often; "
        "with any weight set, batches are drawn with replacement",
    )
    episode_weights: dict[str, float] = Field(
        default_factory=dict,
        description="sampling weight per collection flag (offset, carrying, from_start, perturbed): frames of episodes "
        "recorded with the flag are drawn that many times as often, on top of their skill's weight",
    )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def episode_indices(dataset: Dataset) -> np.ndarray:
    """The episode of every sample: `dataset.episode_indices`, or derived from a
    DemonstrationDataset's `items` and `episodes`; one episode per sample as a last resort."""
    if hasattr(dataset, "episode_indices"):
        return np.asarray(dataset.episode_indices)
    if hasattr(dataset, "items") and hasattr(dataset, "episodes"):
        return np.asarray([dataset.episodes[e]["episode_index"] for e, _ in dataset.items])
    return np.arange(len(dataset))  # type: ignore[arg-type]


def sample_skills(dataset: Dataset) -> list[str] | None:
    """The skill of every sample of a DemonstrationDataset (None for datasets without skills)."""
    if hasattr(dataset, "items") and hasattr(dataset, "episodes"):
        return [dataset.episodes[e]["skill"] for e, _ in dataset.items]
    return None


EPISODE_FLAGS = ("offset", "carrying", "arm_offset", "from_start", "perturbed", "learned_setup", "recovery", "takeover")  # episode metadata that `episode_weights` can name


def skill_sampler(train_set: Subset, weights: Mapping[str, float], seed: int,
                  episode_weights: Mapping[str, float] | None = None) -> WeightedRandomSampler | None:
    """Draws each training sample in proportion to its skill's weight times the weights of the
    collection flags its episode was recorded with; None when no weight is set.

    A few hundred episodes of a rare start state (`collect --offset`) are a few per cent of a
    skill's frames: weighting them is how a fine-tune sees them often enough."""
    episode_weights = episode_weights or {}
    if not weights and not episode_weights:
        return None
    skills = sample_skills(train_set.dataset)
    if skills is None:
        raise ValueError("skill_weights needs a dataset that knows each sample's skill (a DemonstrationDataset)")
    unknown = set(weights) - set(skills)
    if unknown:
        raise ValueError(f"skill_weights names {sorted(unknown)}, which the dataset has no frames of (it has {sorted(set(skills))})")
    bad = set(episode_weights) - set(EPISODE_FLAGS)
    if bad:
        raise ValueError(f"episode_weights names {sorted(bad)}; the flags are {', '.join(EPISODE_FLAGS)}")
    data = train_set.dataset
    kept = {data.items[i][0] for i in train_set.indices}  # the training split's episodes
    for flag in episode_weights:
        if not any(data.episodes[e].get(flag) for e in kept):
            raise ValueError(f"episode_weights names {flag!r}, but no training episode was recorded with it")
    factor = [math.prod(w for flag, w in episode_weights.items() if ep.get(flag)) for ep in data.episodes]
    w = torch.tensor([float(weights.get(skills[i], 1.0)) * factor[data.items[i][0]] for i in train_set.indices],
                     dtype=torch.double)
    return WeightedRandomSampler(w, num_samples=len(train_set), replacement=True, generator=torch.Generator().manual_seed(seed))


def split_by_episode(dataset: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    """Train/validation subsets whose episodes do not overlap.

    Uses `dataset.episode_indices` (one episode number per sample) when the dataset has it.
    """
    episodes = episode_indices(dataset)
    unique = np.unique(episodes)
    rng = np.random.default_rng(seed)
    n_val = int(round(len(unique) * fraction)) if fraction > 0 else 0
    if fraction > 0 and len(unique) > 1:
        n_val = max(1, min(n_val, len(unique) - 1))
    val_eps = set(rng.choice(unique, size=n_val, replace=False).tolist()) if n_val else set()
    is_val = np.array([e in val_eps for e in episodes])
    return Subset(dataset, np.flatnonzero(~is_val).tolist()), Subset(dataset, np.flatnonzero(is_val).tolist())


def augment(batch: dict[str, Any], image_keys: tuple[str, ...], shift: int, brightness: float, gen: torch.Generator) -> dict[str, Any]:
    """Random shift (replicate-pad, random crop) and brightness jitter, per sample and camera.

    The draws come from `gen` on the CPU, so a seed gives the same augmentation on any device;
    the crop is one gather on the images' own device (a GPU run augments on the GPU)."""
    out = dict(batch)
    for key in image_keys:
        x = torch.as_tensor(batch[key])
        channels_last = x.shape[-1] == 3
        if channels_last:
            x = x.permute(0, 3, 1, 2)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        b, c, h, w = x.shape
        if shift > 0:
            padded = torch.nn.functional.pad(x, (shift,) * 4, mode="replicate")
            dx = torch.randint(0, 2 * shift + 1, (b,), generator=gen).to(x.device)
            dy = torch.randint(0, 2 * shift + 1, (b,), generator=gen).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            x = padded[torch.arange(b, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
        if brightness > 0:
            scale = 1.0 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * brightness
            x = (x * scale.to(x.device)).clamp(0, 1)
        out[key] = x
    return out


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = values if isinstance(values[0], str) else torch.stack([torch.as_tensor(v) for v in values])
    return out


def _lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _deterministic_cuda() -> None:
    """GPU kernels that give the same result every run: without this, atomics in cuDNN's
    backward passes make two runs of one seed drift apart."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for determinism
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def widen_env_input(weights: Mapping[str, torch.Tensor], env_input_dim: int) -> dict[str, torch.Tensor]:
    """`weights` with the environment-state input layer given zero columns up to `env_input_dim`,
    so a policy that read the navigation goal alone acts exactly as before on the wider input."""
    out = dict(weights)
    w = out.get("env.0.weight")
    if w is not None and w.shape[1] < env_input_dim:
        out["env.0.weight"] = torch.cat([w, w.new_zeros(w.shape[0], env_input_dim - w.shape[1])], dim=1)
    return out


def train(
    dataset: Dataset,
    out_dir: Path,
    vla_config: VLAConfig,
    train_config: TrainConfig,
    processor: VLAProcessor,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    init_weights: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Train (or resume) and return the folder of the EMA policy saved with `save_pretrained`.

    `init_weights` (a model state dict) starts a fine-tuning run from a trained policy instead
    of a fresh initialisation; a resumed run's saved state takes precedence over it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = train_config
    device = resolve_device(cfg.device)
    _seed_everything(cfg.seed)
    if device.type == "cuda" and cfg.deterministic:
        _deterministic_cuda()
    policy = VLAPolicy(vla_config, processor)
    if hasattr(dataset, "env_state_dim"):
        dataset.env_state_dim = vla_config.env_state_dim  # the entries this model reads (see policy.dataset)
    if init_weights is not None:
        # A policy fine-tuned to read the navigation goal starts with its goal layers new (zero output);
        # one that gains the manipulation target starts with zero weights on the new inputs.
        init_weights = widen_env_input(init_weights, vla_config.env_input_dim)
        missing, unexpected = policy.model.load_state_dict(init_weights, strict=False)
        if unexpected or any(not k.startswith("env.") for k in missing):
            raise ValueError(f"init weights do not fit this model: missing {missing}, unexpected {unexpected}")
    policy = policy.to(device)
    ema = AveragedModel(policy.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay))
    env_in = [p for n, p in policy.model.named_parameters() if n.startswith("env.0.")]
    rest = [p for n, p in policy.model.named_parameters() if not n.startswith("env.0.")]
    groups = [{"params": rest}] + ([{"params": env_in, "lr": cfg.lr * cfg.env_lr_scale}] if env_in else [])
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    state_path = out_dir / CHECKPOINT
    if state_path.exists():
        # on the CPU: the RNG states must stay CPU tensors; load_state_dict moves the rest to the model's device
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        policy.model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
        log.info("train.resumed", step=step, path=str(state_path))
    (out_dir / "train_config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n")
    train_set, val_set = split_by_episode(dataset, cfg.val_fraction, cfg.seed)
    if len(train_set) == 0:
        raise ValueError("the training split is empty: the dataset needs at least one episode")
    sampler = skill_sampler(train_set, cfg.skill_weights, cfg.seed + step, cfg.episode_weights)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=len(train_set) >= cfg.batch_size, collate_fn=_collate, num_workers=cfg.num_workers,
                        generator=torch.Generator().manual_seed(cfg.seed + step) if sampler is None else None)
    metrics_path = out_dir / "metrics.jsonl"
    t0, seen = time.perf_counter(), 0
    policy.train()
    while step < cfg.steps:
        for batch in loader:
            if step >= cfg.steps:
                break
            batch = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
            batch = augment(batch, vla_config.image_keys, cfg.augment_shift, cfg.augment_brightness, gen)
            loss, info = policy(batch, state_noise=cfg.state_noise, generator=gen, image_dropout=cfg.image_dropout)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad = float(torch.nn.utils.clip_grad_norm_(policy.model.parameters(), cfg.grad_clip))
            opt.step()
            sched.step()
            ema.update_parameters(policy.model)
            step += 1
            seen += len(batch[vla_config.image_keys[0]])
            record: dict[str, float] = {}
            if step % cfg.log_every == 0 or step == cfg.steps:
                elapsed = time.perf_counter() - t0
                record = {"step": step, "loss": info["l1"], "lr": sched.get_last_lr()[0], "grad_norm": grad,
                          "samples_per_s": seen / elapsed if elapsed > 0 else 0.0}
            if len(val_set) and (step % cfg.eval_every == 0 or step == cfg.steps):
                record = {**record, "step": step, "val_l1": validate(policy, ema, val_set, cfg)}
            if record:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
            if on_step is not None:
                on_step(step, record)
            if step % cfg.save_every == 0 or step == cfg.steps:
                _save_state(state_path, policy, ema, opt, sched, gen, step)
    final = out_dir / "pretrained"
    export = VLAPolicy(vla_config, processor)
    export.model.load_state_dict(ema.module.state_dict())
    export.save_pretrained(final)
    return final


@torch.no_grad()
def validate(policy: VLAPolicy, ema: AveragedModel, val_set: Dataset, cfg: TrainConfig) -> float:
    """Mean L1 of the EMA weights on the validation episodes (no augmentation)."""
    live = {k: v.clone() for k, v in policy.model.state_dict().items()}
    policy.model.load_state_dict(ema.module.state_dict())
    policy.eval()
    losses = []
    loader = DataLoader(val_set, batch_size=cfg.batch_size, shuffle=False, collate_fn=_collate)
    for i, batch in enumerate(loader):
        if i >= cfg.val_batches:
            break
        loss, _ = policy(batch)  # _inputs moves the batch to the model's device
        losses.append(float(loss))
    policy.model.load_state_dict(live)
    policy.train()
    return float(np.mean(losses)) if losses else float("nan")


def _save_state(path: Path, policy: VLAPolicy, ema: AveragedModel, opt, sched, gen: torch.Generator, step: int) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({
        "model": policy.model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "step": step,
    }, tmp)
    tmp.replace(path)  # atomic: a stop mid-write never corrupts the last good state


def stats_from(dataset: Mapping[str, np.ndarray] | Any) -> tuple[np.ndarray, np.ndarray]:
    """(states, actions) arrays for fitting normalisation, from a dataset exposing them."""
    return np.asarray(dataset.states), np.asarray(dataset.actions)
