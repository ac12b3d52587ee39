"""Tasks defined in a kernel, stored by the server: the kernel-worker WebSocket.

A kernel that defines ``@task``s connects to ``/polaris/api/v1/kernel-worker`` and claims their
ids. For each, the server registers a proxy task: its runs live in the server's store (runs API,
dashboard, REST triggers, retries, schedules) but every attempt is sent to the kernel and the
proxy awaits the result. Cancelling a run (or exceeding its max duration) cancels it in the
kernel. When the last kernel defining a task goes away, the task is unregistered and its runs
wait, saying why, until a kernel claims the task again (or their ttl expires them).

The frames are the typed dataclasses of ``polaris_jupyter.jobs.worker_frames`` (the protocol
is described there). A kernel's log, metadata, checkpoint and event frames go through the
attempt's ``RunContext``, so the same rules apply as to a task running in the server. A frame
the server cannot use is answered (``ack`` with ``ok: false`` for a request, else ``error``)
and logged; it never breaks the socket or the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from polaris_jupyter.errors import PolarisError
from polaris_jupyter.jobs import AbortTaskError, RunContext, RunStatus, options_from_json
from polaris_jupyter.jobs.context import EVENT_PREFIXES_RESERVED_FOR_SERVER
from polaris_jupyter.jobs.worker_frames import (
    KERNEL_FRAMES,
    MAX_TASK_ID_CHARS,
    AckFrame,
    CancelFrame,
    CheckpointFrame,
    ClaimedFrame,
    ClaimFrame,
    EmitFrame,
    ErrorFrame,
    Frame,
    FrameError,
    KernelFrame,
    LogFrame,
    MetadataFrame,
    ResultFrame,
    RunFrame,
    RunSnapshot,
    TaskError,
    TaskSpec,
    TriggerFrame,
    parse_frame,
)
from polaris_jupyter.server.base import BearerWebSocketMixin

if TYPE_CHECKING:
    from polaris_jupyter.runtime import PolarisRuntime

__all__ = ["KernelGone", "KernelWorkers"]

log = logging.getLogger("polaris_jupyter.kernel_tasks")
MAX_TASKS_PER_CLAIM = 200
#: After asking a kernel to cancel a run, wait this long for it to confirm before giving up.
CANCEL_CONFIRM_S = 5.0
#: Longer exception class names from a kernel are reported as ``Error``.
MAX_ERROR_NAME_CHARS = 100


class KernelGone(Exception):
    """The kernel running an attempt disconnected before it answered.

    ``waiting_reason`` is set when no other kernel defines the task: the runner copies it onto
    the run only as the attempt fails, so a reader never sees a run that is still EXECUTING
    but already "waiting" (the status and the reason change in the same step).
    """

    def __init__(self, message: str, waiting_reason: str | None = None) -> None:
        super().__init__(message)
        self.waiting_reason = waiting_reason


class KernelTaskError(Exception):
    """A task raised in the kernel; carries the kernel's error name and traceback."""


class KernelAbortError(AbortTaskError):
    """The task raised AbortTaskError (or its input was refused) in the kernel: no retries."""


_ERROR_TYPES: dict[tuple[str, bool], type[Exception]] = {}


def _remote_error(error: TaskError, abort: bool) -> Exception:
    """An exception whose class name is the kernel's (so the run's error says ``ValueError``)."""
    name = error.name if error.name.isidentifier() and len(error.name) <= MAX_ERROR_NAME_CHARS else "Error"
    base: type[Exception] = KernelAbortError if abort else KernelTaskError
    cls = _ERROR_TYPES.get((name, abort))
    if cls is None:
        cls = _ERROR_TYPES[(name, abort)] = type(name, (base,), {})
    return cls(error.message or name)


@dataclass
class _Attempt:
    conn: KernelWorkerSocket
    ctx: RunContext
    future: asyncio.Future[Any]
    answered: asyncio.Event = field(default_factory=asyncio.Event)


