"""Demonstration datasets in LeRobot's v2.1 layout, recorded from the scripted expert.

    DIR/meta/info.json         codebase_version, fps, features (dtype/shape/names), totals, path templates
    DIR/meta/episodes.jsonl    one line per episode: index, tasks, length, skill, args, scenario, seed,
                               success, failure reason, DART noise and perturbation flags
    DIR/meta/tasks.jsonl       one line per instruction string: task_index, task
    DIR/data/chunk-000/episode_000000.parquet
                               observation.state, action, timestamp, frame_index, episode_index, index,
                               task_index, next.done, skill, skill_args (JSON), success
    DIR/images/observation.images.<camera>/episode_000000/frame_000000.png   (lossless PNG)

Episodes are run in worker processes (spawn), each with its own world; episode k uses
seed `seed + k`, so the same options give the same data. Workers write the PNG frames
and hand the low-dimensional arrays back; the parent writes parquet and metadata in
episode order. Failed attempts are kept, with `success = false` and the reason.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from policy.episodes import HELD_SKILLS, OFFSET_SKILLS
from policy.evaluation import sample_args
from policy.expert.expert import SKILLS, SkillError, candidates, validate_skill
from policy.instructions import instruction
from scenarios.loading import load_scenario

if TYPE_CHECKING:
    from policy.episodes import EpisodeConfig

log = structlog.get_logger(__name__)

CODEBASE_VERSION = "v2.1"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
IMAGE_PATH = "images/{image_key}/episode_{episode_index:06d}/frame_{frame_index:06d}.png"
CAMERAS = ("head", "left_wrist", "right_wrist")


@dataclass(frozen=True)
class CollectConfig:
    scenarios: tuple[str, ...]
    skills: tuple[str, ...]
    episodes: int
    seed: int = 0
    image_size: tuple[int, int] = (96, 128)
    fps: float = 20.0
    fixed_args: dict[str, str] = field(default_factory=dict)
    dart_fraction: float = 0.25  # share of episodes with noise on the executed actions
    dart_noise: float = 1.0
    perturb_fraction: float = 0.15  # share of episodes started from a perturbed state
    from_start_fraction: float = 0.0  # share of pick episodes started where the robot stands, when in reach
    carry_fraction: float = 0.0  # share of navigate_to episodes driven holding an object picked up first
    offset_fraction: float = 0.0  # share of OFFSET_SKILLS episodes started off the approach pose
    offset_scale: float = 1.0  # ... by up to this share of `policy.episodes.OFFSET_RANGE`
    arm_offset_fraction: float = 0.0  # share of carrying drives and HELD_SKILLS episodes started with the hands moved
    learned_setup: str | None = None  # checkpoint that runs every episode's set-up (`policy.learned_setup`)
    takeover_after: float = 0.0  # ... and starts each TAKEOVER_SKILLS skill for up to this many s before the expert


@dataclass
class EpisodeJob:
    episode_index: int
    scenario: str
    skill: str
    args: dict[str, str]
    seed: int
    task: str
    noise: float
    perturbed: bool
    from_start: bool = False
    carry: str | None = None
    offset: bool = False
    arm_offset: bool = False
    offset_scale: float = 1.0
    learned_setup: str | None = None
    takeover_after: float = 0.0

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> EpisodeJob:
        """The job that recorded an episode, from its episodes.jsonl row (to replay it)."""
        return cls(meta["episode_index"], meta["scenario"], meta["skill"], meta["skill_args"], meta["seed"],
                   meta["tasks"][0], meta.get("dart_noise", 0.0), meta.get("perturbed", False),
                   meta.get("from_start", False), meta.get("carrying"), meta.get("offset", False),
                   meta.get("arm_offset", False), meta.get("offset_scale", 1.0), meta.get("learned_setup"),
                   meta.get("takeover_after", 0.0))

    def episode_config(self) -> EpisodeConfig:
        """How `policy.episodes` starts this episode (noise, perturbation, offsets, carrying)."""
        from policy.episodes import EpisodeConfig

        return EpisodeConfig(noise_std=self.noise, perturb=self.perturbed, from_start=self.from_start, carry=self.carry,
                             offset=self.offset, arm_offset=self.arm_offset, offset_scale=self.offset_scale,
                             learned_setup=self.learned_setup, takeover_after=self.takeover_after)


@dataclass
class EpisodeData:
    """One recorded episode: low-dimensional arrays and metadata (frames live on disk)."""

    episode_index: int
    state: np.ndarray  # (T, state_dim) float32
    action: np.ndarray  # (T, action_dim) float32
    meta: dict[str, Any]


def plan_episodes(config: CollectConfig, first_index: int = 0) -> list[EpisodeJob]:
    """Validate everything and lay out the episodes (numbered from `first_index`, for appending
    to a dataset); raises SkillError before anything is written."""
    if config.episodes < 1:
        raise SkillError(f"--episodes must be at least 1, got {config.episodes}")
    for skill in config.skills:
        if skill not in SKILLS:
            validate_skill(load_scenario(config.scenarios[0]), skill, {})
    loaded = {name: load_scenario(name) for name in config.scenarios}
    unknown = [k for k in config.fixed_args if all(k not in dict(SKILLS[s].params) for s in config.skills)]
    if unknown:
        raise SkillError(f"--arg {unknown[0]}=...: none of {', '.join(config.skills)} takes a parameter {unknown[0]!r}")
    pairs: list[tuple[str, str]] = []  # (scenario, skill) combinations that can be recorded
    for skill in config.skills:
        missing = {}
        for name, sc in loaded.items():
            lacking = [(pname, kind) for pname, kind in SKILLS[skill].params
                       if pname not in config.fixed_args and not candidates(sc, kind)]
            if lacking:
                missing[name] = lacking[0]
                continue
            pinned = {k: v for k, v in config.fixed_args.items() if k in dict(SKILLS[skill].params)}
            if pinned:
                defaults = {p: candidates(sc, k)[0] if candidates(sc, k) else "" for p, k in SKILLS[skill].params}
                validate_skill(sc, skill, {**defaults, **pinned})
            pairs.append((name, skill))
        if len(missing) == len(loaded):
            name, (pname, kind) = next(iter(missing.items()))
            where = f"scenario {name!r} has" if len(loaded) == 1 else f"none of the scenarios {', '.join(loaded)} has"
            raise SkillError(f"{where} no {kind} for {skill}'s {pname}; choose another scenario or skill")
        for name, (pname, kind) in missing.items():
            log.info("collect.skipped", scenario=name, skill=skill, reason=f"no {kind} for {pname}")
    # Episode k goes to pair k mod len(pairs), interleaved so that scenarios alternate.
    pairs.sort(key=lambda p: (config.skills.index(p[1]), config.scenarios.index(p[0])))
    jobs = []
    for k in range(config.episodes):
        seed = config.seed + k
        name, skill = pairs[k % len(pairs)]
        rng = np.random.default_rng([seed, 5])
        args = sample_args(loaded[name], skill, rng) or {}
        args.update({p: v for p, v in config.fixed_args.items() if p in dict(SKILLS[skill].params)})
        args = validate_skill(loaded[name], skill, args)
        noise = config.dart_noise if rng.random() < config.dart_fraction else 0.0
        perturbed = bool(rng.random() < config.perturb_fraction)
        task = instruction(loaded[name], skill, args, rng)
        # drawn last, so the episodes of a configuration without it stay what they were
        from_start = skill == "pick" and config.from_start_fraction > 0 and bool(rng.random() < config.from_start_fraction)
        carry = None
        if skill == "navigate_to" and config.carry_fraction > 0 and rng.random() < config.carry_fraction:
            objects = [o for o in candidates(loaded[name], "object") if o != args.get("target")]
            carry = str(rng.choice(objects)) if objects else None
        offset = (skill in OFFSET_SKILLS and not from_start and config.offset_fraction > 0
                  and bool(rng.random() < config.offset_fraction))
        arm_offset = ((carry is not None or skill in HELD_SKILLS) and config.arm_offset_fraction > 0
                      and bool(rng.random() < config.arm_offset_fraction))
        jobs.append(EpisodeJob(first_index + k, name, skill, args, seed, task, noise, perturbed, from_start, carry, offset,
                               arm_offset, config.offset_scale, config.learned_setup, config.takeover_after))
    return jobs


_WORLD: dict[tuple, Any] = {}


def record_episode(job: EpisodeJob, root: str, image_size: tuple[int, int], fps: float) -> EpisodeData:
    """Run one episode in this process, writing its frames under `root`; returns its arrays."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from PIL import Image

    from policy.episodes import run_episode
    from scenarios.world import SimWorld, WorldConfig

    # A learned set-up sees the world as whole runs do (full-size frames, head depth for perception);
    # its frames are then resized to the dataset's size, as the policy's processor resizes them.
    learned = job.learned_setup is not None
    key = (job.scenario, tuple(image_size), fps, learned)
    if key not in _WORLD:
        _WORLD[key] = SimWorld(job.scenario, WorldConfig(control_hz=fps, cameras=CAMERAS, head_depth=learned,
                                                         **({} if learned else {"image_size": tuple(image_size)})))
    world = _WORLD[key]
    height, width = image_size
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    dirs = {}
    for cam in CAMERAS:
        d = Path(root) / "images" / f"observation.images.{cam}" / f"episode_{job.episode_index:06d}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        dirs[cam] = d

    def on_step(obs: dict[str, Any], action: np.ndarray) -> None:
        i = len(states)
        states.append(np.asarray(obs["observation.state"], np.float32).copy())
        actions.append(np.asarray(action, np.float32).copy())
        for cam in CAMERAS:
            frame = Image.fromarray(obs[f"observation.images.{cam}"])
            if frame.size != (width, height):
                frame = frame.resize((width, height), Image.Resampling.BILINEAR)  # antialiased when shrinking
            frame.save(dirs[cam] / f"frame_{i:06d}.png", compress_level=1)

    out = run_episode(world, job.skill, job.args, job.seed, job.episode_config(), on_step=on_step, task=job.task)
    meta = {
        "episode_index": job.episode_index, "tasks": [out.task or job.task], "length": len(states), "skill": out.skill,
        "skill_args": out.args, "scenario": job.scenario, "seed": job.seed, "success": bool(out.success),
        "failure_reason": out.reason, "setup_failed": out.setup_failed, "dart_noise": job.noise, "perturbed": job.perturbed,
        "from_start": bool(out.from_start), "carrying": None if out.recovery else job.carry, "offset": job.offset, "arm_offset": job.arm_offset,
    }
    if job.offset and job.offset_scale != 1.0:
        meta["offset_scale"] = job.offset_scale
    if learned:
        meta["learned_setup"] = job.learned_setup
        meta["recovery"] = out.recovery  # the expert redid the learned step that failed (the last in `setup`)
        if job.takeover_after:
            meta["takeover_after"] = job.takeover_after
            meta["takeover"] = round(out.lead_s, 2)  # s the learned policy ran the skill before the expert took over
        setup = out.chain if out.setup_failed else out.chain[:-1]  # the learned steps (the last one failed, if any)
        meta["setup"] = [{"skill": r.skill, "args": r.args, "success": r.success, "reason": r.reason, **({"lead": True} if r.lead else {})}
                         for r in setup]
    acted_on = _acted_on(out)
    if acted_on is not None:
        meta["target"] = acted_on  # world point, see policy.manipulation_target
    dim_s = len(world.controller.proprioception_names())
    return EpisodeData(
        job.episode_index,
        np.stack(states) if states else np.zeros((0, dim_s), np.float32),
        np.stack(actions) if actions else np.zeros((0, world.controller.layout.dim), np.float32),
        meta,
    )


