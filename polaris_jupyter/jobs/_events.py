"""The live event bus: append-only, globally sequenced, resumable without gaps or duplicates.

Events are numbered when emitted and handed to subscribers only after the store has committed
them, so an event a client has seen is always on disk and a restarted server never reuses its
number. A subscriber that resumes with ``since=N`` first registers for live events, then reads
the stored history after ``N``, then continues live, skipping anything it already yielded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from polaris_jupyter.jobs._models import Event
from polaris_jupyter.jobs._store import SqliteStore

__all__ = ["EventBus", "EventFilter", "SubscriberLagging"]

#: A subscriber that falls this many events behind is dropped; it can resume by sequence number.
MAX_SUBSCRIBER_BACKLOG = 50_000


class SubscriberLagging(Exception):
    """The subscriber did not keep up; reconnect with ``since`` set to the last seq seen."""


@dataclass(frozen=True)
class EventFilter:
    run_id: str | None = None
    conversation_id: str | None = None
    types: frozenset[str] | None = None

    def matches(self, event: Event) -> bool:
        if self.run_id is not None and event.run_id != self.run_id:
            return False
        if self.conversation_id is not None and event.conversation_id != self.conversation_id:
            return False
        return self.types is None or event.type in self.types


class _Subscriber:
    def __init__(self, flt: EventFilter) -> None:
        self.filter = flt
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.lagging = False


class EventBus:
    """Numbers events, persists them through the store, and fans them out once committed."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._seq = 0
        self._run_seq: dict[str, int] = {}
        self._subscribers: set[_Subscriber] = set()
        store.on_events_committed = self._deliver

    async def start(self) -> None:
        self._seq = await self._store.max_event_seq()

    @property
    def last_seq(self) -> int:
        return self._seq

    def forget_run(self, run_id: str) -> None:
        """Drop the per-run counter of a finished run (it is reloaded if the run emits again)."""
        self._run_seq.pop(run_id, None)

    async def ensure_run_seq(self, run_id: str) -> None:
        """Load the per-run counter of a run created by an earlier process."""
        if run_id not in self._run_seq:
            rows = await self._store.query(
                "SELECT COALESCE(MAX(run_seq), 0) AS m FROM events WHERE run_id = ?", (run_id,)
            )
            self._run_seq.setdefault(run_id, int(rows[0]["m"]))

    def emit_new_run(
        self, run_id: str, type: str, data: dict[str, Any], ts: float, conversation_id: str | None = None
    ) -> Event:
        """Emit the first event of a run created in this process (its run_seq is known to be 1)."""
        self._run_seq[run_id] = 0
        return self.emit(type, data, ts, run_id=run_id, conversation_id=conversation_id)

    def emit(
        self,
        type: str,
        data: dict[str, Any],
        ts: float,
        *,
        run_id: str | None = None,
        conversation_id: str | None = None,
    ) -> Event:
        """Append an event. For runs whose counter is not loaded, use :meth:`emit_async`."""
        run_seq = None
        if run_id is not None:
            if run_id not in self._run_seq:
                raise RuntimeError("run counter not loaded; use emit_async")
            self._run_seq[run_id] += 1
            run_seq = self._run_seq[run_id]
        self._seq += 1
        event = Event(self._seq, type, data, ts, run_id, run_seq, conversation_id)
        self._store.put_event(event)
        return event

    async def emit_async(
        self,
        type: str,
        data: dict[str, Any],
        ts: float,
        *,
        run_id: str | None = None,
        conversation_id: str | None = None,
    ) -> Event:
        if run_id is not None:
            await self.ensure_run_seq(run_id)
        return self.emit(type, data, ts, run_id=run_id, conversation_id=conversation_id)

    def _deliver(self, events: list[Event]) -> None:
        for sub in list(self._subscribers):
            if sub.lagging:
                continue
            for event in events:
                if sub.filter.matches(event):
                    sub.queue.put_nowait(event)
            if sub.queue.qsize() > MAX_SUBSCRIBER_BACKLOG:
                sub.lagging = True
                sub.queue.put_nowait(None)

    async def subscribe(
        self, flt: EventFilter | None = None, since: int | None = None
    ) -> AsyncIterator[Event]:
        """Yield matching events with ``seq > since`` (history first), then live ones, forever."""
        sub = _Subscriber(flt or EventFilter())
        self._subscribers.add(sub)
        try:
            last = since if since is not None else self._seq
            if since is not None:
                while True:
                    history = await self._store.events_since(
                        last, run_id=sub.filter.run_id, conversation_id=sub.filter.conversation_id
                    )
                    for event in history:
                        if sub.filter.matches(event):
                            yield event
                        last = event.seq
                    if len(history) < 10_000:
                        break
            while True:
                item = await sub.queue.get()
                if item is None:
                    raise SubscriberLagging(f"subscriber fell behind; resume with since={last}")
                if item.seq <= last:
                    continue
                last = item.seq
                yield item
        finally:
            self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