class KernelWorkers:
    """Which kernels are connected, which tasks they define, and the attempts they are running."""

    def __init__(self, runtime: PolarisRuntime) -> None:
        self.runtime = runtime
        self.engine = runtime.engine
        self.connections: list[KernelWorkerSocket] = []
        self.owners: dict[str, list[KernelWorkerSocket]] = {}
        self.attempts: dict[str, _Attempt] = {}
        self.gone: dict[str, str] = {}
        self._background: set[asyncio.Task[None]] = set()

    def spawn_release(self, conn: KernelWorkerSocket) -> None:
        """Release a closed connection (from a sync callback); the task is kept until done."""
        task = asyncio.get_running_loop().create_task(self._release_quietly(conn))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- claims ---------------------------------------------------------------------------------
    def claim(self, conn: KernelWorkerSocket, specs: list[Any]) -> tuple[list[str], dict[str, str]]:
        """Register the tasks a kernel defines; each bad definition is refused with its reason."""
        claimed: list[str] = []
        refused: dict[str, str] = {}
        for index, raw in enumerate(specs):
            raw_id = str(raw.get("id") if isinstance(raw, dict) else None)[:MAX_TASK_ID_CHARS]
            if index >= MAX_TASKS_PER_CLAIM:
                refused[raw_id] = f"at most {MAX_TASKS_PER_CLAIM} tasks per claim; claim the rest separately"
                continue
            try:
                spec = TaskSpec.from_json(raw)
            except FrameError as exc:
                refused[raw_id] = str(exc)
                continue
            if self.engine.registry.get(spec.id) is not None and spec.id not in self.owners:
                refused[spec.id] = "a task with this id is defined by the server itself"
                continue
            try:
                definition = spec.to_task(self._runner(spec.id))
            except FrameError as exc:
                refused[spec.id] = str(exc)
                continue
            owners = self.owners.setdefault(spec.id, [])
            if conn in owners:
                owners.remove(conn)
            owners.append(conn)
            conn.tasks.add(spec.id)
            self.gone.pop(spec.id, None)
            self.engine.register(definition)
            claimed.append(spec.id)
        return claimed, refused

    def owner(self, task_id: str) -> KernelWorkerSocket | None:
        owners = self.owners.get(task_id) or []
        return owners[-1] if owners else None

    async def _release_quietly(self, conn: KernelWorkerSocket) -> None:
        try:
            await self.release(conn)
        except Exception:  # e.g. the server is shutting down and the store is closed
            log.debug("releasing kernel %s failed", conn.label, exc_info=True)

    async def release(self, conn: KernelWorkerSocket) -> None:
        """The kernel is gone: its tasks wait for another kernel, its attempts fail."""
        if conn in self.connections:
            self.connections.remove(conn)
        reason = f"defined in kernel {conn.label}, which is gone; the run waits until a kernel defines the task again"
        for task_id in sorted(conn.tasks):
            owners = self.owners.get(task_id) or []
            if conn in owners:
                owners.remove(conn)
            if owners:
                continue
            self.owners.pop(task_id, None)
            self.gone[task_id] = reason
            self.engine.unregister(task_id, reason=reason)
            for run in self.engine.active_runs():
                if run.task_id == task_id and run.status is RunStatus.DELAYED and not run.waiting_reason:
                    run.waiting_reason = reason
                    self.engine.store.put_run(run)
        for attempt in list(self.attempts.values()):
            if attempt.conn is conn and not attempt.future.done():
                waiting = reason if self.owner(attempt.ctx.task_id) is None else None
                message = f"kernel {conn.label} disconnected during attempt {attempt.ctx.attempt}"
                attempt.future.set_exception(KernelGone(message, waiting))
        await self.engine.store.commit()

    # -- running attempts in kernels --------------------------------------------------------------
    def _runner(self, task_id: str) -> Any:
        async def run_in_kernel(payload: Any, ctx: RunContext) -> Any:
            conn = self.owner(task_id)
            if conn is None:
                ctx.run.waiting_reason = self.gone.get(task_id) or "no kernel defines this task"
                raise KernelGone(ctx.run.waiting_reason)
            attempt = _Attempt(conn, ctx, asyncio.get_running_loop().create_future())
            self.attempts[ctx.run_id] = attempt
            run = ctx.run
            snapshot = RunSnapshot(
                max_attempts=run.max_attempts, tags=list(run.tags), metadata=dict(run.metadata), checkpoints=dict(run.checkpoints)
            )
            conn.send(RunFrame(run_id=ctx.run_id, task_id=task_id, attempt=ctx.attempt, payload=payload, run=snapshot))
            try:
                return await attempt.future
            except KernelGone as exc:
                if exc.waiting_reason:
                    ctx.run.waiting_reason = exc.waiting_reason
                raise
            except asyncio.CancelledError:
                if not conn.closed:
                    conn.send(CancelFrame(run_id=ctx.run_id))
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(attempt.answered.wait(), CANCEL_CONFIRM_S)
                raise
            finally:
                if self.attempts.get(ctx.run_id) is attempt:
                    del self.attempts[ctx.run_id]

        return run_in_kernel

    # -- frames from kernels ----------------------------------------------------------------------
    async def on_message(self, conn: KernelWorkerSocket, message: str | bytes) -> None:
        """Handle one message from a kernel. Never raises: a frame the server cannot use is
        answered with the reason (and logged), and the socket stays open."""
        try:
            frame = cast(KernelFrame, parse_frame(message, KERNEL_FRAMES))
        except FrameError as exc:
            self.refuse(conn, str(exc), exc.frame_type, exc.request_id)
            return
        try:
            await self.on_frame(conn, frame)
        except Exception as exc:
            log.exception("kernel %s: the server failed on a %r frame", conn.label, frame.TYPE)
            self.refuse(conn, f"the server failed on this {frame.TYPE!r} frame: {exc}", frame.TYPE, _request_id(frame))

    def refuse(self, conn: KernelWorkerSocket, error: str, frame_type: str | None, request_id: str | None) -> None:
        """Tell the kernel why a frame was not used: a request's ``ack`` fails, else an ``error``."""
        log.info("kernel %s sent a frame the server refused: %s", conn.label, error)
        if request_id is not None:
            conn.send(AckFrame(id=request_id, ok=False, error=error))
        else:
            conn.send(ErrorFrame(error=error, frame_type=frame_type))

    async def on_frame(self, conn: KernelWorkerSocket, frame: KernelFrame) -> None:
        if isinstance(frame, ClaimFrame):
            claimed, refused = self.claim(conn, frame.tasks)
            conn.send(ClaimedFrame(id=frame.id, tasks=claimed, refused=refused))
            return
        attempt = self.attempts.get(frame.run_id)
        if attempt is None or attempt.conn is not conn:
            if isinstance(frame, (CheckpointFrame, TriggerFrame)):
                conn.send(AckFrame(id=frame.id, ok=False, error=f"the run {frame.run_id} is not executing in this kernel"))
            else:  # e.g. a result that arrives after the run was cancelled: nothing to do
                log.debug("kernel %s: %s frame for run %s, which is not executing there", conn.label, frame.TYPE, frame.run_id)
            return
        ctx = attempt.ctx
        try:
            if isinstance(frame, ResultFrame):
                self._result(attempt, frame)
            elif isinstance(frame, LogFrame):
                ctx.logger.log(frame.level, frame.message, frame.data)
            elif isinstance(frame, MetadataFrame):
                ctx.metadata.apply(frame.op, frame.key, frame.value)
            elif isinstance(frame, CheckpointFrame):
                await ctx.save_checkpoint(frame.key, frame.value)
                conn.send(AckFrame(id=frame.id, ok=True))
            elif isinstance(frame, TriggerFrame):  # a child run, triggered from this attempt's context
                options = options_from_json(frame.options, self.engine.clock.now())
                handle = await ctx.trigger(frame.task_id, frame.payload, options)
                conn.send(AckFrame(id=frame.id, ok=True, data={"id": handle.id, "isCached": handle.is_cached}))
            elif isinstance(frame, EmitFrame):
                ctx.emit(frame.event_type, frame.data, reserved=EVENT_PREFIXES_RESERVED_FOR_SERVER)
        except PolarisError as exc:  # the run's rules refused it (bad metadata, unknown child task, …)
            self.refuse(conn, str(exc), frame.TYPE, _request_id(frame))
            if _request_id(frame) is None:
                with contextlib.suppress(Exception):
                    ctx.logger.warn(f"ignored {frame.TYPE} from the kernel: {exc}")

    def _result(self, attempt: _Attempt, frame: ResultFrame) -> None:
        if frame.attempt is not None and frame.attempt != attempt.ctx.attempt:
            log.debug("run %s: a result of attempt %s arrived during attempt %s", frame.run_id, frame.attempt, attempt.ctx.attempt)
            return
        attempt.answered.set()
        if attempt.future.done():
            return
        if frame.ok:
            attempt.future.set_result(frame.output)
            return
        error = frame.error or TaskError(message="the task failed in the kernel")
        attempt.future.set_exception(_remote_error(error, frame.abort))
        if error.stack:
            attempt.ctx.logger.error("traceback in the kernel", data={"stack": error.stack[-4000:]})

    def to_json(self) -> dict[str, Any]:
        return {
            "kernels": [
                {"kernelId": c.kernel_id, "label": c.label, "connectedAt": c.connected_at, "tasks": sorted(c.tasks)}
                for c in self.connections
            ],
            "waiting": [{"taskId": task_id, "reason": reason} for task_id, reason in sorted(self.gone.items())],
        }