def _acted_on(out: Any) -> list[float] | None:
    """The world point an episode's skill acted on (`EpisodeOutcome`), as kept in episodes.jsonl."""
    point = out.chain[-1].target if out.chain and not out.setup_failed else None
    return [round(v, 5) for v in point] if point is not None else None


def _record(args: tuple[EpisodeJob, str, tuple[int, int], float]) -> EpisodeData:
    return record_episode(*args)


def write_episode(root: Path, ep: EpisodeData, task_index: int, first_index: int, fps: float) -> Path:
    """Write one episode's parquet file (LeRobot v2.1 columns plus skill, args and success)."""
    n = len(ep.state)
    path = root / DATA_PATH.format(episode_chunk=ep.episode_index // CHUNKS_SIZE, episode_index=ep.episode_index)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(ep.state.reshape(-1), pa.float32()), ep.state.shape[1]),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(ep.action.reshape(-1), pa.float32()), ep.action.shape[1]),
        "timestamp": pa.array(np.arange(n, dtype=np.float32) / np.float32(fps)),
        "frame_index": pa.array(np.arange(n, dtype=np.int64)),
        "episode_index": pa.array(np.full(n, ep.episode_index, np.int64)),
        "index": pa.array(np.arange(first_index, first_index + n, dtype=np.int64)),
        "task_index": pa.array(np.full(n, task_index, np.int64)),
        "next.done": pa.array(np.arange(n) == n - 1),
        "skill": pa.array([ep.meta["skill"]] * n, pa.string()),
        "skill_args": pa.array([json.dumps(ep.meta["skill_args"], sort_keys=True)] * n, pa.string()),
        "success": pa.array(np.full(n, ep.meta["success"], bool)),
    })
    pq.write_table(table, path)
    return path


