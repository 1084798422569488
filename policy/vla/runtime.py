"""Inference runtime: how action chunks become one action per control tick.

A chunk policy predicts H actions from one observation (`predict_action_chunk(obs) -> (H, A)`).
The executors here turn that into LeRobot's per-tick interface (`reset`, `select_action`,
`predict_action_chunk`), so a behaviour-tree skill leaf can run any of them as its policy:

- `RecedingHorizonExecutor`: predict a chunk, execute its first `n_action_steps`, predict again
  (ACT / LeRobot's default action queue).
- `TemporalEnsembleExecutor`: predict a chunk every `query_every` ticks and execute, for the
  current tick, the exponentially weighted mean of every chunk that covers it (ACT's temporal
  ensembling: weight exp(-m * i), i = 0 for the oldest prediction, so larger m trusts old
  predictions more and moves more smoothly).
- `AsyncChunkRunner`: receding horizon where a background thread computes the next chunk from
  the latest observation while the current one executes. `select_action` never waits on the
  worker longer than `max_wait_s`; when the worker is late it falls back deterministically
  (continue the current chunk past `n_action_steps`, then hold its last action), and a chunk that
  arrives late is aligned to the tick it was requested at (its first actions are already in the
  past and are skipped). `close()` (or `with`) stops the thread.

Observations are single frames (batch 1); chunks are numpy arrays in world units.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class ChunkPolicy(Protocol):
    """What the executors need from a model: one observation in, (H, action_dim) out."""

    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray: ...


@dataclass
class RuntimeStats:
    """Counters an executor keeps since its last `reset()`."""

    ticks: int = 0
    chunks: int = 0  # chunks predicted (synchronously or by the worker) and used
    waits: int = 0  # ticks where select_action waited for the worker
    fallbacks: int = 0  # ticks served by the fallback because the worker was late
    dropped: int = 0  # worker results discarded (stale after reset, or too late to align)
    wait_s: float = 0.0
    chunk_latency_s: list[float] = field(default_factory=list)


def _as_chunk(chunk: Any) -> np.ndarray:
    arr = np.asarray(chunk, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"predict_action_chunk returned shape {arr.shape}; expected (horizon, action_dim) for one observation")
    return arr


class ChunkExecutor:
    """Base class: LeRobot's policy methods over a chunk policy."""

    def __init__(self, policy: ChunkPolicy) -> None:
        self.policy = policy
        self.stats = RuntimeStats()

    def reset(self) -> None:
        """Forget queued actions and counters; resets the wrapped policy too (start of a subtask)."""
        self.stats = RuntimeStats()
        inner_reset = getattr(self.policy, "reset", None)
        if callable(inner_reset):
            inner_reset()

    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        t0 = time.perf_counter()
        chunk = _as_chunk(self.policy.predict_action_chunk(obs))
        self.stats.chunk_latency_s.append(time.perf_counter() - t0)
        return chunk

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # context-manager symmetry with AsyncChunkRunner, so callers can treat all executors alike
    def close(self) -> None:
        pass

    def __enter__(self) -> ChunkExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecedingHorizonExecutor(ChunkExecutor):
    """Execute the first `n_action_steps` of each chunk, then predict a new one."""

    def __init__(self, policy: ChunkPolicy, n_action_steps: int) -> None:
        super().__init__(policy)
        if n_action_steps < 1:
            raise ValueError(f"n_action_steps must be at least 1, got {n_action_steps}")
        self.n_action_steps = n_action_steps
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        super().reset()
        self._queue.clear()

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        if not self._queue:
            chunk = self.predict_action_chunk(obs)
            if self.n_action_steps > len(chunk):
                raise ValueError(f"n_action_steps ({self.n_action_steps}) exceeds the chunk's horizon ({len(chunk)})")
            self._queue.extend(chunk[: self.n_action_steps])
            self.stats.chunks += 1
        self.stats.ticks += 1
        return self._queue.popleft().copy()


