"""Injectable time source, so retry timing, delays, ttl and cron are testable without sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import time

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock:
    """Wall-clock seconds plus a wait that a fake clock can end early."""

    def now(self) -> float:
        raise NotImplementedError

    async def wait(self, wake: asyncio.Event, timeout_s: float | None) -> None:
        """Return when ``wake`` is set or ``timeout_s`` has passed on this clock."""
        raise NotImplementedError


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()

    async def wait(self, wake: asyncio.Event, timeout_s: float | None) -> None:
        if timeout_s is None:
            await wake.wait()
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), max(timeout_s, 0.0))


class FakeClock(Clock):
    """A clock that only moves when a test calls :meth:`advance`."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
        still: list[tuple[float, asyncio.Future[None]]] = []
        for deadline, fut in self._sleepers:
            if deadline <= self._now:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((deadline, fut))
        self._sleepers = still

    async def wait(self, wake: asyncio.Event, timeout_s: float | None) -> None:
        if wake.is_set():
            return
        waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(wake.wait())}
        if timeout_s is not None:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if timeout_s <= 0:
                fut.set_result(None)
            self._sleepers.append((self._now + timeout_s, fut))
            waiters.add(fut)  # type: ignore[arg-type]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
