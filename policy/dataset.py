"""Loading demonstration datasets (LeRobot v2.1 layout, see `policy.recording`) as torch batches.

Frames are decoded from PNG once and cached per camera as a uint8 `.npy` memmap under
`DIR/cache/` (extended when episodes are appended, rebuilt if it does not fit), so training epochs read
memory, not images. With `image_size` the cache holds the frames already resized to what
the model sees (uint8, antialiased bilinear: the resize the policy applies at run time), so
a training step neither reads nor resizes full-size frames. Each item is one frame with the action chunk that follows it:

    observation.state           float32 (state_dim,)
    observation.images.<cam>    float32 (3, H, W) in [0, 1]
    action                      float32 (chunk_size, action_dim), padded past the episode's end
    action_is_pad               bool (chunk_size,)
    observation.environment_state  float32 (env_state_dim,): navigate_to's goal (7), relabelled in
                                hindsight from the episode's base poses (`policy.navigation_goal`),
                                then a manipulation's target (4), the world point its expert acted on
                                (`episodes.jsonl`: `target`) in each frame's base frame
                                (`policy.manipulation_target`); zeros where a skill has none.
                                `env_state_dim` 7 gives the goal alone (policies trained before the target)
    task                        the instruction string
    skill, episode_index, frame_index, success
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from policy.manipulation_target import TARGET_SKILLS, hindsight_targets
from policy.navigation_goal import ENV_DIM, GOAL_DIM, GOAL_KEY, GOAL_SKILLS, hindsight_goals
from policy.recording import IMAGE_PATH, read_episode


def load_meta(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """info.json, the episodes (jsonl) and the tasks in task_index order."""
    root = Path(root)
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        raise FileNotFoundError(f"{root} is not a dataset: {info_path} is missing")
    info = json.loads(info_path.read_text())
    episodes = [json.loads(line) for line in (root / "meta" / "episodes.jsonl").read_text().splitlines() if line.strip()]
    tasks_rows = [json.loads(line) for line in (root / "meta" / "tasks.jsonl").read_text().splitlines() if line.strip()]
    tasks = [t["task"] for t in sorted(tasks_rows, key=lambda t: t["task_index"])]
    return info, episodes, tasks


class DemonstrationDataset(Dataset):
    """Frames of the recorded episodes with their action chunks (see module docstring).

    Episodes marked `superseded` (re-recorded after a change to the expert, see
    `policy.recording.collect`) are never items; failed ones only with `include_failed`."""

    def __init__(self, root: str | Path, chunk_size: int = 20, cameras: tuple[str, ...] | None = None,
                 include_failed: bool = False, skills: tuple[str, ...] | None = None,
                 image_size: tuple[int, int] | None = None, env_state_dim: int = ENV_DIM) -> None:
        if env_state_dim not in (0, GOAL_DIM, ENV_DIM):
            raise ValueError(f"env_state_dim is 0, {GOAL_DIM} (navigation goal) or {ENV_DIM} (and manipulation target), "
                             f"got {env_state_dim}")
        self.root = Path(root)
        self.env_state_dim = env_state_dim
        self.image_size = tuple(image_size) if image_size else None
        self.chunk_size = int(chunk_size)
        self.info, self.episodes, self.tasks = load_meta(self.root)
        image_keys = [k for k, f in self.info["features"].items() if f["dtype"] == "image"]
        self.cameras = tuple(cameras) if cameras else tuple(k.removeprefix("observation.images.") for k in image_keys)
        self.state: list[np.ndarray] = []
        self.action: list[np.ndarray] = []
        self.task_index: list[np.ndarray] = []
        self._offset: list[int] = []  # global frame index of each episode's first frame
        total = 0
        for ep in self.episodes:
            cols = read_episode(self.root, ep["episode_index"])
            self.state.append(cols["observation.state"].astype(np.float32))
            self.action.append(cols["action"].astype(np.float32))
            self.task_index.append(cols["task_index"])
            self._offset.append(total)
            total += len(cols["frame_index"])
        self.total_frames = total
        self.goals = self._goals()
        self.targets = self._targets()
        self.frames = {cam: self._cache(cam) for cam in self.cameras}
        keep = [i for i, ep in enumerate(self.episodes)
                if (include_failed or ep["success"]) and not ep.get("superseded")
                and (skills is None or ep["skill"] in skills)]
        self.items = [(i, f) for i in keep for f in range(len(self.state[i]))]

    def _base_columns(self) -> list[int] | None:
        """Where the base pose (x, y, yaw) sits in `observation.state`; None if it is not named."""
        names = list(self.info["features"]["observation.state"].get("names") or [])
        if not all(n in names for n in ("base.x", "base.y", "base.yaw")):
            return None
        return [names.index(n) for n in ("base.x", "base.y", "base.yaw")]

    def _goals(self) -> dict[int, np.ndarray]:
        """Hindsight navigation goals of the goal-conditioned skills' episodes, by episode position."""
        cols = self._base_columns()
        if cols is None:
            return {}
        return {i: hindsight_goals(self.state[i][:, cols]) for i, ep in enumerate(self.episodes) if ep["skill"] in GOAL_SKILLS}

    def _targets(self) -> dict[int, np.ndarray]:
        """Manipulation targets of the episodes that kept the point their expert acted on."""
        cols = self._base_columns()
        if cols is None:
            return {}
        return {i: hindsight_targets(self.state[i][:, cols], ep["target"]) for i, ep in enumerate(self.episodes)
                if ep["skill"] in TARGET_SKILLS and ep.get("target") is not None}

    def environment_state(self, e: int, f: int) -> np.ndarray:
        """(env_state_dim,) goal then target of frame `f` of the episode at position `e`."""
        env = np.zeros(ENV_DIM, np.float32)
        if e in self.goals:
            env[:GOAL_DIM] = self.goals[e][f]
        if e in self.targets:
            env[GOAL_DIM:] = self.targets[e][f]
        return env[: self.env_state_dim]

    def _cache(self, cam: str) -> np.ndarray:
        """All frames of one camera as a uint8 (N, H, W, 3) memmap, decoded once."""
        key = f"observation.images.{cam}"
        h0, w0, _ = self.info["features"][key]["shape"]
        h, w = self.image_size or (h0, w0)
        path = self.root / "cache" / (f"{key}.npy" if (h, w) == (h0, w0) else f"{key}.{h}x{w}.npy")
        done = 0
        old = None
        if path.exists():
            arr = np.load(path, mmap_mode="r")
            if arr.shape == (self.total_frames, h, w, 3):
                return arr
            if arr.shape[1:] == (h, w, 3) and arr.shape[0] < self.total_frames:
                old, done = arr, arr.shape[0]  # episodes were appended: decode only theirs
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(self.total_frames, h, w, 3))
        if old is not None:
            arr[:done] = old
            del old
        for ep, off in zip(self.episodes, self._offset):
            if off + ep["length"] <= done:
                continue
            for f in range(ep["length"]):
                rel = IMAGE_PATH.format(image_key=key, episode_index=ep["episode_index"], frame_index=f)
                frame = np.asarray(Image.open(self.root / rel).convert("RGB"))
                arr[off + f] = frame if (h, w) == (h0, w0) else resize_uint8(frame, (h, w))
        arr.flush()
        del arr
        tmp.replace(path)  # a stop mid-decode leaves the previous cache, never a half-written one
        return np.load(path, mmap_mode="r")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        e, f = self.items[idx]
        actions = self.action[e]
        n = len(actions)
        end = min(f + self.chunk_size, n)
        chunk = np.zeros((self.chunk_size, actions.shape[1]), np.float32)
        chunk[: end - f] = actions[f:end]
        if end - f < self.chunk_size:
            chunk[end - f:] = actions[-1]  # pad by repeating the last action (masked anyway)
        pad = np.arange(self.chunk_size) >= end - f
        ep = self.episodes[e]
        item: dict[str, Any] = {
            "observation.state": torch.from_numpy(self.state[e][f].copy()),
            "action": torch.from_numpy(chunk),
            "action_is_pad": torch.from_numpy(pad),
            GOAL_KEY: torch.from_numpy(self.environment_state(e, f)),
            "task": self.tasks[int(self.task_index[e][f])],
            "skill": ep["skill"],
            "episode_index": ep["episode_index"],
            "frame_index": f,
            "success": bool(ep["success"]),
        }
        g = self._offset[e] + f
        for cam, frames in self.frames.items():
            img = torch.from_numpy(np.array(frames[g])).permute(2, 0, 1).float() / 255.0
            item[f"observation.images.{cam}"] = img
        return item


def resize_uint8(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxWx3 uint8 -> size, antialiased bilinear on uint8 as `VLAProcessor.images` resizes at run time."""
    x = torch.from_numpy(np.array(frame, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0)  # a writable copy
    x = torch.nn.functional.interpolate(x.contiguous(memory_format=torch.channels_last), size=size, mode="bilinear",
                                        align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).contiguous().numpy()


def make_dataloader(dataset: DemonstrationDataset, batch_size: int = 64, shuffle: bool = True, num_workers: int = 0,
                    seed: int = 0) -> DataLoader:
    """A DataLoader over the dataset; tasks and skills stay lists of strings in each batch."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, generator=gen, drop_last=False)