def _request_id(frame: Frame) -> str | None:
    """The id of a request frame (answered with ``ack``), else None."""
    return frame.id if isinstance(frame, (CheckpointFrame, TriggerFrame)) else None


def workers_for(settings: dict[str, Any]) -> KernelWorkers:
    workers = settings.get("polaris_kernel_workers")
    if workers is None:
        workers = settings["polaris_kernel_workers"] = KernelWorkers(settings["polaris_runtime"])
    return workers  # type: ignore[no-any-return]


class KernelWorkerSocket(BearerWebSocketMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    """One kernel's connection: it claims tasks and runs their attempts."""

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        self.tasks: set[str] = set()
        self.closed = False
        await super().prepare(*args, **kwargs)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        runtime = self.settings.get("polaris_runtime")
        if runtime is None or not runtime.started:
            raise web.HTTPError(503, "the Polaris engine is starting")
        if not self._polaris_bearer and not self.authorizer.is_authorized(self, self.current_user, "write", "polaris"):
            raise web.HTTPError(403)
        self.kernel_id = (self.get_query_argument("kernel", "") or "unknown")[:100]
        self.label = await self._label(self.kernel_id, (self.get_query_argument("name", "") or "")[:100])
        self.connected_at = time.time()
        await super().get(*args, **kwargs)

    async def _label(self, kernel_id: str, name: str) -> str:
        """``1a2b3c4d (notebooks/jobs.ipynb)`` when the server knows the kernel's notebook."""
        short = kernel_id[:8] if len(kernel_id) == 36 else kernel_id
        sessions = self.settings.get("session_manager")
        if sessions is not None:
            with contextlib.suppress(Exception):
                for session in await sessions.list_sessions():
                    if (session.get("kernel") or {}).get("id") == kernel_id and session.get("path"):
                        return f"{short} ({session['path']})"
        return f"{short} ({name})" if name else short

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().open()
        workers_for(self.settings).connections.append(self)

    def on_message(self, message: str | bytes) -> Any:
        if message == "ping":
            return self._write('"pong"')
        return workers_for(self.settings).on_message(self, message)

    def send(self, frame: Frame) -> None:
        self._write(frame.dumps())

    def _write(self, text: str) -> None:
        if self.closed:
            return
        with contextlib.suppress(WebSocketClosedError):
            self.write_message(text)

    def on_close(self) -> None:
        self.closed = True
        workers_for(self.settings).spawn_release(self)
