"""`vla-agent train`: behaviour cloning of the VLA on a recorded dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from agent.exit_codes import ExitCode

from agent.console import console, err_console


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        dataset: Annotated[Path, typer.Option("--dataset", help="A dataset folder written by `vla-agent collect`.")],
        out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, metrics.jsonl, pretrained/.")],
        steps: Annotated[int, typer.Option(help="Optimiser steps in all (a resumed run continues to this).")] = 20_000,
        batch_size: Annotated[int, typer.Option(help="Samples per step.")] = 64,
        lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up then cosine).")] = 3e-4,
        image_size: Annotated[str, typer.Option(help="HxW the model sees.")] = "64x80",
        chunk_size: Annotated[int, typer.Option(help="Actions predicted per chunk.")] = 20,
        seed: Annotated[int, typer.Option(help="Seed of initialisation, shuffling and augmentation.")] = 0,
        device: Annotated[str, typer.Option(help="auto (a GPU when there is one), cpu or cuda.")] = "auto",
        threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
        actions: Annotated[str, typer.Option(help="relative: hand position and head targets are predicted as offsets "
                                             "from the observed hand pose and head angles (what ships); absolute: as recorded.")] = "relative",
        init_from: Annotated[Path | None, typer.Option("--init-from", help="Fine-tune a trained policy folder (e.g. "
                                                       "policy/checkpoints/default) instead of starting from scratch: its "
                                                       "weights, normaliser and config (image size, chunk, actions) are kept.")] = None,
        skill_weight: Annotated[list[str] | None, typer.Option("--skill-weight", help="SKILL=W: draw that skill's frames W times "
                                                                "as often (repeat for several), e.g. navigate_to=3.")] = None,
        episode_weight: Annotated[list[str] | None, typer.Option("--episode-weight", help="FLAG=W: draw the frames of "
                                                                  "episodes collected with that flag (offset, carrying, arm_offset, "
                                                                  "from_start, perturbed, learned_setup, recovery) W times "
                                                                  "as often, on top of "
                                                                  "--skill-weight, e.g. offset=6.")] = None,
        navigation_goal: Annotated[bool, typer.Option(help="Condition navigate_to on its goal (observation.environment_state: "
                                                     "the approach pose and the next route point, see policy.navigation_goal). "
                                                     "With --init-from, adds it to a policy that lacks it.")] = True,
        image_dropout: Annotated[float, typer.Option("--image-dropout", min=0.0, max=0.95, help="Share of the samples with a "
                                                     "manipulation target whose cameras are blanked while training, so "
                                                     "the model learns to read the target (modality dropout), e.g. 0.5.")] = 0.0,
        env_lr_scale: Annotated[float, typer.Option("--env-lr-scale", min=0.01, max=100.0, help="Learning-rate multiplier "
                                                    "for the environment-state input layer (new inputs of a fine-tuned "
                                                    "policy start at zero weight), e.g. 10.")] = 1.0,
        manipulation_target: Annotated[bool | None, typer.Option(help="Condition pick, handover, place and place_in on the point "
                                                         "they act on (the object, the palm, the spot; after the goal in "
                                                         "observation.environment_state, see policy.manipulation_target). "
                                                         "Needs episodes that kept it (`target` in episodes.jsonl: "
                                                         "recorded since session 11, or `vla-agent collect-targets`). "
                                                         "With --init-from, adds it to a policy that lacks it. "
                                                         "Default: on when the dataset has such episodes.")] = None,
        target_anchor: Annotated[bool, typer.Option("--target-anchor", help="While a manipulation target is given, "
                                                    "predict the nearer hand's position as an offset from the target "
                                                    "(the object, the palm, the spot) rather than from the hand, so the "
                                                    "reach follows the target by construction (VLAConfig.target_anchor). "
                                                    "Needs --manipulation-target; with --init-from, adds it.")] = False,
        state_noise: Annotated[float, typer.Option("--state-noise", min=0.0, max=2.0, help="Std of Gaussian noise on the "
                                                   "normalised observation.state the model reads while training (0: none), "
                                                   "so that it reads a skill's phase from the cameras rather than the hand "
                                                   "pose, e.g. 0.2.")] = 0.0,
    ) -> None:
        """Train the VLA on action chunks; re-running the same command resumes where it stopped.

        Writes OUT/metrics.jsonl (loss, learning rate, samples/s, validation L1), OUT/training_state.pt
        (resumable) and OUT/pretrained/ (EMA weights, config and normaliser: `VLAPolicy.from_pretrained`).
        """
        import torch

        from policy.dataset import DemonstrationDataset
        from policy.navigation_goal import ENV_DIM, GOAL_DIM
        from policy.vla import VLAConfig, VLAProcessor
        from policy.vla.processor_vla import relative_action_pairs
        from policy.vla.training import EPISODE_FLAGS, sample_skills

        try:
            h, w = (int(v) for v in image_size.lower().split("x"))
        except ValueError:
            err_console.print(f"[bold red]error:[/] --image-size takes HxW, e.g. 64x80, got {image_size!r}")
            raise typer.Exit(int(ExitCode.BAD_INPUT)) from None
        if not (16 <= h <= 480 and 16 <= w <= 640) or steps < 1 or batch_size < 1 or chunk_size < 1:
            err_console.print("[bold red]error:[/] sizes must be positive (images 16..480 x 16..640)")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        if actions not in ("relative", "absolute"):
            err_console.print(f"[bold red]error:[/] --actions is relative or absolute, got {actions!r}")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        weights = _weights(skill_weight, "--skill-weight", "SKILL=W", "navigate_to=3")
        flags = _weights(episode_weight, "--episode-weight", "FLAG=W", "offset=6")
        if set(flags) - set(EPISODE_FLAGS):
            err_console.print(f"[bold red]error:[/] --episode-weight names {', '.join(sorted(set(flags) - set(EPISODE_FLAGS)))}; "
                              f"the flags are {', '.join(EPISODE_FLAGS)}")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        torch.set_num_threads(max(1, threads))
        try:
            data = DemonstrationDataset(dataset, chunk_size=chunk_size, image_size=(h, w))
        except FileNotFoundError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(int(ExitCode.BAD_INPUT)) from None
        if len(data) == 0:
            err_console.print(f"[bold red]error:[/] {dataset} has no successful episodes to learn from")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        have = set(sample_skills(data))
        if set(weights) - have:
            err_console.print(f"[bold red]error:[/] --skill-weight names {', '.join(sorted(set(weights) - have))}; "
                              f"{dataset} has frames of {', '.join(sorted(have))}")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        kept = {e for e, _ in data.items}  # episodes that training reads (not failed, not superseded)
        absent = [f for f in flags if not any(data.episodes[e].get(f) for e in kept)]
        if absent:
            err_console.print(f"[bold red]error:[/] --episode-weight names {', '.join(absent)}, but no episode of {dataset} "
                              "was collected with it")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        if manipulation_target is None:
            manipulation_target = navigation_goal and bool(data.targets)
        if manipulation_target and not navigation_goal:
            err_console.print("[bold red]error:[/] --manipulation-target follows the navigation goal in "
                              "observation.environment_state; use it with --navigation-goal")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        if manipulation_target and not data.targets:
            err_console.print(f"[bold red]error:[/] no episode of {dataset} kept its manipulation target; record them "
                              f"again, run `vla-agent collect-targets --dataset {dataset}`, or train with "
                              "--no-manipulation-target")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        features = data.info["features"]
        if image_dropout > 0 and not manipulation_target:
            err_console.print("[bold red]error:[/] --image-dropout blanks the cameras of samples with a manipulation target; "
                              "it needs --manipulation-target")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        if target_anchor and not manipulation_target:
            err_console.print("[bold red]error:[/] --target-anchor predicts a hand from the manipulation target; it needs "
                              "--manipulation-target")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        tcfg = _train_config(steps, batch_size, lr, seed, device, weights, flags, state_noise, image_dropout, env_lr_scale)
        env_dim = ENV_DIM if manipulation_target else GOAL_DIM if navigation_goal else 0
        if init_from is not None:
            _fine_tune(data, dataset, out, init_from, tcfg, env_dim, target_anchor)
            return
        pairs = ()
        if actions == "relative":
            pairs = relative_action_pairs(features["action"].get("names") or [], features["observation.state"].get("names") or [])
            if not pairs:
                err_console.print("[bold red]error:[/] --actions relative needs named hand-position actions and ee states "
                                  "in meta/info.json; this dataset has none (use --actions absolute)")
                raise typer.Exit(int(ExitCode.BAD_INPUT))
        config = VLAConfig(
            image_keys=tuple(f"observation.images.{c}" for c in data.cameras), image_size=(h, w),
            state_dim=data.state[0].shape[1], action_dim=data.action[0].shape[1], chunk_size=chunk_size,
            n_action_steps=min(10, chunk_size), relative_actions=pairs, env_state_dim=env_dim,
            target_hand_state=_hands(data) if env_dim == ENV_DIM else (), target_anchor=target_anchor,
        )
        processor = VLAProcessor.fit(config, data.state, data.action, targets=_episode_targets(data))
        _run(data, out, config, tcfg, processor)


def _weights(specs: list[str] | None, option: str, form: str, example: str) -> dict[str, float]:
    """NAME=W pairs from the command line, W > 0; a bad one exits with BAD_INPUT naming it."""
    weights: dict[str, float] = {}
    for spec in specs or []:
        name, _, value = spec.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        weights[name.strip()] = weight
        if not name.strip() or not weight > 0:
            err_console.print(f"[bold red]error:[/] {option} takes {form} with W > 0, e.g. {example}; got {spec!r}")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
    return weights


def _train_config(steps: int, batch_size: int, lr: float, seed: int, device: str, weights: dict[str, float] | None = None,
                  flags: dict[str, float] | None = None, state_noise: float = 0.0, image_dropout: float = 0.0,
                  env_lr_scale: float = 1.0):
    from policy.vla.training import TrainConfig

    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device, skill_weights=weights or {},
                       episode_weights=flags or {}, state_noise=state_noise, image_dropout=image_dropout,
                       env_lr_scale=env_lr_scale,
                       warmup_steps=min(500, steps // 10), eval_every=max(1, min(1000, steps // 5)),
                       save_every=max(1, min(500, steps // 4)))


def _hands(data) -> tuple[int, ...]:
    from policy.manipulation_target import hand_state_indices

    return hand_state_indices(data.info["features"]["observation.state"].get("names") or [])


def _episode_targets(data) -> list:
    """Each episode's manipulation targets (N, 4), None for episodes training does not read."""
    kept = {e for e, _ in data.items}
    return [data.targets.get(i) if i in kept else None for i in range(len(data.episodes))]


