"""`vla-agent run`: one goal, end to end, with a live view, an optional video and a summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


@dataclass
class RunSummary:
    status: str
    goal: str
    subtasks_total: int
    subtasks_done: int
    retries: int
    replans: int
    ticks: int
    world_seconds: float
    wall_seconds: float
    trace: str | None
    failed_subtask: str | None = None
    reasons: list[str] = field(default_factory=list)
    video: str | None = None


class VideoWriter:
    """Head camera beside the overview, one frame per tick, H.264 through PyAV."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.size = size
        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=int(round(fps)))
        self._stream.width, self._stream.height = size[1] * 2, size[0]
        self._stream.pix_fmt = "yuv420p"

    def add(self, world: Any) -> None:
        import av

        frame = np.concatenate([world.render_camera("head_camera", self.size), world.render_camera("overview", self.size)], axis=1)
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


def _view(ex: Any, started: float, retries: int, done: int) -> Group:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    sid = ex.current_subtask
    sub = ex.graph[sid] if sid and sid in ex.graph else None
    elapsed = max(time.perf_counter() - started, 1e-6)
    table.add_row("subtask", f"{sid} {sub.label}  \"{sub.instruction}\"" if sub else "-")
    table.add_row("progress", f"{done}/{len(ex.graph)} subtasks done, {retries} retries, {ex.replans} replans")
    table.add_row("time", f"world {ex.world.time:6.1f} s   wall {elapsed:6.1f} s   {ex.ticks / elapsed:5.1f} ticks/s")
    return Group(Text(f"goal: {ex.goal}", style="bold"), table)


def execute(ex: Any, console: Console, video: Path | None = None, video_size: tuple[int, int] = (240, 320)) -> RunSummary:
    """Tick `ex` to the end with a live view; returns the summary."""
    writer = VideoWriter(video, 1.0 / ex.world.control_period, video_size) if video is not None else None
    started = time.perf_counter()
    seen = 0
    retries = done = 0
    try:
        with Live(_view(ex, started, retries, done), console=console, refresh_per_second=4, transient=True) as live:
            while not ex.finished:
                ex.tick()
                for e in ex.events[seen:]:
                    kind = e["event"]
                    if kind == "subtask_retry":
                        retries += 1
                    elif kind == "subtask_succeeded":
                        done += 1
                    elif kind in ("replanned", "goal_not_done"):
                        done = 0
                    if kind in ("subtask_started", "subtask_succeeded", "subtask_failed", "replanned", "goal_not_done"):
                        text = {"subtask_started": f"→ {e.get('subtask')} {e.get('skill')}{tuple(e.get('args', ()))}",
                                "subtask_succeeded": f"✓ {e.get('subtask')} succeeded",
                                "subtask_failed": f"✗ {e.get('subtask')} failed: {e.get('reason')}",
                                "replanned": f"↻ replanned: {e.get('reason')}",
                                "goal_not_done": f"↻ the plan is done, the goal not yet: {', '.join(e.get('subtasks', []))} more"}[kind]
                        console.print(f"[{e['time']:6.1f} s] {text}", highlight=False)
                seen = len(ex.events)
                if writer is not None:
                    writer.add(ex.world)
                live.update(_view(ex, started, retries, done))
    finally:
        if writer is not None:
            writer.close()
    out = ex.outcome
    return RunSummary(
        status=out.status, goal=ex.goal, subtasks_total=len(ex.graph), subtasks_done=done, retries=retries,
        replans=out.replans, ticks=out.ticks, world_seconds=out.time_s, wall_seconds=time.perf_counter() - started,
        trace=out.trace, failed_subtask=out.failed_subtask, reasons=list(out.reasons),
        video=str(video) if video is not None else None,
    )
