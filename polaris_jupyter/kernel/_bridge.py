"""The kernel side of kernel-defined tasks: claim them on the server, run the attempts it sends.

A ``@task`` defined in a notebook cell lands in this kernel's task registry. The bridge keeps one
WebSocket to the server (``/polaris/api/v1/kernel-worker``), claims every task in the registry
(again after each cell that changed one, and after a reconnect), and runs each attempt the
server sends with a context that forwards logs, metadata, checkpoints and events to the real
run. The server cancels an attempt by sending ``cancel``; the task's coroutine is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from polaris_jupyter.jobs import (
    AbortTaskError,
    RunStatus,
    TaskDef,
    TaskRegistry,
    TriggerOptions,
    default_registry,
    options_to_json,
)
from polaris_jupyter.jobs._context import RunLogger
from polaris_jupyter.jobs._engine import call_hook
from polaris_jupyter.kernel._base import PolarisError

if TYPE_CHECKING:
    from polaris_jupyter.kernel._loop import LoopThread
    from polaris_jupyter.kernel._remote import RemoteBackend

__all__ = ["KernelRunContext", "KernelRunHandle", "KernelRunResult", "TaskBridge", "kernel_id"]

log = logging.getLogger("polaris_jupyter.kernel")
CONNECT_TIMEOUT_S = 10.0


def kernel_id() -> str:
    """This kernel's id (from its connection file), else a process id."""
    with contextlib.suppress(Exception):
        from ipykernel.connect import get_connection_file

        name = os.path.basename(get_connection_file())
        if name.startswith("kernel-") and name.endswith(".json"):
            return name[len("kernel-") : -len(".json")]
    return f"pid-{os.getpid()}"


def task_spec(definition: TaskDef) -> dict[str, Any]:
    """What the server needs to know to store and schedule this task's runs."""
    return {
        "id": definition.id,
        "retry": definition.retry.to_json() if definition.retry else None,
        "queue": definition.queue.to_json(),
        "maxDurationS": definition.max_duration_s,
        "ttlS": definition.ttl_s,
        "description": definition.description or f"defined in kernel {kernel_id()[:8]}",
    }


class _Metadata:
    """``ctx.metadata`` in the kernel: a local copy, every change forwarded to the server's run."""

    def __init__(self, ctx: KernelRunContext, current: dict[str, Any]) -> None:
        self._ctx = ctx
        self.current = current

    def get(self, key: str, default: Any = None) -> Any:
        return self.current.get(key, default)

    def set(self, key: str, value: Any) -> None:
        json.dumps(value)
        self.current[key] = value
        self._ctx._send({"type": "metadata", "op": "set", "key": key, "value": value})

    def remove(self, key: str) -> None:
        self.current.pop(key, None)
        self._ctx._send({"type": "metadata", "op": "remove", "key": key})

    def append(self, key: str, value: Any) -> None:
        json.dumps(value)
        existing = self.current.get(key)
        self.current[key] = [value] if existing is None else [*existing, value] if isinstance(existing, list) else [existing, value]
        self._ctx._send({"type": "metadata", "op": "append", "key": key, "value": value})

    def increment(self, key: str, by: float = 1) -> None:
        self.current[key] = self.current.get(key, 0) + by
        self._ctx._send({"type": "metadata", "op": "increment", "key": key, "value": by})

    def decrement(self, key: str, by: float = 1) -> None:
        self.increment(key, -by)


@dataclass
class KernelRunResult:
    """What ``trigger_and_wait`` returns in a kernel: the engine's ``RunResult`` fields, with
    the run as the API's JSON (the Run object lives in the server)."""

    ok: bool
    output: Any
    error: dict[str, Any] | None
    run: dict[str, Any]


class KernelRunHandle:
    """A run triggered from a kernel-defined task: the engine's ``RunHandle`` API over REST."""

    def __init__(self, backend: RemoteBackend, run_id: str, *, is_cached: bool = False) -> None:
        self._backend = backend
        self.id = run_id
        self.is_cached = is_cached

    async def status(self) -> RunStatus:
        return RunStatus((await self._backend.run(self.id))["status"])

    async def result(self, timeout_s: float | None = None) -> KernelRunResult:
        run = await self._backend.wait_run(self.id, timeout_s)
        return KernelRunResult(run["status"] == RunStatus.COMPLETED.value, run.get("output"), run.get("error"), run)

    async def cancel(self) -> dict[str, Any]:
        return await self._backend.cancel_run(self.id)

    def __repr__(self) -> str:
        return f"KernelRunHandle({self.id!r})"


