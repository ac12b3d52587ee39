"""The in-memory state of inline completions: their operation record and the answer cache.

Neither is persisted (why: :mod:`polaris_jupyter.agent.completions`). The record keeps counters
and the latencies of the last ``window`` completions, so its percentiles describe the recent
past in bounded memory; ``to_json`` gives the same shape as a task of the engine's metrics
answer (``taskId``, ``counts`` by run status, ``total``, ``successRate``, ``durationP50Ms``,
``durationP95Ms``) plus what only completions have (first-suggestion latency, cache hits,
modes, feedback from the editor and the accept rate).
"""

from __future__ import annotations

import collections
import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from polaris_jupyter.jobs import RunStatus

__all__ = ["COMPLETION_TASK_ID", "FEEDBACK_EVENTS", "CachedSuggestion", "CompletionMetrics", "SuggestionCache"]

#: The task id completions are reported under in the engine's metrics.
COMPLETION_TASK_ID = "inline-completion"
#: What the editor reports about a suggestion it received.
FEEDBACK_EVENTS = ("shown", "accepted", "dismissed")


def _percentiles(values: collections.deque[float]) -> tuple[float | None, float | None]:
    """(p50, p95) in ms, rounded; None when nothing was measured."""
    if not values:
        return None, None
    if len(values) == 1:
        return round(values[0], 3), round(values[0], 3)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return round(cuts[49], 3), round(cuts[94], 3)


class CompletionMetrics:
    """Counters plus bounded latency windows; every update is O(1) on the event loop."""

    def __init__(self, *, window: int = 1024, clock: Callable[[], float] = time.time) -> None:
        self.since = clock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.modes: collections.Counter[str] = collections.Counter()
        self.cancel_reasons: collections.Counter[str] = collections.Counter()
        self.feedback_counts: collections.Counter[str] = collections.Counter()
        self.cache_hits = 0
        self.window = window
        self._first_chunk_ms: collections.deque[float] = collections.deque(maxlen=window)
        self._duration_ms: collections.deque[float] = collections.deque(maxlen=window)

    def record(self, status: RunStatus, *, mode: str | None, cached: bool, first_chunk_ms: float | None,
               duration_ms: float, cancel_reason: str | None = None) -> None:
        """One finished completion."""
        self.counts[status.value] += 1
        if mode:
            self.modes[mode] += 1
        if cached:
            self.cache_hits += 1
        if cancel_reason:
            self.cancel_reasons[cancel_reason] += 1
        if first_chunk_ms is not None:
            self._first_chunk_ms.append(first_chunk_ms)
        if status is RunStatus.COMPLETED:
            self._duration_ms.append(duration_ms)

    def feedback(self, event: str) -> None:
        self.feedback_counts[event] += 1

    def to_json(self) -> dict[str, Any]:
        total = sum(self.counts.values())
        completed = self.counts.get(RunStatus.COMPLETED.value, 0)
        failed = total - completed - self.counts.get(RunStatus.CANCELED.value, 0)
        shown, accepted = self.feedback_counts["shown"], self.feedback_counts["accepted"]
        first_p50, first_p95 = _percentiles(self._first_chunk_ms)
        p50, p95 = _percentiles(self._duration_ms)
        return {
            "taskId": COMPLETION_TASK_ID,
            "persisted": False,
            "since": self.since,
            "counts": dict(self.counts),
            "total": total,
            # Superseded completions are the normal life of ghost text, not failures.
            "successRate": None if completed + failed == 0 else completed / (completed + failed),
            "durationP50Ms": p50,
            "durationP95Ms": p95,
            "firstSuggestionP50Ms": first_p50,
            "firstSuggestionP95Ms": first_p95,
            "latencyWindow": self.window,
            "cacheHits": self.cache_hits,
            "modes": dict(self.modes),
            "cancelReasons": dict(self.cancel_reasons),
            "feedback": {event: self.feedback_counts[event] for event in FEEDBACK_EVENTS},
            "acceptRate": None if not shown else accepted / shown,
        }


@dataclass(frozen=True)
class CachedSuggestion:
    text: str
    provider: str
    model: str
    mode: str


class SuggestionCache:
    """A small LRU of finished suggestions that expire ``ttl_s`` after they were stored."""

    def __init__(self, *, size: int = 64, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._clock = clock
        self._items: collections.OrderedDict[Hashable, tuple[float, CachedSuggestion]] = collections.OrderedDict()

    def get(self, key: Hashable) -> CachedSuggestion | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires_at, value = item
        if self._clock() >= expires_at:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: CachedSuggestion) -> None:
        if self.size <= 0 or self.ttl_s <= 0:
            return
        self._items[key] = (self._clock() + self.ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
