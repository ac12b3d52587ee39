"""The engine on PostgreSQL + DBOS: the same API and semantics, runs executing on many processes.

:class:`PgEngine` is the embedded :class:`~polaris_jupyter.jobs.Engine` with its dispatch
replaced: where the embedded engine starts a ready run in its own pool, this one enqueues the
run's DBOS workflow (``_pg_dbos.py``) and executes whatever DBOS hands this process. The run's
attempt, hooks, retry policy, max duration, metadata, logs, checkpoints and events are the
embedded engine's code; the database row is the truth, and every transition a process makes
on a run it does not execute (start, delay due, ttl expiry, cancel) is a row-locked
compare-and-set, so two processes never both start one attempt nor undo each other.

Only runs executing here (and their pending retry) are kept in ``_active``; everything else is
read from the database. Timers (delays, retries, ttl, cron) run on the engine's clock in the
process that set them, and a sweep in every process picks up those of processes that died.
Each process heartbeats a ``workers`` row; one whose row goes stale for ``dead_after_s`` is dead,
and a live one resumes its DBOS workflows, whose runs then count the lost attempt as CRASHED and
retry (or end CRASHED) on whichever worker dequeues them.

Wait points (:class:`~polaris_jupyter.jobs.Suspend`, an approval): the attempt ends in WAITING
in the process that ran it, and its workflow ends. :meth:`PgEngine.resume`, in any process,
releases the run with a row-locked compare-and-set that enqueues its continuation in the same
transaction (``resume_run``), so it goes on exactly once, as the same attempt, on whichever
executor dequeues it; a resume that arrives while the attempt is still on its way to
suspending is kept on the row and applied by the executor right after it wrote WAITING. The
suspension's timeout is a timer in the suspending process and in the sweep of every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

from polaris_jupyter._version import __version__
from polaris_jupyter.jobs._clock import Clock
from polaris_jupyter.jobs._context import RunContext
from polaris_jupyter.jobs._engine import DAY_S, Engine, _Lane
from polaris_jupyter.jobs._failures import call_hook
from polaris_jupyter.jobs._handles import BatchHandle, RunHandle
from polaris_jupyter.jobs._models import Attempt, RetryPolicy, Run, RunNotFound, RunStatus, TriggerOptions
from polaris_jupyter.jobs._pg_claims import ClaimBatcher
from polaris_jupyter.jobs._pg_dbos import DbosDispatcher
from polaris_jupyter.jobs._pg_events import PgEventBus
from polaris_jupyter.jobs._pg_keeper import Keeper
from polaris_jupyter.jobs._pg_local import LocalTasks
from polaris_jupyter.jobs._pg_schedules import PgScheduleManager
from polaris_jupyter.jobs._pg_store import PgConnection, PgStore
from polaris_jupyter.jobs._pg_transitions import (
    GuardRefused,
    advance_run,
    cancel_run,
    claim_key,
    resume_run,
)
from polaris_jupyter.jobs._registry import TaskDef, TaskRegistry
from polaris_jupyter.jobs._rows import row_to_run
from polaris_jupyter.jobs.backends import default_schema

__all__ = ["PgEngine", "default_schema"]

log = logging.getLogger("polaris_jupyter.jobs.pg")
_EXPIRED = {"name": "Expired", "message": "ttl passed before the run started"}
_CANCELED = {"name": "Canceled", "message": "the run was canceled"}
#: The condition of a :meth:`PgEngine.trigger_if` in progress in this task.
_GUARD: ContextVar[Callable[[PgConnection], bool] | None] = ContextVar("polaris_pg_trigger_guard", default=None)


class PgEngine(Engine):
    """Runs tasks as durable jobs in a PostgreSQL schema shared by servers and workers."""

    def __init__(
        self,
        url: str,
        registry: TaskRegistry | None = None,
        *,
        schema: str | None = None,
        executor_id: str | None = None,
        execute_tasks: bool = True,
        pool_size: int = 32,
        clock: Clock | None = None,
        default_retry: RetryPolicy | None = None,
        idempotency_key_ttl_s: float = 30 * DAY_S,
        heartbeat_s: float = 1.0,
        dead_after_s: float = 10.0,
        sweep_s: float = 2.0,
        poll_s: float = 0.1,
        role: str = "engine",
    ) -> None:
        self.schema = schema or default_schema()
        store = PgStore(url, self.schema)
        super().__init__(store, registry, pool_size=pool_size, clock=clock, default_retry=default_retry,
                         idempotency_key_ttl_s=idempotency_key_ttl_s)
        self.store: PgStore = store
        self.schedules: PgScheduleManager = PgScheduleManager(self)
        self.bus: PgEventBus = PgEventBus(store)
        self.bus.on_event = self._on_event
        self.executor_id = executor_id
        self.role = role
        self.execute_tasks = execute_tasks
        self.heartbeat_s, self.dead_after_s, self.sweep_s = heartbeat_s, dead_after_s, sweep_s
        self.dispatcher = DbosDispatcher(
            self, url=url, system_schema=f"{self.schema}_dbos"[:63], app_version=f"polaris-jupyter-{__version__}",
            poll_s=poll_s,
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._accepting = asyncio.Event()
        self._pending_dispatch: list[Run] = []
        self._handback: list[Run] = []
        self._handed_back = False  # stop() has re-enqueued what was handed back (see execute_dispatched)
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self.local = LocalTasks(self)
        self.claims = ClaimBatcher(self)
        self.keeper = Keeper(self)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        self.loop = asyncio.get_running_loop()
        self._handed_back = False
        self._slots = asyncio.Semaphore(self.pool_size)
        self._accepting = asyncio.Event()
        await self.store.open()
        try:
            await self.bus.start()
            self.executor_id = await self.store.pg_write(self._claim_executor_id)
            await self.dispatcher.launch()
        except BaseException:
            await self.bus.stop()
            await self.store.close()
            raise
        self._started = True
        await self._recover()
        self._accepting.set()
        self.timers.start()
        self.keeper.start()
        await self.schedules.start()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Interrupt running attempts and hand their runs back to the queue (uncounted), stop
        DBOS, and leave the ``workers`` table at once so nobody waits for a heartbeat."""
        if not self._started:
            return
        self._stopping = True
        await self.timers.stop()
        await self.keeper.stop()
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        if self._side_tasks:
            await asyncio.wait(list(self._side_tasks), timeout=timeout_s)
        await self.store.commit()
        # DBOS stops dequeuing before the hand-back: a workflow dequeued while stopping is handed
        # back too (execute_dispatched), and re-enqueued runs must not come straight back here
        # (that cycled 5,000 queued runs through a stopping worker, which never exited).
        await self.dispatcher.stop_dequeuing()
        await asyncio.sleep(0)  # the workflows DBOS cancelled while stopping settle first
        handback, self._handback = self._handback, []
        self._handed_back = True
        for run in handback:
            with contextlib.suppress(Exception):
                self.dispatcher.dispatch(run, handback=True)
        with contextlib.suppress(Exception):
            await self.store.commit()  # one transaction for the whole hand-back
        await self.dispatcher.destroy()
        self.store.execute("DELETE FROM workers WHERE executor_id = ?", (self.executor_id,))
        await self.bus.stop()
        await self.store.close()
        self._started = False

    def _claim_executor_id(self, c: PgConnection) -> str:
        """This process's executor id: the given one, or the first free ``<host>-<role>-<n>``
        (free = no row, or a row whose heartbeat is stale), so a restarted worker takes its
        old id back and DBOS recovers what it left."""
        now = time.time()
        tasks = json.dumps(sorted(t.id for t in self.registry.all()) if self.execute_tasks else [])
        upsert = (
            "INSERT INTO workers (executor_id, host, pid, tasks, started_at, last_seen) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (executor_id) DO UPDATE SET host=EXCLUDED.host, pid=EXCLUDED.pid, tasks=EXCLUDED.tasks, "
            "started_at=EXCLUDED.started_at, last_seen=EXCLUDED.last_seen WHERE workers.last_seen < ? RETURNING executor_id"
        )
        host = socket.gethostname()
        if self.executor_id:
            c.execute(upsert.replace(" WHERE workers.last_seen < ?", ""), (self.executor_id, host, os.getpid(), tasks, now, now))
            return self.executor_id
        for n in range(1, 10_000):
            candidate = f"{host}-{self.role}-{n}"
            if c.execute(upsert, (candidate, host, os.getpid(), tasks, now, now, now - self.dead_after_s)).fetchone():
                return candidate
        raise RuntimeError("no free executor id")

    # -- tasks registered while running (a kernel's): _pg_local.py ---------------------------------
    def register(self, definition: TaskDef) -> TaskDef:
        """As embedded; after start the task is local to this process (``_pg_local.py``)."""
        registered = super().register(definition)
        self.local.registered(definition.id)
        return registered

    # -- trigger: the row is committed and its workflow enqueued when this returns ---------------
    async def trigger(self, task_id: str, payload: Any = None, options: TriggerOptions | None = None,
                      **kw: Any) -> RunHandle:
        await self.local.check_servable(task_id)
        handle = await super().trigger(task_id, payload, options, **kw)
        await self._flush_dispatch()
        self._settle(handle.id)
        return handle

    async def batch_trigger(self, task_id: str, items: Sequence[tuple[Any, TriggerOptions | None]]) -> BatchHandle:
        await self.local.check_servable(task_id)
        batch = await super().batch_trigger(task_id, items)
        await self._flush_dispatch()
        for handle in batch.runs:
            self._settle(handle.id)
        return batch

    def _settle(self, run_id: str) -> None:
        """Forget a run this process created but does not execute: the database is its truth."""
        if run_id not in self._tasks and (run := self._active.get(run_id)) is not None:
            if run.status is not RunStatus.REATTEMPTING:
                self._active.pop(run_id, None)

    async def trigger_if(self, guard: Callable[[PgConnection], bool], task_id: str, payload: Any = None,
                         options: TriggerOptions | None = None, **kw: Any) -> RunHandle | None:
        """:meth:`trigger`, creating the run only if ``guard(c)`` returns True in the transaction
        that inserts it (a compare-and-set other processes race on); None when it did not."""
        token = _GUARD.set(guard)
        try:
            return await self.trigger(task_id, payload, options, **kw)
        except GuardRefused:
            return None
        finally:
            _GUARD.reset(token)

    async def _prepare(self, task_id: str, payload: Any, opts: TriggerOptions, parent: RunContext | None) -> tuple[Any, str | None]:
        """The embedded rules, plus the key claimed in the run's own insert (other processes)."""
        run, cached = await super()._prepare(task_id, payload, opts, parent)
        guard = _GUARD.get()
        if run is None or (run.idempotency_key is None and guard is None):
            return run, cached
        try:
            winner = await self.store.pg_write(lambda c: claim_key(c, run, self.clock.now(), guard))
        except GuardRefused:
            if run.idempotency_key is not None and self._idem.get((task_id, run.idempotency_key)) == run.id:
                del self._idem[(task_id, run.idempotency_key)]
            raise
        if winner != run.id:
            self._idem[(task_id, run.idempotency_key)] = winner
            return None, winner
        return run, None

    # -- dispatch -------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Ready runs are dispatched in the store's next commit: with the run's own row when it
        was just triggered (one transaction), else with whatever that commit carries."""
        if not self._started or self._stopping:
            return
        while self._ready:
            run = self._active.get(self._ready.popleft())
            if run is None or run.status not in (RunStatus.QUEUED, RunStatus.REATTEMPTING) or run.waiting_reason:
                continue
            if self.local.held(run):
                continue
            if self.dispatcher.has_queue(run):
                self.dispatcher.dispatch(run)
            else:
                self._pending_dispatch.append(run)  # a task registered after start: its queue first

    async def _flush_dispatch(self) -> None:
        runs, self._pending_dispatch = self._pending_dispatch, []
        for run in runs:
            if self.local.held(run):
                continue
            await self.dispatcher.ensure_queue(run.queue, run.task_id)
            self.dispatcher.dispatch(run)
        await self.store.commit()

    async def _dispatch(self, run: Run) -> None:
        self._pending_dispatch.append(run)
        await self._flush_dispatch()

    # -- wait points: resumed by a compare-and-set on the row, from any process ------------------
    def resume(self, run_id: str) -> bool:
        """Continue a WAITING run wherever it was suspended (see the module docstring); the
        row-locked resume is committed by an owned task (:meth:`resume_waiting` awaits it).
        True: requested (the row decides whether anything was waiting)."""
        self._own(self.resume_waiting(run_id), f"polaris-resume-{run_id}")
        return True

    async def resume_waiting(self, run_id: str) -> str:
        """:meth:`resume`, awaited: ``resumed``, ``requested`` (still executing towards its
        suspension: it goes on once suspended), ``already``, ``final``, ``missing``, ``not-waiting``."""
        return await self._wake(run_id, "resume")

    async def _wake(self, run_id: str, cause: str) -> str:
        enqueue = self._enqueue_continuation
        outcome, _row = await self.store.pg_write(lambda c: resume_run(c, run_id, self.clock.now(), enqueue, cause=cause))
        return str(outcome)

    def _enqueue_continuation(self, c: PgConnection, row: Any) -> None:
        self.dispatcher.enqueue_continuation(row_to_run(row))

    def _own(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_done)

    def _side_done(self, task: asyncio.Task[Any]) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    # -- execution (called by the DBOS workflow, on this engine's loop) --------------------------
    async def execute_dispatched(self, run_id: str) -> str:
        """Claim ``run_id`` and run its next attempt here; what happened, for DBOS's record."""
        await self._accepting.wait()
        assert self._slots is not None
        async with self._slots:
            if self._stopping:
                stored = await self.store.get_run(run_id)
                if stored is not None and (stored.status in (RunStatus.QUEUED, RunStatus.REATTEMPTING)
                                           or (stored.status is RunStatus.WAITING and not stored.waiting_reason)):
                    if not self._handed_back:
                        self._handback.append(stored)
                    elif self.dispatcher.can_enqueue:  # after the hand-back went out: follow it at once
                        self.dispatcher.dispatch(stored, handback=True)
                        await self.store.commit()
                    else:
                        log.warning("run %s reached this stopping process after it stopped enqueuing: it stays "
                                    "QUEUED until a process recovers this executor's workflows", run_id)
                return "handed back"
            outcome, row = await self.claims.claim(run_id)
            if row is None:
                return str(outcome)
            run = row_to_run(row)
            if outcome == "expired":
                self._finish(run, RunStatus.EXPIRED, error=dict(_EXPIRED))
                await self.store.commit()
                return outcome
            if outcome in ("crashed", "restart"):
                now = self.clock.now()
                lost = (f"the worker {row['executor_id']} died" if row["executor_id"]
                        else "its worker lost its lease (heartbeat) and stopped it")  # released by _pg_keeper
                error = {"name": "Crashed", "message": f"{lost} during attempt {run.attempt_count}"}
                self.store.put_attempt(Attempt(run.id, run.attempt_count, RunStatus.CRASHED.value, run.updated_at, now, error))
                run.error = error
                if outcome == "crashed":
                    self._finish(run, RunStatus.CRASHED, error=error)
                    await self.store.commit()
                    return outcome
                run.status = RunStatus.REATTEMPTING
                self._put_status(run, extra={"recovered": True})
            self._active[run.id] = run
            self._executing += 1
            task = asyncio.create_task(self._execute(run, _Lane(None)), name=f"polaris-run-{run.id}")
            self._tasks[run.id] = task
            await asyncio.shield(task)
            await self.store.commit()
            if run.status is RunStatus.WAITING:  # a resume may have come while it was getting there
                await self._wake(run.id, "suspended")
            return run.status.value

    def _finish(self, run: Run, status: RunStatus, *, output: Any = None, error: dict[str, Any] | None = None) -> None:
        """As embedded, except for an attempt this process fenced (``_pg_keeper.py``): its run
        may be another executor's now, so nothing of it is written here."""
        if self.keeper.is_fenced(run.id):
            self._active.pop(run.id, None)
            self._cancel_requested.discard(run.id)
            return
        super()._finish(run, status, output=output, error=error)

    async def _failed(self, run: Run, definition: TaskDef, ctx: RunContext, exc: Exception) -> None:
        if self.keeper.is_fenced(run.id):  # a task that turned the cancel into an error
            self._finish(run, RunStatus.CRASHED)
            return
        await super()._failed(run, definition, ctx, exc)

    def _release(self, run: Run, lane: _Lane) -> None:
        self._executing -= 1
        self._tasks.pop(run.id, None)
        if run.status is not RunStatus.REATTEMPTING:
            self._active.pop(run.id, None)

    def _interrupted(self, run: Run, attempt: Attempt) -> None:
        """Graceful stop: the attempt does not count and the run goes back to the queue."""
        now = self.clock.now()
        self._end_attempt(run, "INTERRUPTED", now, None)
        self.store.execute(
            "UPDATE runs SET status = 'QUEUED', attempt_count = attempt_count - 1, executor_id = NULL, "
            "dispatched_at = NULL, updated_at = ? WHERE id = ? AND status = 'EXECUTING' AND attempt_count = ? "
            "AND executor_id = ?",
            (now, run.id, run.attempt_count, self.executor_id),
        )
        run.attempt_count -= 1
        run.status = RunStatus.QUEUED
        self._emit_run_event(run, "run.status", self._status_data(run) | {"handedBack": self.executor_id})
        self._handback.append(run)

    # -- timers: every transition is a compare-and-set on the row --------------------------------
    async def _fire(self, ref: str, kind: str) -> None:
        if kind == "cron":
            schedule = self.schedules.get(ref)
            if schedule is not None and schedule.next_slot is not None and schedule.next_slot > self.clock.now():
                return  # the timer of an earlier arming (the reload re-armed it): the current one is due later
            await self.schedules.fire(ref)
            return
        if kind == "wait":  # a suspension's timeout: the task sees the deadline and decides
            await self._wake(ref, "due")
            return
        outcome, row = await self.store.pg_write(lambda c: advance_run(c, ref, self.clock.now()))
        if row is None:
            return
        run = self._active.get(ref) if outcome == "retry" else None
        run = run or row_to_run(row)
        if outcome == "expired":
            self._finish(run, RunStatus.EXPIRED, error=dict(_EXPIRED))
            await self.store.commit()
            await self.dispatcher.cancel(run)
        elif outcome == "queued":
            run.status = RunStatus.QUEUED
            run.updated_at = self.clock.now()
            self._put_status(run)
            await self._dispatch(run)
        elif outcome == "retry":
            if ref not in self._tasks:
                self._active.pop(ref, None)
            await self._dispatch(run)

    async def _recover(self) -> None:
        """Re-arm the timers of unfinished runs and dispatch queued runs never enqueued.
        EXECUTING runs are DBOS's: it re-runs this executor's own workflows at launch, and the
        keeper resumes those of dead executors."""
        rows = await self.store.query(
            "SELECT * FROM runs WHERE status IN ('QUEUED','DELAYED','REATTEMPTING') "
            "OR (status = 'WAITING' AND waiting_reason IS NOT NULL AND next_attempt_at IS NOT NULL) ORDER BY num"
        )
        now = self.clock.now()
        for row in rows:
            run = row_to_run(row)
            if run.expires_at is not None and run.attempt_count == 0:
                self.timers.add(run.expires_at, run.id, "ttl")
            if self.registry.get(run.task_id) is None:
                continue  # dispatched by the processes that have its task (a kernel's: when it claims it)
            if run.status is RunStatus.WAITING and run.next_attempt_at is not None:
                self.timers.add(run.next_attempt_at, run.id, "wait")
            elif run.status is RunStatus.DELAYED and run.delay_until is not None:
                self.timers.add(run.delay_until, run.id, "delay")
            elif run.status is RunStatus.REATTEMPTING:
                self.timers.add(run.next_attempt_at or now, run.id, "retry")
            elif row["dispatched_at"] is None and not run.waiting_reason:
                self._pending_dispatch.append(run)
        await self._flush_dispatch()

    # -- cancel, wait, drain, events ----------------------------------------------------------
    async def cancel(self, run_id: str, wait_s: float = 10.0) -> Run:
        """Cancel a run wherever it is: here, queued (a compare-and-set), or executing on
        another process (a ``run.cancel_requested`` event its executor acts on)."""
        if run_id in self._tasks:
            return await super().cancel(run_id, wait_s)
        outcome, row = await self.store.pg_write(lambda c: cancel_run(c, run_id, self.clock.now()))
        if row is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        run = row_to_run(row)
        if outcome == "canceled":
            if run.status is RunStatus.WAITING and (definition := self.registry.get(run.task_id)) is not None:
                # Suspended half way through an attempt: its on_cancel cleans up what it holds (as embedded)
                await call_hook(definition.on_cancel, run.payload, RunContext(self, run, run.attempt_count))
            self._finish(self._active.get(run_id) or run, RunStatus.CANCELED, error=dict(_CANCELED))
            await self.store.commit()
            await self.dispatcher.cancel(run)
            return await self.get_run(run_id)
        if outcome == "executing":
            self.bus.emit("run.cancel_requested", {"by": self.executor_id}, self.clock.now(), run_id=run_id)
            await self.store.commit()
            with contextlib.suppress(TimeoutError):
                return await self.wait_for(run_id, timeout_s=wait_s)
            return await self.get_run(run_id)
        return run

    def _on_event(self, event: Any) -> None:
        if event.type == "run.cancel_requested" and event.run_id in self._tasks:
            self._own(self.cancel(event.run_id), f"polaris-cancel-{event.run_id}")

    async def wait_for(self, run_id: str, timeout_s: float | None = None) -> Run:
        """Wait until the run is final, wherever it executes (its final status event)."""
        fut = self.bus.final_waiter(run_id)
        try:
            run = await self.get_run(run_id)
            if run.status.is_final:
                return run
            await asyncio.wait_for(fut, timeout_s)
        finally:
            self.bus.drop_waiter(run_id, fut)
        return await self.get_run(run_id)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until no run of this schema is queued or executing, on any process."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            await self._flush_dispatch()
            rows = await self.store.query(
                "SELECT COUNT(*) AS n FROM runs WHERE status IN ('QUEUED','EXECUTING','WAITING') AND waiting_reason IS NULL"
            )
            if int(rows[0]["n"]) == 0 and self._executing == 0:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"engine still busy after {timeout_s}s: {rows[0]['n']} queued or executing")
            await asyncio.sleep(0.02)

    def emit(self, type: str, data: dict[str, Any], *, run_id: str | None = None,
             conversation_id: str | None = None) -> None:
        """As the embedded engine, but on the run's stream even when it executes elsewhere."""
        run = self._active.get(run_id) if run_id is not None else None
        if run is not None:
            self._emit_run_event(run, type, data, conversation_id=conversation_id)
        else:
            self.bus.emit(type, data, self.clock.now(), run_id=run_id, conversation_id=conversation_id)