def _fine_tune(data, dataset: Path, out: Path, init_from: Path, tcfg, env_dim: int, target_anchor: bool = False) -> None:
    """Continue training a saved policy on `data`, keeping its config and normaliser, so the
    weights keep meaning what they meant (a refit normaliser would shift every input and target).
    `env_dim` entries of environment state may be added to what it reads, never removed."""
    from policy.vla import VLAPolicy

    try:
        base = VLAPolicy.from_pretrained(init_from)
    except (FileNotFoundError, ValueError) as exc:
        err_console.print(f"[bold red]error:[/] --init-from {init_from}: {exc}")
        raise typer.Exit(int(ExitCode.BAD_INPUT)) from None
    cfg = base.config
    have = {"cameras": tuple(f"observation.images.{c}" for c in data.cameras), "state_dim": data.state[0].shape[1],
            "action_dim": data.action[0].shape[1]}
    want = {"cameras": tuple(cfg.image_keys), "state_dim": cfg.state_dim, "action_dim": cfg.action_dim}
    for key in want:
        if have[key] != want[key]:
            err_console.print(f"[bold red]error:[/] --init-from {init_from} expects {key} {want[key]}, "
                              f"but {dataset} has {have[key]}")
            raise typer.Exit(int(ExitCode.BAD_INPUT))
    if tuple(data.image_size or ()) != tuple(cfg.image_size) or data.chunk_size != cfg.chunk_size:
        from policy.dataset import DemonstrationDataset

        data = DemonstrationDataset(dataset, chunk_size=cfg.chunk_size, image_size=tuple(cfg.image_size))
    from policy.navigation_goal import ENV_DIM

    if env_dim >= cfg.env_state_dim:
        update: dict = {}
        added = []
        if env_dim > cfg.env_state_dim:
            update["env_state_dim"] = env_dim
            added.append("the navigation goal" if not cfg.env_state_dim else "the manipulation target")
        if env_dim == ENV_DIM and not cfg.target_hand_state:
            update["target_hand_state"] = _hands(data)
            added.append("the target's offsets from the hands")
        if target_anchor and not cfg.target_anchor:
            update["target_anchor"] = True
        cfg = type(cfg).model_validate({**cfg.model_dump(), **update})
        if added:
            console.print(f"{' and '.join(added)} added: new inputs start with zero weight, so training starts from the "
                          "policy as it was")
        if "target_anchor" in update:
            console.print("target-anchored hand actions added: during pick, handover, place and place_in the nearer "
                          "hand's outputs now mean offsets from the target, so those frames start with a high loss")
    else:
        err_console.print(f"[bold red]error:[/] --init-from {init_from} reads {cfg.env_state_dim} environment-state values "
                          "(navigation goal, manipulation target); --no-navigation-goal / --no-manipulation-target "
                          "cannot remove them")
        raise typer.Exit(int(ExitCode.BAD_INPUT))
    console.print(f"fine-tuning {init_from}: its config (images {tuple(cfg.image_size)}, chunk {cfg.chunk_size}, "
                  f"{'relative' if cfg.relative_actions else 'absolute'} actions) and normaliser are kept", highlight=False)
    from policy.vla import VLAProcessor

    processor = VLAProcessor(cfg, base.processor.stats)  # the kept normaliser, under the (possibly widened) config
    if cfg.target_anchor and not base.config.target_anchor:
        processor.fit_anchor(data.state, data.action, _episode_targets(data))
    _run(data, out, cfg, tcfg, processor, init_weights=base.model.state_dict())


def _run(data, out: Path, config, tcfg, processor, init_weights=None) -> None:
    from policy.vla.training import train as train_loop

    kept = len({e for e, _ in data.items})
    console.print(f"{len(data)} frames from {kept} episodes (of {len(data.episodes)}: failed and superseded ones are "
                  f"left out); model {tuple(config.image_size)} images, {len(config.image_keys)} cameras, "
                  f"chunk {config.chunk_size}", highlight=False)
    with Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
        bar = progress.add_task("train", total=tcfg.steps, info="")

        def on_step(step: int, record: dict) -> None:
            info = ""
            if "loss" in record:
                info = f"loss {record['loss']:.3f}  {record['samples_per_s']:.0f} samples/s"
            if "val_l1" in record:
                info += f"  val {record['val_l1']:.3f}"
            progress.update(bar, completed=step, **({"info": info} if info else {}))

        final = train_loop(data, out, config, tcfg, processor, on_step=on_step, init_weights=init_weights)
    console.print(f"policy saved to {final}; metrics in {out / 'metrics.jsonl'}", highlight=False)