class TemporalEnsembleExecutor(ChunkExecutor):
    """ACT's temporal ensembling over overlapping chunks.

    At tick t every stored chunk predicted at tick s (s <= t < s + H) proposes chunk_s[t - s].
    They are averaged with weights w_i = exp(-m * i), i = 0 for the oldest chunk. A chunk is
    predicted every `query_every` ticks (1 = ACT's setting: one chunk per tick).
    """

    def __init__(self, policy: ChunkPolicy, m: float = 0.01, query_every: int = 1) -> None:
        super().__init__(policy)
        if query_every < 1:
            raise ValueError(f"query_every must be at least 1, got {query_every}")
        if not math.isfinite(m):
            raise ValueError(f"ensembling coefficient m must be finite, got {m}")
        self.m = float(m)
        self.query_every = query_every
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (tick predicted at, chunk), oldest first
        self._t = 0

    def reset(self) -> None:
        super().reset()
        self._chunks.clear()
        self._t = 0

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        t = self._t
        if t % self.query_every == 0 or not self._chunks:
            chunk = self.predict_action_chunk(obs)
            if self._chunks and self.query_every > len(chunk):
                raise ValueError(f"query_every ({self.query_every}) exceeds the chunk's horizon ({len(chunk)}): ticks would be uncovered")
            self._chunks.append((t, chunk))
            self.stats.chunks += 1
        while self._chunks and t - self._chunks[0][0] >= len(self._chunks[0][1]):
            self._chunks.popleft()
        proposals = np.stack([c[t - s] for s, c in self._chunks])
        weights = np.exp(-self.m * np.arange(len(proposals), dtype=np.float64))
        action = (weights[:, None] * proposals).sum(0) / weights.sum()
        self._t += 1
        self.stats.ticks += 1
        return action.astype(np.float32)


