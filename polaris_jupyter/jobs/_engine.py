"""The job engine: trigger, queue, execute, retry, cancel, replay, recover.

One engine per Jupyter server (or per kernel when no server is reachable). Runs live in the
store; the engine keeps only unfinished runs in memory. Dispatch is a FIFO of ready runs bounded
by the global pool size and by per-queue (and per-concurrency-key) lanes. Timers (delays,
retries, ttl, cron) sit in one heap driven by an injectable clock.

Wait points (Trigger.dev's waitpoint tokens, DESIGN §10): a task that must wait for something
outside it (a user's approval) saves a checkpoint and raises :class:`Suspend`. The attempt then
ends in WAITING and releases its worker slot and lane; the run stays in memory and on disk as
unfinished. :meth:`Engine.resume` (or the suspension's timeout, a timer like a retry's, its
deadline kept in ``next_attempt_at`` so a restart re-arms it) puts it back in the ready queue;
it shows WAITING until a slot is free, then continues as the same attempt. A resume that
arrives while the attempt is still on its way to suspending is remembered and applied when it
gets there, so no decision is lost. After a restart WAITING runs are loaded but not started:
whoever owns the wait point resumes them (the approvals service does, for decided approvals).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polaris_jupyter.jobs._admission import new_run, scoped_key
from polaris_jupyter.jobs._clock import Clock, SystemClock
from polaris_jupyter.jobs._context import RunContext
from polaris_jupyter.jobs._events import EventBus
from polaris_jupyter.jobs._failures import call_hook, error_dict, is_retryable, retry_delay_s
from polaris_jupyter.jobs._handles import BatchHandle, RunHandle, RunResult
from polaris_jupyter.jobs._models import (
    KEY_RELEASING_STATUSES,
    Attempt,
    InvalidInput,
    RetryPolicy,
    Run,
    RunNotFound,
    RunStatus,
    Suspend,
    TaskNotFound,
    TriggerOptions,
    new_id,
)
from polaris_jupyter.jobs._options import MAX_PAYLOAD_BYTES, check_json_size, validate_tags
from polaris_jupyter.jobs._registry import TaskDef, TaskRegistry, default_registry
from polaris_jupyter.jobs._store import SqliteStore
from polaris_jupyter.jobs._timers import TimerHeap

__all__ = ["MAX_BATCH_ITEMS", "Engine"]

MAX_BATCH_ITEMS = 1000
DAY_S = 86400.0
_UNFINISHED = (RunStatus.QUEUED, RunStatus.DELAYED, RunStatus.EXECUTING, RunStatus.REATTEMPTING, RunStatus.WAITING)
#: Statuses the dispatcher starts (a WAITING run too, once :meth:`Engine.resume` released it).
_DISPATCHABLE = (RunStatus.QUEUED, RunStatus.REATTEMPTING)
log = logging.getLogger("polaris_jupyter.jobs")
#: ``handler(original_run, resume)`` → the new run's handle (see :meth:`Engine.set_replay_handler`).
ReplayHandler = Callable[[Run, bool], Awaitable["RunHandle"]]


@dataclass
class _Lane:
    limit: int | None
    running: int = 0
    waiting: deque[str] = field(default_factory=deque)


class Engine:
    """Runs tasks as durable background jobs with Trigger.dev's semantics."""

    def __init__(
        self,
        store: SqliteStore | str | Path,
        registry: TaskRegistry | None = None,
        *,
        pool_size: int = 32,
        clock: Clock | None = None,
        default_retry: RetryPolicy | None = None,
        idempotency_key_ttl_s: float = 30 * DAY_S,
    ) -> None:
        self.store = store if isinstance(store, SqliteStore) else SqliteStore(store)
        self.registry = registry or default_registry
        self.pool_size = max(1, pool_size)
        self.clock = clock or SystemClock()
        self.default_retry = default_retry or RetryPolicy()
        self.idempotency_key_ttl_s = idempotency_key_ttl_s
        self.bus = EventBus(self.store)
        self._active: dict[str, Run] = {}
        self._attempts: dict[str, Attempt] = {}
        self._ready: deque[str] = deque()
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._executing = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: set[str] = set()
        #: WAITING runs released by :meth:`resume` (they may start), and EXECUTING runs resumed
        #: before they reached their suspension (they are released as soon as they suspend).
        self._resumed: set[str] = set()
        self._resume_early: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[Run]]] = {}
        self._idem: dict[tuple[str, str], str] = {}
        #: Tasks whose host went away (a kernel): id → (why runs wait, last definition seen).
        self._absent: dict[str, tuple[str, TaskDef | None]] = {}
        self.timers = TimerHeap(self.clock, self._fire)
        self._started = False
        self._stopping = False
        self._replay_handlers: dict[str, ReplayHandler] = {}
        from polaris_jupyter.jobs._schedules import ScheduleManager

        self.schedules = ScheduleManager(self)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        await self.store.open()
        await self.bus.start()
        self._started = True
        await self._recover()
        self.timers.start()
        await self.schedules.start()

    @property
    def stopping(self) -> bool:
        """The engine is stopping: a cancelled attempt is interrupted (resumed after restart),
        not canceled, so a task must not treat its CancelledError as the user's cancel."""
        return self._stopping

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop timers, interrupt running attempts (they resume after restart), close the store."""
        if not self._started:
            return
        self._stopping = True
        await self.timers.stop()
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        await self.store.close()
        self._started = False

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until nothing is queued or executing (delayed runs and pending retries may remain)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._executing or any(self._runnable(r) for r in self._ready):
            if loop.time() > deadline:
                raise TimeoutError(f"engine still busy after {timeout_s}s: {self._executing} executing")
            await asyncio.sleep(0.002)
        await self.store.flush()

    def _runnable(self, run_id: str) -> bool:
        run = self._active.get(run_id)
        return run is not None and (run.status in _DISPATCHABLE or run_id in self._resumed)

    # -- tasks -------------------------------------------------------------------------------
    def register(self, definition: TaskDef) -> TaskDef:
        """Add a task at run time and start any runs that were waiting for it."""
        self.registry.add(definition)
        self._absent.pop(definition.id, None)
        waiting = [
            r for r in self._active.values()
            if r.task_id == definition.id and r.waiting_reason
            and (r.status is not RunStatus.WAITING or r.id in self._resumed)  # not a wait point's reason
        ]
        for run in waiting:
            run.waiting_reason = None
            self.store.put_run(run)
            if run.status in _DISPATCHABLE or run.id in self._resumed:
                self._ready.append(run.id)
        self._pump()
        return definition

    def unregister(self, task_id: str, reason: str) -> None:
        """Remove a task (e.g. its kernel is gone); its queued runs, and runs triggered from
        now on, wait with ``reason`` until the task is registered again."""
        definition = self.registry.get(task_id)
        self.registry.remove(task_id)
        self._absent[task_id] = (reason, definition)
        for run in self._active.values():
            if run.task_id == task_id and run.status in (RunStatus.QUEUED, RunStatus.DELAYED, RunStatus.REATTEMPTING):
                run.waiting_reason = reason
                self.store.put_run(run)

    def retry_policy(self, task_id: str) -> RetryPolicy:
        definition = self.registry.get(task_id)
        return (definition.retry if definition and definition.retry else None) or self.default_retry

    # -- trigger -----------------------------------------------------------------------------
    async def trigger(
        self,
        task_id: str,
        payload: Any = None,
        options: TriggerOptions | None = None,
        *,
        parent: RunContext | None = None,
        replayed_from: str | None = None,
        checkpoints: dict[str, Any] | None = None,
        schedule_id: str | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> RunHandle:
        """Create a run; it is on disk when this returns. Same idempotency key → same run.

        ``before_commit`` queues extra writes that must land in the same transaction as the run
        (a schedule's last fired slot, a chat message pointing at the run).
        """
        self._check_started()
        opts = options or TriggerOptions()
        run, cached = await self._prepare(task_id, payload, opts, parent)
        if cached is not None:
            if before_commit is not None:
                before_commit()
                await self.store.commit()
            return RunHandle(self, cached, is_cached=True)
        run.replayed_from = replayed_from
        run.schedule_id = schedule_id
        run.checkpoints = dict(checkpoints or {})
        self._insert(run)
        if before_commit is not None:
            before_commit()
        await self.store.commit()
        return RunHandle(self, run.id)

    async def batch_trigger(
        self, task_id: str, items: Sequence[tuple[Any, TriggerOptions | None]]
    ) -> BatchHandle:
        """Trigger up to 1,000 runs of one task in one round trip and one commit."""
        self._check_started()
        if not items:
            raise InvalidInput("a batch needs at least one item")
        if len(items) > MAX_BATCH_ITEMS:
            raise InvalidInput(f"a batch holds at most {MAX_BATCH_ITEMS} items, got {len(items)}")
        batch_id = new_id("batch")
        prepared: list[tuple[Run | None, str | None]] = []
        for payload, opts in items:
            prepared.append(await self._prepare(task_id, payload, opts or TriggerOptions(), None))
        handles: list[RunHandle] = []
        for run, cached in prepared:
            if cached is not None:
                handles.append(RunHandle(self, cached, is_cached=True))
                continue
            assert run is not None
            run.batch_id = batch_id
            self._insert(run)
            handles.append(RunHandle(self, run.id))
        await self.store.commit()
        return BatchHandle(batch_id, handles)

    async def trigger_and_wait(
        self, task_id: str, payload: Any = None, options: TriggerOptions | None = None
    ) -> RunResult:
        handle = await self.trigger(task_id, payload, options)
        return await handle.result()

    async def _prepare(
        self, task_id: str, payload: Any, opts: TriggerOptions, parent: RunContext | None
    ) -> tuple[Any, str | None]:
        definition = self.registry.get(task_id)
        waiting_reason = None
        if definition is None and task_id in self._absent:
            waiting_reason, definition = self._absent[task_id]
        if definition is None:
            raise TaskNotFound(f"no task with id {task_id!r}; known tasks: {', '.join(sorted(t.id for t in self.registry.all())) or 'none'}")
        check_json_size(payload, "payload", MAX_PAYLOAD_BYTES)
        tags = validate_tags(opts.tags)
        key = opts.idempotency_key
        if key is not None:
            key = scoped_key(key, opts.idempotency_scope, parent.run_id if parent else None,
                             parent.attempt if parent else None)
            cached = await self._find_idempotent(task_id, key)
            if cached is not None:
                return None, cached
        run = new_run(
            definition, payload, opts, now=self.clock.now(), policy=self.retry_policy(task_id), tags=tags, key=key,
            key_ttl_s=self.idempotency_key_ttl_s, parent_run_id=parent.run_id if parent else None,
            waiting_reason=waiting_reason,
        )
        if key is not None:
            again = self._idem.get((task_id, key))  # a concurrent trigger may have won meanwhile
            if again is not None and again in self._active:
                return None, again
            self._idem[(task_id, key)] = run.id
        return run, None

    async def _find_idempotent(self, task_id: str, key: str) -> str | None:
        run_id = self._idem.get((task_id, key))
        if run_id is not None and run_id in self._active:
            return run_id
        rows = await self.store.query(
            "SELECT id FROM runs WHERE task_id = ? AND idempotency_key = ? AND idempotency_expires_at > ? "
            f"AND status NOT IN ({','.join('?' * len(KEY_RELEASING_STATUSES))}) ORDER BY num DESC LIMIT 1",
            (task_id, key, self.clock.now(), *[s.value for s in KEY_RELEASING_STATUSES]),
        )
        return rows[0]["id"] if rows else None

    def _insert(self, run: Run) -> None:
        self._active[run.id] = run
        self.store.put_run(run)
        self.bus.emit_new_run(
            run.id, "run.status", self._status_data(run), run.created_at, conversation_id=run.conversation_id
        )
        self._admit(run)

    def _admit(self, run: Run) -> None:
        if run.status is RunStatus.DELAYED and run.delay_until is not None:
            self.timers.add(run.delay_until, run.id, "delay")
        else:
            self._ready.append(run.id)
        if run.expires_at is not None:
            self.timers.add(run.expires_at, run.id, "ttl")
        self._pump()

    # -- dispatch ----------------------------------------------------------------------------
    def _lane(self, run: Run) -> _Lane:
        key = (run.queue, run.concurrency_key or "")
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(self.registry.queue(run.queue).concurrency_limit)
        return lane

    def _pump(self) -> None:
        if self._stopping or not self._started:
            return
        while self._ready and self._executing < self.pool_size:
            run = self._active.get(self._ready.popleft())
            if run is None or (run.status not in _DISPATCHABLE and run.id not in self._resumed):
                continue
            if run.waiting_reason is not None or self.registry.get(run.task_id) is None:
                if run.waiting_reason is None:
                    absent = self._absent.get(run.task_id)
                    run.waiting_reason = absent[0] if absent else f"task {run.task_id!r} is not registered in this server"
                    self.store.put_run(run)
                continue
            expires = run.expires_at
            if run.attempt_count == 0 and expires is not None and self.clock.now() >= expires:
                self._finish(run, RunStatus.EXPIRED, error={"name": "Expired", "message": "ttl passed before the run started"})
                continue
            lane = self._lane(run)
            if lane.limit is not None and lane.running >= lane.limit:
                lane.waiting.append(run.id)
                continue
            lane.running += 1
            self._executing += 1
            self._tasks[run.id] = asyncio.create_task(self._execute(run, lane), name=f"polaris-run-{run.id}")

    def _release(self, run: Run, lane: _Lane) -> None:
        lane.running -= 1
        self._executing -= 1
        self._tasks.pop(run.id, None)
        if lane.waiting:
            self._ready.appendleft(lane.waiting.popleft())
        self._pump()

    async def _execute(self, run: Run, lane: _Lane) -> None:
        definition = self.registry.get(run.task_id)
        assert definition is not None
        now = self.clock.now()
        continuing = run.status is RunStatus.WAITING  # a resumed wait: the same attempt goes on
        if continuing:
            self._resumed.discard(run.id)
            run.waiting_reason = None
        else:
            run.attempt_count += 1
        attempt = Attempt(run.id, run.attempt_count, RunStatus.EXECUTING.value, now)
        self._attempts[run.id] = attempt
        run.status = RunStatus.EXECUTING
        run.started_at = run.started_at or now
        run.next_attempt_at = None
        run.updated_at = now
        # The attempt row is written when the attempt ends; while it runs, the run row (status
        # EXECUTING, attempt_count) is what recovery needs.
        self._put_status(run)
        ctx = RunContext(self, run, attempt.number)
        timeout_cm: asyncio.Timeout | None = None
        try:
            if attempt.number == 1 and not continuing:
                await call_hook(definition.on_start, run.payload, ctx)
            if run.max_duration_s:
                timeout_cm = asyncio.timeout(run.max_duration_s)
                async with timeout_cm:
                    output = await definition.fn(run.payload, ctx)
            else:
                output = await definition.fn(run.payload, ctx)
            if run.id in self._cancel_requested:
                raise asyncio.CancelledError
            check_json_size(output, "task output", 10 * MAX_PAYLOAD_BYTES)
        except Suspend as wait:
            if run.id in self._cancel_requested:
                await call_hook(definition.on_cancel, run.payload, ctx)
                self._finish(run, RunStatus.CANCELED, error={"name": "Canceled", "message": "the run was canceled"})
            else:
                self._suspend(run, wait)
        except asyncio.CancelledError:
            if run.id in self._cancel_requested:
                await call_hook(definition.on_cancel, run.payload, ctx)
                self._finish(run, RunStatus.CANCELED, error={"name": "Canceled", "message": "the run was canceled"})
            elif self._stopping:
                self._interrupted(run, attempt)
            else:
                self._finish(run, RunStatus.CRASHED, error={"name": "Cancelled", "message": "the attempt was cancelled unexpectedly"})
        except TimeoutError as exc:
            if timeout_cm is not None and timeout_cm.expired():
                message = f"exceeded max duration of {run.max_duration_s}s"
                self._finish(run, RunStatus.TIMED_OUT, error={"name": "MaxDurationExceeded", "message": message})
            else:
                await self._failed(run, definition, ctx, exc)
        except Exception as exc:
            await self._failed(run, definition, ctx, exc)
        else:
            await call_hook(definition.on_success, run.payload, output, ctx)
            self._finish(run, RunStatus.COMPLETED, output=output)
        finally:
            self._release(run, lane)

    async def _failed(self, run: Run, definition: TaskDef, ctx: RunContext, exc: Exception) -> None:
        error = error_dict(exc)
        log.info("run %s attempt %d failed: %s", run.id, run.attempt_count, error["message"])
        if is_retryable(exc) and run.attempt_count < run.max_attempts:
            delay_s = retry_delay_s(exc, self.retry_policy(run.task_id).delay_s(run.attempt_count))
            now = self.clock.now()
            self._end_attempt(run, RunStatus.FAILED.value, now, error)
            run.status = RunStatus.REATTEMPTING
            run.error = error
            run.next_attempt_at = now + delay_s
            run.updated_at = now
            self._put_status(run, extra={"nextAttemptAt": run.next_attempt_at, "delayS": delay_s})
            self.timers.add(run.next_attempt_at, run.id, "retry")
            return
        await call_hook(definition.on_failure, run.payload, exc, ctx)
        self._finish(run, RunStatus.FAILED, error=error)

    def _suspend(self, run: Run, wait: Suspend) -> None:
        """The attempt reached a wait point: WAITING, its slot is released by the caller."""
        now = self.clock.now()
        self._end_attempt(run, RunStatus.WAITING.value, now, None)
        run.status = RunStatus.WAITING
        run.waiting_reason = wait.reason
        run.next_attempt_at = None if wait.timeout_s is None else now + max(0.0, wait.timeout_s)
        run.updated_at = now
        self._put_status(run)
        if run.id in self._resume_early:  # decided while it was getting here
            self._resume_early.discard(run.id)
            self._release_waiting(run)
        elif run.next_attempt_at is not None:
            self.timers.add(run.next_attempt_at, run.id, "wait")

    def _release_waiting(self, run: Run) -> None:
        if run.id not in self._resumed:
            self._resumed.add(run.id)
            if run.waiting_reason is not None:  # the dispatcher holds runs that carry a reason
                run.waiting_reason = None
                self.store.put_run(run)
            self._ready.append(run.id)

    def resume(self, run_id: str) -> bool:
        """Continue a WAITING run (see :class:`Suspend`): it starts again as soon as a worker
        slot is free. A run still executing towards its suspension is resumed when it gets
        there. False when the run is not waiting (final, unknown, or never suspending)."""
        run = self._active.get(run_id)
        if run is None:
            return False
        if run.status is RunStatus.WAITING:
            self._release_waiting(run)
            self._pump()
            return True
        if run.status is RunStatus.EXECUTING:
            self._resume_early.add(run_id)
            return True
        return False

    def _interrupted(self, run: Run, attempt: Attempt) -> None:
        """Server shutdown: the attempt does not count; the run starts again after restart."""
        self._end_attempt(run, "INTERRUPTED", self.clock.now(), None)
        run.attempt_count -= 1
        run.status = RunStatus.QUEUED
        run.waiting_reason = "interrupted by server shutdown; resumes when the server restarts"
        self.store.put_run(run)

    def _end_attempt(self, run: Run, status: str, now: float, error: dict[str, Any] | None) -> None:
        attempt = self._attempts.pop(run.id, None)
        if attempt is not None:
            attempt.status, attempt.finished_at, attempt.error = status, now, error
            self.store.put_attempt(attempt)

    def _finish(
        self, run: Run, status: RunStatus, *, output: Any = None, error: dict[str, Any] | None = None
    ) -> None:
        now = self.clock.now()
        self._end_attempt(run, status.value, now, error)
        run.status = status
        run.output = output
        run.error = error
        run.finished_at = now
        run.updated_at = now
        run.next_attempt_at = None
        run.waiting_reason = None
        self._put_status(run)
        self._active.pop(run.id, None)
        self._cancel_requested.discard(run.id)
        self._resumed.discard(run.id)
        self._resume_early.discard(run.id)
        if run.idempotency_key and status in KEY_RELEASING_STATUSES:
            self._idem.pop((run.task_id, run.idempotency_key), None)
        for fut in self._waiters.pop(run.id, []):
            if not fut.done():
                fut.set_result(run)
        self.bus.forget_run(run.id)

    # -- status, metadata, logs, events ------------------------------------------------------
    def _status_data(self, run: Run) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": run.status.value,
            "final": run.status.is_final,  # so no client keeps its own copy of the final set
            "attempt": run.attempt_count,
            "taskId": run.task_id,
        }
        if run.error is not None and run.status is not RunStatus.COMPLETED:
            data["error"] = {"name": run.error.get("name"), "message": run.error.get("message")}
        if run.status is RunStatus.WAITING:
            data["waitingReason"] = run.waiting_reason
            data["resumeBy"] = run.next_attempt_at
        if run.status is RunStatus.COMPLETED and run.output is not None:
            small = isinstance(run.output, (bool, int, float)) or len(json.dumps(run.output, default=str)) < 4096
            data["output"] = run.output if small else "(large output: see the run)"
        return data

    def _put_status(self, run: Run, extra: dict[str, Any] | None = None) -> None:
        self.store.put_run(run)
        data = self._status_data(run)
        if extra:
            data.update(extra)
        self._emit_run_event(run, "run.status", data)

    def _emit_run_event(
        self, run: Run, type: str, data: dict[str, Any], *, conversation_id: str | None = None
    ) -> None:
        self.bus.emit(
            type,
            data,
            self.clock.now(),
            run_id=run.id,
            conversation_id=conversation_id or run.conversation_id,
        )

    def emit(
        self, type: str, data: dict[str, Any], *, run_id: str | None = None, conversation_id: str | None = None
    ) -> None:
        """Emit an event from outside a task (a cancel request, a revert): on the stream of run
        ``run_id`` while that run is unfinished, else as a plain event (still delivered to the
        ``conversation_id`` filter). Inside a task, use ``ctx.emit``."""
        run = self._active.get(run_id) if run_id is not None else None
        if run is not None:
            self._emit_run_event(run, type, data, conversation_id=conversation_id)
        else:
            self.bus.emit(type, data, self.clock.now(), conversation_id=conversation_id)

    def _metadata_changed(self, run: Run) -> None:
        run.updated_at = self.clock.now()
        self.store.put_run(run)
        self._emit_run_event(run, "run.metadata", {"metadata": run.metadata})

    def _log(self, run: Run, attempt: int, level: str, message: str, data: Any) -> None:
        now = self.clock.now()
        self.store.put_log(run.id, attempt, now, level, message, data)
        event: dict[str, Any] = {"level": level, "message": message, "attempt": attempt}
        if data is not None:
            event["data"] = data
        self._emit_run_event(run, "run.log", event)

    async def _persist_now(self, run: Run) -> None:
        run.updated_at = self.clock.now()
        self.store.put_run(run)
        await self.store.commit()

    # -- cancel / replay / wait ------------------------------------------------------------------
    async def cancel(self, run_id: str, wait_s: float = 10.0) -> Run:
        """Cancel a run that is not final; a running attempt is really cancelled (awaited)."""
        run = self._active.get(run_id)
        if run is None:
            stored = await self.store.get_run(run_id)
            if stored is None:
                raise RunNotFound(f"no run with id {run_id!r}")
            return stored
        definition = self.registry.get(run.task_id)
        if run.status is RunStatus.WAITING and definition is not None:
            # Suspended half way through an attempt: its on_cancel hook cleans up what it holds
            # (a chat turn's message), as it would for a running attempt.
            await call_hook(definition.on_cancel, run.payload, RunContext(self, run, run.attempt_count))
        task = self._tasks.get(run_id)
        if run.status is RunStatus.EXECUTING and task is not None:
            self._cancel_requested.add(run_id)
            task.cancel()
            await asyncio.wait([task], timeout=wait_s)
        elif not run.status.is_final:
            self._finish(run, RunStatus.CANCELED, error={"name": "Canceled", "message": "the run was canceled"})
        await self.store.commit()
        return run

    def set_replay_handler(self, task_id: str, handler: ReplayHandler | None) -> None:
        """Let the owner of a task say what replaying one of its runs means (the chat answers the
        run's message again, or refuses with a Conflict); None restores the default."""
        if handler is None:
            self._replay_handlers.pop(task_id, None)
        else:
            self._replay_handlers[task_id] = handler

    async def replay(self, run_id: str, *, resume: bool = False) -> RunHandle:
        """A new run of the same task with the same payload; ``resume`` keeps its checkpoints.
        A task with a replay handler (:meth:`set_replay_handler`) decides for itself."""
        original = self._active.get(run_id) or await self.store.get_run(run_id)
        if original is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        handler = self._replay_handlers.get(original.task_id)
        if handler is not None:
            return await handler(original, resume)
        opts = TriggerOptions(
            tags=list(original.tags),
            metadata=dict(original.metadata) if resume else {},
            concurrency_key=original.concurrency_key,
            queue=original.queue,
            conversation_id=original.conversation_id,
            max_duration_s=original.max_duration_s,
        )
        return await self.trigger(
            original.task_id,
            original.payload,
            opts,
            replayed_from=original.id,
            checkpoints=original.checkpoints if resume else None,
        )

    async def get_run(self, run_id: str) -> Run:
        run = self._active.get(run_id) or await self.store.get_run(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return run

    async def wait_for(self, run_id: str, timeout_s: float | None = None) -> Run:
        """Wait until the run is final and return it."""
        if run_id not in self._active:
            return await self.get_run(run_id)
        fut: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(fut)
        return await asyncio.wait_for(fut, timeout_s)

    def active_runs(self) -> list[Run]:
        return list(self._active.values())

    # -- timers ------------------------------------------------------------------------------
    async def _fire(self, ref: str, kind: str) -> None:
        if kind == "cron":
            await self.schedules.fire(ref)
            return
        run = self._active.get(ref)
        if run is None:
            return
        if kind == "delay" and run.status is RunStatus.DELAYED:
            run.status = RunStatus.QUEUED
            run.updated_at = self.clock.now()
            self._put_status(run)
            self._ready.append(run.id)
        elif kind == "retry" and run.status is RunStatus.REATTEMPTING:
            self._ready.append(run.id)
        elif kind == "wait" and run.status is RunStatus.WAITING and run.next_attempt_at is not None:
            if run.next_attempt_at <= self.clock.now():  # not an older suspension's timer
                self._release_waiting(run)
        elif (
            kind == "ttl"
            and run.status in (RunStatus.QUEUED, RunStatus.DELAYED)
            and run.attempt_count == 0
            and run.id not in self._tasks
        ):
            self._finish(run, RunStatus.EXPIRED, error={"name": "Expired", "message": "ttl passed before the run started"})
        self._pump()

    # -- recovery ----------------------------------------------------------------------------
    async def _recover(self) -> None:
        """Resume what a previous process left: retry or crash EXECUTING runs, re-arm timers."""
        rows = await self.store.query(
            f"SELECT * FROM runs WHERE status IN ({','.join('?' * len(_UNFINISHED))}) ORDER BY num",
            [s.value for s in _UNFINISHED],
        )
        from polaris_jupyter.jobs._store import row_to_run

        now = self.clock.now()
        for row in rows:
            run = row_to_run(row)
            await self.bus.ensure_run_seq(run.id)
            self._active[run.id] = run
            if run.idempotency_key:
                self._idem[(run.task_id, run.idempotency_key)] = run.id
            if run.status is RunStatus.EXECUTING:
                error = {"name": "Crashed", "message": f"the server process died during attempt {run.attempt_count}"}
                self.store.put_attempt(Attempt(run.id, run.attempt_count, RunStatus.CRASHED.value, run.updated_at, now, error))
                if run.attempt_count < run.max_attempts:
                    run.status = RunStatus.REATTEMPTING
                    run.error = error
                    run.updated_at = now
                    self._put_status(run, extra={"recovered": True})
                    self._ready.append(run.id)
                else:
                    self._finish(run, RunStatus.CRASHED, error=error)
                    continue
            elif run.status is RunStatus.DELAYED and run.delay_until is not None:
                self.timers.add(run.delay_until, run.id, "delay")
            elif run.status is RunStatus.REATTEMPTING:
                self.timers.add(run.next_attempt_at or now, run.id, "retry")
            elif run.status is RunStatus.WAITING:  # its owner resumes it; a timeout re-arms here
                if run.next_attempt_at is not None:
                    self.timers.add(run.next_attempt_at, run.id, "wait")
            else:
                if run.waiting_reason and run.waiting_reason.startswith("interrupted"):
                    run.waiting_reason = None
                    self.store.put_run(run)
                self._ready.append(run.id)
            if run.expires_at is not None and run.attempt_count == 0:
                self.timers.add(run.expires_at, run.id, "ttl")
        await self.store.commit()
        if rows:
            log.info("recovered %d unfinished runs", len(rows))
        self._pump()

    def _check_started(self) -> None:
        if not self._started or self._stopping:
            raise RuntimeError("the engine is not running; call `await engine.start()` first")