def read_episode(root: Path, episode_index: int) -> dict[str, np.ndarray]:
    """One episode's parquet columns as numpy arrays."""
    path = root / DATA_PATH.format(episode_chunk=episode_index // CHUNKS_SIZE, episode_index=episode_index)
    table = pq.read_table(path)
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            out[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
        else:
            out[name] = np.asarray(col.to_pylist()) if pa.types.is_string(col.type) else col.to_numpy(zero_copy_only=False)
    return out


def info_json(config: CollectConfig, episodes: list[EpisodeData], tasks: list[str], state_names: tuple[str, ...],
              action_names: tuple[str, ...], earlier: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """info.json for `episodes` after the `earlier` ones (episodes.jsonl rows) of an appended dataset."""
    h, w = config.image_size
    earlier = earlier or []
    total = int(sum(len(e.state) for e in episodes)) + int(sum(e["length"] for e in earlier))
    n_episodes = len(episodes) + len(earlier)
    features: dict[str, Any] = {
        "observation.state": {"dtype": "float32", "shape": [len(state_names)], "names": list(state_names)},
        "action": {"dtype": "float32", "shape": [len(action_names)], "names": list(action_names)},
    }
    for cam in CAMERAS:
        features[f"observation.images.{cam}"] = {"dtype": "image", "shape": [h, w, 3], "names": ["height", "width", "channel"]}
    for name, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
                        ("task_index", "int64"), ("next.done", "bool"), ("success", "bool")):
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    features["skill"] = {"dtype": "string", "shape": [1], "names": None}
    features["skill_args"] = {"dtype": "string", "shape": [1], "names": None}
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": "vla_agent_wheeled_humanoid",
        "total_episodes": n_episodes,
        "total_frames": total,
        "total_tasks": len(tasks),
        "total_videos": 0,
        "total_chunks": max(1, (n_episodes + CHUNKS_SIZE - 1) // CHUNKS_SIZE),
        "chunks_size": CHUNKS_SIZE,
        "fps": config.fps,
        "splits": {"train": f"0:{n_episodes}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "image_path": IMAGE_PATH,
        "features": features,
        "collection": {**{k: v for k, v in asdict(config).items()}, "arm_mode": "ee_pose", "policy": "scripted_expert"},
    }


def existing_dataset(out: Path, config: CollectConfig) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """(info, episodes, tasks) of the dataset at `out` (`policy.dataset.load_meta`), checked to take `config`'s episodes."""
    from policy.dataset import load_meta  # policy.dataset reads episodes through this module

    info, episodes, tasks = load_meta(out)
    shape = info["features"][f"observation.images.{CAMERAS[0]}"]["shape"][:2]
    if tuple(shape) != tuple(config.image_size) or float(info["fps"]) != float(config.fps):
        raise ValueError(f"{out} holds {shape[0]}x{shape[1]} frames at {info['fps']} fps; these episodes would be "
                         f"{config.image_size[0]}x{config.image_size[1]} at {config.fps} fps")
    return info, episodes, tasks


def collect(config: CollectConfig, out: Path, workers: int = 1, progress: Callable[[int, int], None] | None = None,
            append: bool = False, supersede: bool = False,
            initializer: Callable[[], None] | None = None) -> dict[str, Any]:
    """Plan (validating first), record in parallel, then write parquet and metadata. Returns info.json.

    With `append`, the episodes are added after those of the dataset already at `out` (same
    image size and rate), as LeRobot datasets grow: new episode indices, the task list
    extended, the totals rewritten; earlier episodes are left as they are. With `supersede`
    as well, the earlier episodes of the skills recorded now are marked `superseded` in
    episodes.jsonl (their frames stay on disk): training leaves them out, as it does failed
    ones. That is how a change to the expert's behaviour replaces its old demonstrations.
    `initializer` runs first in every worker process (the caller's logging set-up: a learned
    set-up runs the behaviour tree, which logs every tick at debug level)."""
    if supersede and not append:
        raise ValueError("supersede marks earlier episodes of an appended dataset: it needs append")
    out = Path(out)
    old_info: dict[str, Any] = {}
    old_episodes: list[dict[str, Any]] = []
    tasks: list[str] = []
    first = 0
    if (out / "meta" / "info.json").exists():
        if not append:
            raise FileExistsError(f"{out} already holds a dataset; choose another --out, delete it or append to it")
        old_info, old_episodes, tasks = existing_dataset(out, config)
        first = int(old_info["total_frames"])
    jobs = plan_episodes(config, first_index=len(old_episodes))
    out.mkdir(parents=True, exist_ok=True)
    log.info("collect.start", episodes=len(jobs), workers=workers, out=str(out))
    args = [(j, str(out), config.image_size, config.fps) for j in jobs]
    results: list[EpisodeData] = []
    if workers <= 1:
        it = map(_record, args)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=initializer)
        it = pool.map(_record, args)
    try:
        for ep in it:
            results.append(ep)
            if progress:
                progress(len(results), len(jobs))
    finally:
        if pool is not None:
            pool.shutdown()
    from scenarios.world import SimWorld, WorldConfig

    probe = SimWorld(config.scenarios[0], WorldConfig(cameras=(), head_depth=False))
    state_names, action_names = probe.controller.proprioception_names(), probe.controller.layout.names
    probe.close()
    (out / "meta").mkdir(exist_ok=True)
    superseded = 0
    if supersede:
        for ep in old_episodes:
            if ep["skill"] in config.skills and not ep.get("superseded"):
                ep["superseded"] = True
                superseded += 1
        tmp = out / "meta" / "episodes.jsonl.tmp"
        tmp.write_text("".join(json.dumps(ep, sort_keys=True) + "\n" for ep in old_episodes))
        tmp.replace(out / "meta" / "episodes.jsonl")
    with open(out / "meta" / "episodes.jsonl", "a" if old_episodes else "w") as fe:
        for ep in results:
            task = ep.meta["tasks"][0]
            if task not in tasks:
                tasks.append(task)
            write_episode(out, ep, tasks.index(task), first, config.fps)
            first += len(ep.state)
            fe.write(json.dumps(ep.meta, sort_keys=True) + "\n")
    with open(out / "meta" / "tasks.jsonl", "w") as ft:
        for i, t in enumerate(tasks):
            ft.write(json.dumps({"task_index": i, "task": t}) + "\n")
    info = info_json(config, results, tasks, state_names, action_names, old_episodes)
    if old_info:  # the first collection's settings stay; each appended one is listed after it
        info["appended"] = old_info.get("appended", []) + [{**info["collection"], "superseded_episodes": superseded}]
        info["collection"] = old_info["collection"]
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    log.info("collect.done", episodes=len(results), frames=info["total_frames"])
    return info


STATE_MATCH_TOL = 1e-3  # largest |recorded - replayed| state entry for a replay to count as the same episode


def _replay(args: tuple[dict[str, Any], str, float]) -> tuple[int, list[float] | None, float]:
    """Re-run one recorded episode without cameras; (episode index, the point its expert acted
    on, largest state difference from the recording)."""
    meta, root, fps = args
    os.environ.setdefault("MUJOCO_GL", "egl")
    from policy.episodes import run_episode
    from scenarios.world import SimWorld, WorldConfig

    job = EpisodeJob.from_meta(meta)
    key = (job.scenario, "replay", fps)
    if key not in _WORLD:
        _WORLD[key] = SimWorld(job.scenario, WorldConfig(control_hz=fps, cameras=(), head_depth=False))
    states: list[np.ndarray] = []
    out = run_episode(_WORLD[key], job.skill, job.args, job.seed, job.episode_config(),
                      on_step=lambda obs, action: states.append(np.asarray(obs["observation.state"], np.float32).copy()),
                      task=job.task)
    recorded = read_episode(Path(root), job.episode_index)["observation.state"]
    if len(states) != len(recorded):
        return job.episode_index, None, float("inf")
    diff = float(np.max(np.abs(np.stack(states) - recorded))) if states else 0.0
    return job.episode_index, _acted_on(out), diff


def replay_targets(root: Path, workers: int = 1, progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Add the manipulation target (`policy.manipulation_target`) to the episodes of a dataset
    recorded before it was kept, by re-running each one without cameras from its seed and
    options (the simulation is deterministic). A replay whose states drift from the recording
    by more than STATE_MATCH_TOL is not trusted: that episode stays without a target.
    Returns counts: added, mismatched, already (had one), skipped (other skills, failed set-ups)."""
    from policy.dataset import load_meta
    from policy.manipulation_target import TARGET_SKILLS

    root = Path(root)
    info, episodes, _ = load_meta(root)
    todo = [ep for ep in episodes if ep["skill"] in TARGET_SKILLS and ep.get("target") is None and not ep.get("setup_failed")]
    counts = {"added": 0, "mismatched": 0, "already": sum(ep.get("target") is not None for ep in episodes)}
    counts["skipped"] = len(episodes) - len(todo) - counts["already"]
    args = [(ep, str(root), float(info["fps"])) for ep in todo]
    found: dict[int, list[float]] = {}
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) if workers > 1 else None
    try:
        for done, (index, point, diff) in enumerate((pool.map if pool else map)(_replay, args), 1):
            if point is not None and diff <= STATE_MATCH_TOL:
                found[index] = point
                counts["added"] += 1
            else:
                counts["mismatched"] += 1
                log.warning("collect_targets.mismatch", episode=index, max_state_diff=diff, has_point=point is not None)
            if progress:
                progress(done, len(args))
    finally:
        if pool is not None:
            pool.shutdown()
    for ep in episodes:
        if ep["episode_index"] in found:
            ep["target"] = found[ep["episode_index"]]
    tmp = root / "meta" / "episodes.jsonl.tmp"
    tmp.write_text("".join(json.dumps(ep, sort_keys=True) + "\n" for ep in episodes))
    tmp.replace(root / "meta" / "episodes.jsonl")
    return counts
