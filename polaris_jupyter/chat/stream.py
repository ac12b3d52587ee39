"""Throttled streaming: model text goes out as deltas, at most one update per window.

The first delta of a quiet period goes out at once (low latency); later ones are coalesced
until the window since the previous update has passed; :meth:`close` always flushes the rest.
So a subscriber never gets more than one update per window and the stored text lags the model
by at most one window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["DeltaCoalescer"]


class DeltaCoalescer:
    def __init__(self, window_s: float, flush: Callable[[str, int], None], *, offset: int = 0) -> None:
        """``flush(delta, offset)`` is called on the event loop with the coalesced text; ``offset``
        is where the text starts (a turn continued after a wait goes on after its text)."""
        self.window_s = window_s
        self._flush = flush
        self._buffer: list[str] = []
        self._offset = offset
        self._last_flush = -1e9
        self._timer: asyncio.TimerHandle | None = None
        self.updates = 0

    @property
    def text_length(self) -> int:
        return self._offset + sum(len(b) for b in self._buffer)

    def add(self, text: str) -> None:
        if not text:
            return
        self._buffer.append(text)
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait_s = self._last_flush + self.window_s - loop.time()
        if wait_s <= 0:
            self._emit()
        else:
            self._timer = loop.call_later(wait_s, self._emit)

    def _emit(self) -> None:
        self._timer = None
        if not self._buffer:
            return
        delta = "".join(self._buffer)
        self._buffer.clear()
        offset = self._offset
        self._offset += len(delta)
        self._last_flush = asyncio.get_running_loop().time()
        self.updates += 1
        self._flush(delta, offset)

    def close(self) -> None:
        """Flush what is buffered now (the last delta is never dropped)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._emit()

    def reset(self) -> None:
        """Start again at offset 0 (a retried attempt replaces the text, never appends)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buffer.clear()
        self._offset = 0
