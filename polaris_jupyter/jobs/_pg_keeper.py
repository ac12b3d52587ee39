"""What every process on a shared PostgreSQL schema does in the background: heartbeat, lease,
reaping of dead executors, and the sweep for work of processes that died.

- **Heartbeat**: every ``heartbeat_s`` this process stamps its ``workers`` row. A row older
  than ``dead_after_s`` marks its executor dead: the first live process to see it deletes the
  row and resumes the dead executor's DBOS workflows, whose runs count the lost attempt as
  CRASHED and retry elsewhere.
- **Lease** (self-fencing): the same rule seen from inside. When this process has not issued a
  successful heartbeat for ``fence_after_s`` (``dead_after_s`` minus two heartbeats: the others
  may be about to take its runs over; its event loop was blocked, the process was paused, the
  database unreachable), or finds its row reaped, it stops its own running attempts at once
  instead of racing the attempt another executor starts. A stopped attempt writes nothing to
  its run (its row may already carry the next attempt); once the database answers again, each
  run still recorded as this executor's attempt is released (owner cleared, compare-and-set on
  attempt and owner) and dispatched, so whichever worker takes it counts the lost attempt as
  CRASHED and retries it. The process then takes its executor id back and goes on.
- **Sweep** (every ``sweep_s``): delays, retries, wait-point timeouts and ttl expiries due in
  processes that died, queued runs never dispatched, and the schedules table (``_pg_schedules.py``).

What a lease cannot do: interrupt code that does not yield. A fenced attempt stops at its next
``await``. While the event loop itself is stalled (a long synchronous call, a paused or swapped
process) nothing here runs either, and when the loop resumes asyncio does not promise that the
lease check runs before the attempt's next step: after a stall longer than ``dead_after_s`` the
old attempt may run one more step (up to its next ``await``) before it stops. Its writes to the
run row are refused then (the row carries the newer attempt); events, logs and files written in
that step are not. Clocks of the hosts must agree to well within ``dead_after_s`` (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING

from polaris_jupyter.jobs._models import Run, RunStatus
from polaris_jupyter.jobs._rows import row_to_run

if TYPE_CHECKING:
    from polaris_jupyter.jobs._pg_engine import PgEngine
    from polaris_jupyter.jobs._pg_store import PgConnection

__all__ = ["Keeper"]

log = logging.getLogger("polaris_jupyter.jobs.pg")
#: A queued run without a dispatch this long is one whose process died before dispatching it.
_UNDISPATCHED_GRACE_S = 10.0
_RELEASE = (
    "UPDATE runs SET executor_id = NULL, dispatched_at = NULL WHERE id = ? AND status = 'EXECUTING' "
    "AND attempt_count = ? AND executor_id = ?"
)


class Keeper:
    """The background duties of one :class:`PgEngine` (see the module docstring)."""

    def __init__(self, engine: PgEngine) -> None:
        self.engine = engine
        self.fence_after_s = max(engine.dead_after_s - 2 * engine.heartbeat_s, engine.dead_after_s / 2)
        #: Monotonic time at which the last successful heartbeat was issued.
        self.beat_ok_at = time.monotonic()
        #: Runs whose attempts this process stopped, still to release (run id → its run).
        self.fenced: dict[str, Run] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.beat_ok_at = time.monotonic()
        self._tasks = [asyncio.create_task(self._beat_loop(), name="polaris-pg-heartbeat"),
                       asyncio.create_task(self._sweep_loop(), name="polaris-pg-sweep"),
                       asyncio.create_task(self._watch(), name="polaris-pg-lease")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- lease ---------------------------------------------------------------------------------
    async def _watch(self) -> None:
        """Fence as soon as the lease runs out, even while a heartbeat hangs on the database."""
        while True:
            await asyncio.sleep(self.engine.heartbeat_s / 4)
            stale_s = time.monotonic() - self.beat_ok_at
            if stale_s > self.fence_after_s:
                self.fence(f"no heartbeat for {stale_s:.1f}s (limit {self.fence_after_s:.1f}s)")

    def fence(self, reason: str) -> None:
        """Stop every attempt running here: another executor may be taking its run over."""
        engine = self.engine
        for run_id, task in list(engine._tasks.items()):
            if run_id in self.fenced or task.done():
                continue
            run = engine._active.get(run_id)
            if run is None or run.status is not RunStatus.EXECUTING:
                continue
            log.warning("executor %s lost its lease (%s): stopping attempt %d of run %s",
                        engine.executor_id, reason, run.attempt_count, run_id)
            self.fenced[run_id] = run
            task.cancel()

    def is_fenced(self, run_id: str) -> bool:
        return run_id in self.fenced

    async def _release_fenced(self) -> None:
        """Release the fenced runs still recorded as this executor's attempt, and dispatch them."""
        engine = self.engine
        for run_id, run in list(self.fenced.items()):
            if run_id in engine._tasks:
                continue  # its attempt is still unwinding
            released = await engine.store.pg_write(functools.partial(_release, run, engine.executor_id or ""))
            if released:
                await engine.dispatcher.enqueue(run, handback=True)
            del self.fenced[run_id]

    # -- heartbeat, reaping, sweep ---------------------------------------------------------------
    async def _beat_loop(self) -> None:
        """Heartbeat and reaping only: nothing slow runs here, so a long sweep never stalls it."""
        while True:
            try:
                await self.once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("heartbeat failed; retrying", exc_info=True)
            await asyncio.sleep(self.engine.heartbeat_s)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.engine.sweep_s)  # start() just did what a sweep does
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("sweep failed; retrying", exc_info=True)

    async def once(self) -> None:
        """One heartbeat: stamp the row (fence if it was reaped), release fenced runs, reap."""
        engine = self.engine
        issued_at, now_s = time.monotonic(), time.time()
        alive = await engine.store.pg_write(lambda c: self._beat(c, now_s))
        if not alive:
            self.fence("its workers row was reaped by another process")
            await engine.store.pg_write(engine._claim_executor_id)  # the same id back (it is free now)
        self.beat_ok_at = max(self.beat_ok_at, issued_at)
        if self.fenced:
            await self._release_fenced()
        dead = await engine.store.pg_write(
            lambda c: [r["executor_id"] for r in c.execute(
                "DELETE FROM workers WHERE last_seen < ? AND executor_id <> ? RETURNING executor_id",
                (now_s - engine.dead_after_s, engine.executor_id),
            ).fetchall()]
        )
        for executor in dead:
            await engine.dispatcher.recover(executor)

    def _beat(self, c: PgConnection, now_s: float) -> bool:
        return bool(c.execute("UPDATE workers SET last_seen = ? WHERE executor_id = ?",
                              (now_s, self.engine.executor_id)).rowcount)

    async def sweep(self) -> None:
        """Schedules changed elsewhere; due delays, retries and ttl expiries of processes that
        died; queued runs left undispatched (a process died between a claim and its dispatch)."""
        engine = self.engine
        await engine.schedules.reload()
        now = engine.clock.now()
        rows = await engine.store.query(
            "SELECT * FROM runs WHERE (status = 'DELAYED' AND delay_until <= ?) "
            "OR (status = 'REATTEMPTING' AND next_attempt_at <= ?) "
            "OR (status IN ('QUEUED','DELAYED') AND attempt_count = 0 AND ttl_s IS NOT NULL "
            "    AND COALESCE(delay_until, created_at) + ttl_s <= ?) "
            "OR (status = 'QUEUED' AND dispatched_at IS NULL AND waiting_reason IS NULL AND updated_at < ?) "
            "OR (status = 'WAITING' AND waiting_reason IS NOT NULL AND next_attempt_at <= ?) "
            "ORDER BY num LIMIT 500",
            (now, now - engine.sweep_s, now, now - _UNDISPATCHED_GRACE_S, now - engine.sweep_s),
        )
        for row in rows:
            run = row_to_run(row)
            expired = run.expires_at is not None and run.attempt_count == 0 and now >= run.expires_at
            if engine.registry.get(run.task_id) is None and not expired:
                continue  # dispatched by the processes that have its task (_pg_local.py)
            if run.status is RunStatus.QUEUED and (run.expires_at is None or now < run.expires_at):
                engine._pending_dispatch.append(run)
            elif run.status is RunStatus.WAITING:
                await engine._fire(run.id, "wait")
            else:
                await engine._fire(run.id, "ttl")
        await engine._flush_dispatch()  # one commit for every re-dispatch


def _release(run: Run, executor_id: str, c: PgConnection) -> int:
    """Clear the owner of ``run`` if its row still records this executor's attempt."""
    return int(c.execute(_RELEASE, (run.id, run.attempt_count, executor_id)).rowcount)
