"""Tasks defined in a kernel, stored by the server: the kernel-worker WebSocket.

A kernel that defines ``@task``s connects to ``/polaris/api/v1/kernel-worker`` and claims their
ids. For each, the server registers a proxy task: its runs live in the server's store (runs API,
dashboard, REST triggers, retries, schedules) but every attempt is sent to the kernel and the
proxy awaits the result. Cancelling a run (or exceeding its max duration) cancels it in the
kernel. When the last kernel defining a task goes away, the task is unregistered and its runs
wait, saying why, until a kernel claims the task again (or their ttl expires them).

Frames are JSON objects with a ``type``. Kernel → server: ``claim`` {id, tasks}, ``result``
{runId, ok, output | error, abort}, ``log``, ``metadata`` {runId, op, key, value}, ``checkpoint``
{id, runId, key, value}, ``trigger`` {id, runId, taskId, payload, options} (a child run, triggered
from the attempt's context on the server), ``emit`` {runId, eventType, data}. Server → kernel:
``claimed`` {id, tasks, refused}, ``run`` {runId, taskId, attempt, payload, run}, ``cancel``
{runId}, ``ack`` {id, ok, data | error}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from polaris_jupyter.jobs import (
    AbortTaskError,
    QueueDef,
    RetryPolicy,
    RunContext,
    RunStatus,
    TaskDef,
    options_from_json,
)
from polaris_jupyter.server.app import EXTRA_HANDLERS
from polaris_jupyter.server.base import BearerWebSocketMixin, PolarisHandler
from polaris_jupyter.server.openapi import add_paths, errors, ok

if TYPE_CHECKING:
    from polaris_jupyter.runtime import PolarisRuntime

__all__ = ["KernelGone", "KernelWorkers"]

log = logging.getLogger("polaris_jupyter.kernel_tasks")
MAX_TASKS_PER_CLAIM = 200
#: After asking a kernel to cancel a run, wait this long for it to confirm before giving up.
CANCEL_CONFIRM_S = 5.0
#: Frames the kernel waits an answer ("ack") for.
_REQUESTS = ("checkpoint", "trigger")


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
    """The task raised AbortTaskError in the kernel: no retries."""


_ERROR_TYPES: dict[tuple[str, bool], type[Exception]] = {}


def _remote_error(error: Any, abort: bool) -> Exception:
    """An exception whose class name is the kernel's (so the run's error says ``ValueError``)."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    name = str(error.get("name") or "Error")
    name = name if name.isidentifier() else "Error"
    base: type[Exception] = KernelAbortError if abort else KernelTaskError
    cls = _ERROR_TYPES.get((name, abort))
    if cls is None:
        cls = _ERROR_TYPES[(name, abort)] = type(name, (base,), {})
    return cls(str(error.get("message") or name))


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
        claimed: list[str] = []
        refused: dict[str, str] = {}
        for spec in specs[:MAX_TASKS_PER_CLAIM]:
            task_id = spec.get("id") if isinstance(spec, dict) else None
            if not isinstance(task_id, str) or not 0 < len(task_id) <= 200:
                refused[str(task_id)[:200]] = "a task id must be a string of 1 to 200 characters"
                continue
            existing = self.engine.registry.get(task_id)
            if existing is not None and task_id not in self.owners:
                refused[task_id] = "a task with this id is defined by the server itself"
                continue
            try:
                definition = self._proxy(task_id, spec)
            except (TypeError, ValueError, KeyError) as exc:
                refused[task_id] = f"bad task definition: {exc}"
                continue
            owners = self.owners.setdefault(task_id, [])
            if conn in owners:
                owners.remove(conn)
            owners.append(conn)
            conn.tasks.add(task_id)
            self.gone.pop(task_id, None)
            self.engine.register(definition)
            claimed.append(task_id)
        return claimed, refused

    def _proxy(self, task_id: str, spec: dict[str, Any]) -> TaskDef:
        retry = RetryPolicy.from_json(spec["retry"]) if isinstance(spec.get("retry"), dict) else None
        queue: dict[str, Any] = spec["queue"] if isinstance(spec.get("queue"), dict) else {}
        limit = queue.get("concurrencyLimit")
        return TaskDef(
            id=task_id,
            fn=self._runner(task_id),
            retry=retry,
            queue=QueueDef(str(queue.get("name") or "default"), int(limit) if limit is not None else None),
            max_duration_s=float(spec["maxDurationS"]) if spec.get("maxDurationS") else None,
            ttl_s=float(spec["ttlS"]) if spec.get("ttlS") else None,
            description=str(spec.get("description") or "")[:300] or "defined in a kernel",
        )

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
            conn.send_json(
                {
                    "type": "run",
                    "runId": ctx.run_id,
                    "taskId": task_id,
                    "attempt": ctx.attempt,
                    "payload": payload,
                    "run": {
                        "maxAttempts": run.max_attempts,
                        "tags": list(run.tags),
                        "metadata": dict(run.metadata),
                        "checkpoints": dict(run.checkpoints),
                    },
                }
            )
            try:
                return await attempt.future
            except KernelGone as exc:
                if exc.waiting_reason:
                    ctx.run.waiting_reason = exc.waiting_reason
                raise
            except asyncio.CancelledError:
                if not conn.closed:
                    conn.send_json({"type": "cancel", "runId": ctx.run_id})
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(attempt.answered.wait(), CANCEL_CONFIRM_S)
                raise
            finally:
                if self.attempts.get(ctx.run_id) is attempt:
                    del self.attempts[ctx.run_id]

        return run_in_kernel

    async def on_frame(self, conn: KernelWorkerSocket, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "claim":
            tasks = frame.get("tasks")
            claimed, refused = self.claim(conn, tasks if isinstance(tasks, list) else [])
            conn.send_json({"type": "claimed", "id": frame.get("id"), "tasks": claimed, "refused": refused})
            return
        attempt = self.attempts.get(str(frame.get("runId")))
        if attempt is None or attempt.conn is not conn:
            if kind in _REQUESTS:
                conn.send_json({"type": "ack", "id": frame.get("id"), "ok": False, "error": "the run is not executing"})
            return
        ctx = attempt.ctx
        try:
            if kind == "result":
                attempt.answered.set()
                if attempt.future.done():
                    return
                if frame.get("ok"):
                    attempt.future.set_result(frame.get("output"))
                else:
                    attempt.future.set_exception(_remote_error(frame.get("error"), bool(frame.get("abort"))))
                    stack = (frame.get("error") or {}).get("stack") if isinstance(frame.get("error"), dict) else None
                    if stack:
                        ctx.logger.error("traceback in the kernel", data={"stack": str(stack)[-4000:]})
            elif kind == "log":
                ctx.logger.log(str(frame.get("level") or "info"), str(frame.get("message") or ""), frame.get("data"))
            elif kind == "metadata":
                op, key = frame.get("op"), str(frame.get("key") or "")
                if op == "remove":
                    ctx.metadata.remove(key)
                elif op in ("set", "append", "increment"):
                    getattr(ctx.metadata, str(op))(key, frame.get("value"))
            elif kind == "checkpoint":
                await ctx.save_checkpoint(str(frame.get("key") or ""), frame.get("value"))
                conn.send_json({"type": "ack", "id": frame.get("id"), "ok": True})
            elif kind == "trigger":  # a child run, triggered from this attempt's context
                options = options_from_json(frame.get("options"), self.engine.clock.now())
                handle = await ctx.trigger(str(frame.get("taskId") or ""), frame.get("payload"), options)
                conn.send_json({"type": "ack", "id": frame.get("id"), "ok": True, "data": {"id": handle.id, "isCached": handle.is_cached}})
            elif kind == "emit":
                event_type = str(frame.get("eventType") or "")
                if event_type and not event_type.startswith(("run.", "message.", "toolcall.")):
                    data = frame.get("data")
                    ctx.emit(event_type, data if isinstance(data, dict) else {"value": data})
        except Exception as exc:
            log.info("kernel %s sent a frame the run refused: %s", conn.label, exc)
            if kind in _REQUESTS:
                conn.send_json({"type": "ack", "id": frame.get("id"), "ok": False, "error": str(exc)})
            else:
                with contextlib.suppress(Exception):
                    ctx.logger.warn(f"ignored {kind} from the kernel: {exc}")

    def to_json(self) -> dict[str, Any]:
        return {
            "kernels": [
                {"kernelId": c.kernel_id, "label": c.label, "connectedAt": c.connected_at, "tasks": sorted(c.tasks)}
                for c in self.connections
            ],
            "waiting": [{"taskId": task_id, "reason": reason} for task_id, reason in sorted(self.gone.items())],
        }


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
            return self.send_json("pong")
        try:
            frame = json.loads(message)
        except ValueError:
            return None
        if isinstance(frame, dict):
            return workers_for(self.settings).on_frame(self, frame)
        return None

    def send_json(self, frame: Any) -> None:
        if self.closed:
            return
        with contextlib.suppress(WebSocketClosedError):
            self.write_message(json.dumps(frame, default=str))

    def on_close(self) -> None:
        self.closed = True
        workers_for(self.settings).spawn_release(self)


class KernelTasksHandler(PolarisHandler):
    @web.authenticated
    async def get(self) -> None:
        self.runtime  # 503 while the engine starts  # noqa: B018
        self.send_json(workers_for(self.settings).to_json())


EXTRA_HANDLERS.extend(
    [("/polaris/api/v1/kernel-worker", KernelWorkerSocket), ("/polaris/api/v1/kernel-tasks", KernelTasksHandler)]
)
add_paths(
    {
        "/polaris/api/v1/kernel-tasks": {
            "get": {
                "summary": "Kernels connected as task workers, the tasks they define, and tasks waiting for a kernel",
                "responses": {
                    **ok(
                        {
                            "type": "object",
                            "required": ["kernels", "waiting"],
                            "properties": {
                                "kernels": {"type": "array", "items": {"type": "object"}},
                                "waiting": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    ),
                    **errors(),
                },
            }
        }
    }
)