class KernelRunContext:
    """The ``ctx`` a kernel-defined task gets: the engine's RunContext API, forwarded over the wire."""

    def __init__(self, bridge: TaskBridge, frame: dict[str, Any]) -> None:
        run = frame.get("run") or {}
        self._bridge = bridge
        self.run_id: str = frame["runId"]
        self.task_id: str = frame["taskId"]
        self.attempt: int = int(frame.get("attempt") or 1)
        self.max_attempts: int = int(run.get("maxAttempts") or 1)
        self.payload: Any = frame.get("payload")
        self.tags: list[str] = list(run.get("tags") or [])
        self._checkpoints: dict[str, Any] = dict(run.get("checkpoints") or {})
        self.metadata = _Metadata(self, dict(run.get("metadata") or {}))
        self.logger = RunLogger(lambda level, message, data: self._send({"type": "log", "level": level, "message": message, "data": data}))

    def _send(self, frame: dict[str, Any]) -> None:
        self._bridge.send({**frame, "runId": self.run_id})

    def checkpoint(self, key: str) -> Any:
        return self._checkpoints.get(key)

    async def save_checkpoint(self, key: str, value: Any) -> None:
        json.dumps(value)
        await self._bridge.request({"type": "checkpoint", "runId": self.run_id, "key": key, "value": value})
        self._checkpoints[key] = value

    def emit(self, type: str, data: dict[str, Any]) -> None:
        self._send({"type": "emit", "eventType": type, "data": data})

    async def trigger(
        self, task_id: str, payload: Any = None, options: TriggerOptions | dict[str, Any] | None = None
    ) -> KernelRunHandle:
        """Trigger a child run, as the engine's ``ctx.trigger`` does: the server triggers it from
        this attempt's context, so the child records its parent and idempotency keys scoped to
        the run or the attempt work. ``options`` is a TriggerOptions or its JSON form."""
        wire = options_to_json(options) if isinstance(options, TriggerOptions) else options
        reply = await self._bridge.request(
            {"type": "trigger", "runId": self.run_id, "taskId": task_id, "payload": payload, "options": wire}
        )
        data = reply.get("data") or {}
        return KernelRunHandle(self._bridge.backend, str(data["id"]), is_cached=bool(data.get("isCached")))

    async def trigger_and_wait(
        self, task_id: str, payload: Any = None, options: TriggerOptions | dict[str, Any] | None = None
    ) -> KernelRunResult:
        """Trigger a child run and wait until it is final."""
        handle = await self.trigger(task_id, payload, options)
        return await handle.result()


