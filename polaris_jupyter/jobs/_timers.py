"""The engine's one timer heap: delays, retries, ttl, wait-point timeouts and cron slots.

One heap and one task instead of a ``call_later`` per run, so that a restart re-arms everything
from the store in one pass and a :class:`~polaris_jupyter.jobs.FakeClock` can drive every timer
in tests. A timer is ``(due_at, ref, kind)``; when due, ``fire(ref, kind)`` decides whether it
still applies (a run may have moved on since it was armed), so timers are never cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable

from polaris_jupyter.jobs._clock import Clock

__all__ = ["TimerHeap"]

log = logging.getLogger("polaris_jupyter.jobs")


class TimerHeap:
    """Timers ordered by due time, fired one by one from a single task."""

    def __init__(self, clock: Clock, fire: Callable[[str, str], Awaitable[None]]) -> None:
        self.clock = clock
        self._fire = fire
        self._heap: list[tuple[float, int, str, str]] = []
        self._counter = 0  # ties keep arming order
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    def add(self, due_at: float, ref: str, kind: str) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (due_at, self._counter, ref, kind))
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="polaris-timers")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            now = self.clock.now()
            while self._heap and self._heap[0][0] <= now:
                _, _, ref, kind = heapq.heappop(self._heap)
                try:
                    await self._fire(ref, kind)
                except Exception:  # one bad timer must not stop the others
                    log.exception("timer %s for %s failed", kind, ref)
            self._wake.clear()
            timeout_s = self._heap[0][0] - self.clock.now() if self._heap else None
            await self.clock.wait(self._wake, timeout_s)