class AsyncChunkRunner(ChunkExecutor):
    """Receding horizon with the next chunk computed in a background thread.

    The chunk in use was predicted from the observation of tick `s` and covers ticks s..s+H-1.
    Once `prefetch_at` of its actions have been executed since it was adopted (default: half of
    `n_action_steps`) the worker is asked for the next chunk from that tick's observation
    (tick s'). After `n_action_steps` actions the runner switches to it, from the present tick t
    on, as chunk'[t - s'] (the actions for ticks already past are skipped), so every chunk runs
    `n_action_steps` actions, the same as the synchronous receding horizon. If it is not ready then,
    select_action waits at most `max_wait_s`; if the worker is still late the runner falls back
    deterministically: it keeps executing the current chunk and, past its end, repeats its last
    action, and switches as soon as the worker delivers. The first chunk after `reset()` is
    predicted in the caller's thread (there is nothing to execute before it; if the worker is
    still finishing a chunk from before the reset, that call waits for it, one chunk at most).

    Which chunk is in use depends on wall-clock timing when the worker is late, so runs that must
    replay exactly (tests, evaluation) use `RecedingHorizonExecutor`, or a large `max_wait_s`
    (then the runner always waits for the worker and its actions depend on the ticks only).
    The worker is a daemon thread: call `close()` (or use `with`) when the policy is done.
    """

    def __init__(self, policy: ChunkPolicy, n_action_steps: int, prefetch_at: int | None = None, max_wait_s: float = 0.005) -> None:
        super().__init__(policy)
        if n_action_steps < 1:
            raise ValueError(f"n_action_steps must be at least 1, got {n_action_steps}")
        prefetch_at = n_action_steps // 2 if prefetch_at is None else prefetch_at
        if not 0 <= prefetch_at <= n_action_steps:
            raise ValueError(f"prefetch_at must be within 0..n_action_steps ({n_action_steps}), got {prefetch_at}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s cannot be negative, got {max_wait_s}")
        self.n_action_steps = n_action_steps
        self.prefetch_at = prefetch_at
        self.max_wait_s = float(max_wait_s)
        self._cv = threading.Condition()
        self._predict_lock = threading.Lock()  # the model never runs in two threads at once
        self._request: tuple[int, int, Mapping[str, Any]] | None = None  # (generation, tick, obs)
        self._result: tuple[int, int, np.ndarray | BaseException, float] | None = None
        self._busy = False
        self._generation = 0
        self._stop = False
        self._plan: tuple[int, int, int, np.ndarray] | None = None  # (tick predicted at, tick adopted at, id, chunk)
        self._plan_id = 0
        self._t = 0
        self._requested_for: int | None = None  # id of the plan the pending request was made under
        self._thread = threading.Thread(target=self._work, name="vla-chunk-worker", daemon=True)
        self._thread.start()

    # -- worker --------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cv:
                while self._request is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                generation, tick, obs = self._request
                self._request = None
                self._busy = True
            t0 = time.perf_counter()
            try:
                with self._predict_lock:
                    out: np.ndarray | BaseException = _as_chunk(self.policy.predict_action_chunk(obs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                out = exc
            with self._cv:
                self._busy = False
                if generation == self._generation:
                    self._result = (generation, tick, out, time.perf_counter() - t0)
                else:
                    self.stats.dropped += 1
                self._cv.notify_all()

    # -- interface -----------------------------------------------------------------------
    def reset(self) -> None:
        with self._cv:
            self._generation += 1  # in-flight work from before the reset is dropped on arrival
            self._request = None
            self._result = None
        super().reset()
        self._plan = None
        self._t = 0
        self._requested_for = None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker (after the chunk it may be computing) and join it."""
        with self._cv:
            self._stop = True
            self._request = None
            self._cv.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._stop

    @property
    def worker_alive(self) -> bool:
        return self._thread.is_alive()

    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        with self._predict_lock:
            return super().predict_action_chunk(obs)

    def _take_result(self) -> None:
        """Adopt a finished worker chunk if there is one (call with the condition held)."""
        if self._result is None:
            return
        _, tick, out, latency = self._result
        self._result = None
        self._requested_for = None
        if isinstance(out, BaseException):
            raise RuntimeError(f"the policy failed in the background worker: {out}") from out
        if self._t - tick >= len(out):  # it covers nothing from now on
            self.stats.dropped += 1
            return
        self._plan_id += 1
        self._plan = (tick, self._t, self._plan_id, out)
        self.stats.chunks += 1
        self.stats.chunk_latency_s.append(latency)

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        if self._stop:
            raise RuntimeError("AsyncChunkRunner is closed")
        obs = dict(obs)  # the caller may reuse its dict; the worker keeps this one
        if self._plan is None:
            self._plan_id += 1
            self._plan = (self._t, self._t, self._plan_id, self.predict_action_chunk(obs))
            self.stats.chunks += 1
        with self._cv:
            if self._t - self._plan[1] >= self.n_action_steps:
                # this chunk's share is executed: switch to the next one, waiting a bounded time for it
                if self._result is None and self._requested_for is not None:
                    t0 = time.perf_counter()
                    deadline = t0 + self.max_wait_s
                    self.stats.waits += 1
                    while self._result is None and (remaining := deadline - time.perf_counter()) > 0:
                        self._cv.wait(remaining)
                    self.stats.wait_s += time.perf_counter() - t0
                self._take_result()
                if self._t - self._plan[1] >= self.n_action_steps:
                    self.stats.fallbacks += 1
            start, adopted, plan_id, chunk = self._plan
            if self._t - adopted >= self.prefetch_at and self._requested_for != plan_id and self._result is None:
                # ask for the next chunk from this tick's observation
                self._request = (self._generation, self._t, obs)
                self._requested_for = plan_id
                self._cv.notify_all()
        action = chunk[min(self._t - start, len(chunk) - 1)].copy()
        self._t += 1
        self.stats.ticks += 1
        return action


def make_executor(policy: ChunkPolicy, mode: str, n_action_steps: int, m: float = 0.01, max_wait_s: float = 0.005) -> ChunkExecutor:
    """`mode` is one of receding, ensemble, async."""
    if mode == "receding":
        return RecedingHorizonExecutor(policy, n_action_steps)
    if mode == "ensemble":
        return TemporalEnsembleExecutor(policy, m=m)
    if mode == "async":
        return AsyncChunkRunner(policy, n_action_steps, max_wait_s=max_wait_s)
    raise ValueError(f"unknown execution mode {mode!r}; choose receding, ensemble or async")
