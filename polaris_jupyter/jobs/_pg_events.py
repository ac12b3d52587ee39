"""The event bus on PostgreSQL: events of every process, in sequence order, live via LISTEN/NOTIFY.

Numbers are allocated by the store in the writing transaction (``_pg_store.py``), so this bus
never numbers anything itself. Delivery keeps one cursor, the highest sequence number handed to
subscribers: a committed batch of this process's own events that continues the cursor is
delivered at once; anything else (a NOTIFY from another process, a batch after a gap) makes the
bus read the log after the cursor, in order. So subscribers see every event exactly once and in
sequence order, whichever process wrote it, and resume by ``since`` as on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from polaris_jupyter.jobs._events import EventBus
from polaris_jupyter.jobs._models import Event
from polaris_jupyter.jobs._pg_store import PgStore

__all__ = ["PgEventBus"]

log = logging.getLogger("polaris_jupyter.jobs.pg")
_FETCH_LIMIT = 10_000


class PgEventBus(EventBus):
    """Fans out the schema's event log to this process's subscribers, from every writer."""

    def __init__(self, store: PgStore) -> None:
        super().__init__(store)
        self._pg = store
        self._cursor = 0
        self._fetching = False
        self._fetch_again = False
        self._listen_task: asyncio.Task[None] | None = None
        self._fetch_task: asyncio.Task[None] | None = None
        self._final_waiters: dict[str, list[asyncio.Future[None]]] = {}
        #: Called with every delivered event (the engine reacts to cancel requests).
        self.on_event: Callable[[Event], None] | None = None
        self._listeners: list[Callable[[Event], None]] = []

    async def start(self) -> None:
        self._cursor = await self._pg.max_event_seq()
        self._seq = self._cursor
        self._listen_task = asyncio.create_task(self._listen(), name="polaris-pg-listen")

    async def stop(self) -> None:
        for task in (self._listen_task, self._fetch_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._listen_task = self._fetch_task = None

    # -- numbering is the store's: events leave here unnumbered -------------------------------
    def emit(
        self,
        type: str,
        data: dict[str, Any],
        ts: float,
        *,
        run_id: str | None = None,
        conversation_id: str | None = None,
    ) -> Event:
        """Queue an event; ``seq``/``run_seq`` are set when its transaction commits."""
        event = Event(0, type, data, ts, run_id, None, conversation_id)
        self._store.put_event(event)
        return event

    def emit_new_run(
        self, run_id: str, type: str, data: dict[str, Any], ts: float, conversation_id: str | None = None
    ) -> Event:
        return self.emit(type, data, ts, run_id=run_id, conversation_id=conversation_id)

    async def ensure_run_seq(self, run_id: str) -> None:
        return None

    def forget_run(self, run_id: str) -> None:
        return None

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn(event)`` on the loop with every event of the schema, from any process, in
        sequence order (synchronously, so it must be quick; e.g. chat frees a conversation when
        a worker finished its answer, ``chat/remote.py``)."""
        self._listeners.append(fn)

    # -- waiting for a run's end, wherever it executes ----------------------------------------
    def final_waiter(self, run_id: str) -> asyncio.Future[None]:
        """A future resolved by the next final ``run.status`` event of ``run_id``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._final_waiters.setdefault(run_id, []).append(fut)
        return fut

    def drop_waiter(self, run_id: str, fut: asyncio.Future[None]) -> None:
        waiters = self._final_waiters.get(run_id)
        if waiters and fut in waiters:
            waiters.remove(fut)
            if not waiters:
                del self._final_waiters[run_id]

    # -- delivery in sequence order ------------------------------------------------------------
    def _deliver(self, events: list[Event]) -> None:
        """This process's committed batch: deliver it if it continues the cursor, else read."""
        if events and events[0].seq == self._cursor + 1 and not self._fetching:
            self._hand_out(events)
        elif events and events[-1].seq > self._cursor:
            self._schedule_fetch()

    def _hand_out(self, events: list[Event]) -> None:
        fresh: list[Event] = []
        for event in events:
            if event.seq <= self._cursor:
                continue
            fresh.append(event)
            self._cursor = event.seq
            self._seq = max(self._seq, event.seq)
            if event.type == "run.status" and event.run_id and event.data.get("final"):
                for fut in self._final_waiters.pop(event.run_id, []):
                    if not fut.done():
                        fut.set_result(None)
            for hook in (self.on_event, *self._listeners):
                if hook is None:
                    continue
                try:
                    hook(event)
                except Exception:
                    log.exception("event hook failed")
        super()._deliver(fresh)

    def _schedule_fetch(self) -> None:
        if self._fetching:
            self._fetch_again = True
            return
        self._fetching = True
        self._fetch_task = asyncio.create_task(self._fetch(), name="polaris-pg-fetch")

    async def _fetch(self) -> None:
        try:
            while True:
                self._fetch_again = False
                batch = await self._pg.events_since(self._cursor, limit=_FETCH_LIMIT)
                if batch:
                    self._hand_out(batch)
                if len(batch) < _FETCH_LIMIT and not self._fetch_again:
                    break
        except Exception:
            log.exception("reading the event log failed; retrying on the next notification")
        finally:
            self._fetching = False

    async def _listen(self) -> None:
        """LISTEN on the schema's channel; every notification names the newest committed seq."""
        while True:
            try:
                conn = await self._pg.aconnect()
                async with conn:
                    await conn.execute(f'LISTEN "{self._pg.channel}"')
                    self._schedule_fetch()  # whatever was committed before LISTEN took effect
                    async for note in conn.notifies():
                        try:
                            seq = int(note.payload)
                        except ValueError:
                            continue
                        if seq > self._cursor:
                            self._schedule_fetch()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event listener lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)