class TaskBridge:
    """One WebSocket per kernel: claims its tasks and runs the attempts the server sends."""

    def __init__(self, backend: RemoteBackend, loop: LoopThread, registry: TaskRegistry | None = None) -> None:
        self.backend = backend
        self.loop = loop
        self.registry = registry or default_registry
        self.kernel_id = kernel_id()
        self.sent: dict[str, str] = {}
        self.claimed: set[str] = set()
        self.refused: dict[str, str] = {}
        self.running: dict[str, asyncio.Task[None]] = {}
        self._conn: WebSocketClientConnection | None = None
        self._connected: asyncio.Event | None = None
        self._main: asyncio.Task[None] | None = None
        self._requests: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._closing = False

    # -- public (run on the loop) ----------------------------------------------------------------
    async def sync(self) -> dict[str, Any]:
        """Claim tasks that are new or changed since the last claim; returns what the server said."""
        await self._ensure_connected()
        specs = {d.id: task_spec(d) for d in self.registry.all()}
        changed = [s for task_id, s in specs.items() if self.sent.get(task_id) != json.dumps(s, sort_keys=True)]
        new_refusals: dict[str, str] = {}
        if changed:
            reply = await self.request({"type": "claim", "tasks": changed})
            for spec in changed:
                self.sent[spec["id"]] = json.dumps(spec, sort_keys=True)
            self.claimed.update(reply.get("tasks") or [])
            new_refusals = dict(reply.get("refused") or {})
            self.refused.update(new_refusals)
        return {"claimed": sorted(self.claimed), "refused": new_refusals}

    async def close(self) -> None:
        self._closing = True
        for task in list(self.running.values()):
            task.cancel()
        if self._conn is not None:
            self._conn.close()
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._main

    def send(self, frame: dict[str, Any]) -> None:
        if self._conn is None:
            return
        try:
            self._conn.write_message(json.dumps(frame, default=str))
        except Exception as exc:  # closed meanwhile: the server fails the attempt itself
            log.debug("polaris: could not send %s: %s", frame.get("type"), exc)

    async def request(self, frame: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
        request_id = f"k{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        try:
            if self._conn is None:
                raise PolarisError("not connected to the Polaris server", 503)
            self.send({**frame, "id": request_id})
            reply = await asyncio.wait_for(future, timeout_s)
        finally:
            self._requests.pop(request_id, None)
        if reply.get("ok") is False:
            raise PolarisError(str(reply.get("error") or "the server refused the request"))
        return reply

    # -- connection --------------------------------------------------------------------------------
    async def _ensure_connected(self) -> None:
        if self._connected is None:
            self._connected = asyncio.Event()
        if self._main is None or self._main.done():
            self._main = asyncio.get_running_loop().create_task(self._connection_loop(), name="polaris-kernel-worker")
        try:
            await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise PolarisError(f"could not connect to the Polaris server's kernel-worker socket at {self.backend.base_url}", 503) from None

    async def _connection_loop(self) -> None:
        assert self._connected is not None
        delay_s = 0.2
        name = f"{socket.gethostname()}:{os.getpid()}"
        url = f"{self.backend.ws_base}polaris/api/v1/kernel-worker?" + urlencode({"kernel": self.kernel_id, "name": name})
        while not self._closing:
            try:
                conn = await websocket_connect(
                    HTTPRequest(url, headers=self.backend.headers(), request_timeout=CONNECT_TIMEOUT_S),
                    ping_interval=20,
                    ping_timeout=20,
                )
            except HTTPClientError as exc:
                if exc.code in (401, 403, 404):
                    log.warning("polaris: the server refused the kernel-worker socket: HTTP %s", exc.code)
                conn = None
            except (OSError, asyncio.TimeoutError):
                conn = None
            if conn is not None:
                delay_s = 0.2
                self._conn = conn
                if self.sent:  # a reconnect: claim everything again
                    self.sent.clear()
                    reclaim = [task_spec(d) for d in self.registry.all() if d.id in self.claimed]
                    if reclaim:
                        self.send({"type": "claim", "id": "reclaim", "tasks": reclaim})
                        for spec in reclaim:
                            self.sent[spec["id"]] = json.dumps(spec, sort_keys=True)
                self._connected.set()
                try:
                    await self._read(conn)
                finally:
                    self._connected.clear()
                    self._conn = None
                    for task in list(self.running.values()):
                        task.cancel()  # the server fails these attempts; their results cannot arrive
            if self._closing:
                return
            await asyncio.sleep(delay_s)
            delay_s = min(5.0, delay_s * 2)

    async def _read(self, conn: WebSocketClientConnection) -> None:
        while True:
            message = await conn.read_message()
            if message is None:
                return
            try:
                frame = json.loads(message)
            except ValueError:
                continue
            if not isinstance(frame, dict):
                continue
            kind = frame.get("type")
            if kind in ("claimed", "ack"):
                future = self._requests.get(str(frame.get("id")))
                if future is not None and not future.done():
                    future.set_result(frame)
            elif kind == "run":
                run_id = str(frame.get("runId"))
                old = self.running.pop(run_id, None)
                if old is not None:
                    old.cancel()
                self.running[run_id] = asyncio.get_running_loop().create_task(self._execute(frame), name=f"polaris-kernel-run-{run_id}")
            elif kind == "cancel":
                task = self.running.get(str(frame.get("runId")))
                if task is not None:
                    task.cancel()

    # -- attempts --------------------------------------------------------------------------------
    async def _execute(self, frame: dict[str, Any]) -> None:
        run_id = str(frame["runId"])
        definition = self.registry.get(str(frame.get("taskId")))
        result: dict[str, Any] = {"type": "result", "runId": run_id, "attempt": frame.get("attempt")}
        try:
            if definition is None:
                raise LookupError(f"task {frame.get('taskId')!r} is no longer defined in this kernel")
            ctx = KernelRunContext(self, frame)
            try:
                if ctx.attempt == 1:
                    await call_hook(definition.on_start, ctx.payload, ctx)
                output = await definition.fn(ctx.payload, ctx)  # type: ignore[arg-type]
                json.dumps(output)
            except asyncio.CancelledError:
                await call_hook(definition.on_cancel, ctx.payload, ctx)
                raise
            except Exception as exc:
                if isinstance(exc, AbortTaskError) or ctx.attempt >= ctx.max_attempts:
                    await call_hook(definition.on_failure, ctx.payload, exc, ctx)
                raise
            await call_hook(definition.on_success, ctx.payload, output, ctx)
            result.update(ok=True, output=output)
        except asyncio.CancelledError:
            result.update(ok=False, canceled=True, error={"name": "Canceled", "message": "canceled in the kernel"})
            self.send(result)
            raise
        except Exception as exc:
            stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            error = {"name": type(exc).__name__, "message": str(exc) or type(exc).__name__, "stack": stack[-4000:]}
            if isinstance(exc, TypeError) and "JSON serializable" in str(exc):
                error["message"] = f"the task's output is not JSON-serializable: {exc}"
            result.update(ok=False, error=error, abort=isinstance(exc, AbortTaskError))
        finally:
            if self.running.get(run_id) is asyncio.current_task():
                del self.running[run_id]
        self.send(result)
