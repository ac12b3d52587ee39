"""The kernel side of kernel-defined tasks: claim them on the server, run the attempts it sends.

A ``@task`` defined in a notebook cell lands in this kernel's task registry. The bridge keeps one
WebSocket to the server (``/polaris/api/v1/kernel-worker``), claims every task in the registry
(again after each cell that changed one, and after a reconnect), and runs each attempt the
server sends with a context that forwards logs, metadata, checkpoints and events to the real
run. The server cancels an attempt by sending ``cancel``; the task's coroutine is cancelled.
The frames are the typed ones of ``polaris_jupyter.jobs.worker_frames``; the context keeps the
``TaskContext`` contract with the same rules as the server's (``polaris_jupyter.jobs.context``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
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
    RunStatus,
    TaskRegistry,
    TriggerOptions,
    call_hook,
    default_registry,
    is_retryable,
    options_to_json,
)
from polaris_jupyter.jobs.context import (
    EVENT_PREFIXES_RESERVED_FOR_SERVER,
    MetadataChange,
    RunLogger,
    RunMetadata,
    TaskContext,
    check_checkpoint,
    check_event,
    check_output,
)
from polaris_jupyter.jobs.worker_frames import (
    SERVER_FRAMES,
    AckFrame,
    CancelFrame,
    CheckpointFrame,
    ClaimedFrame,
    ClaimFrame,
    EmitFrame,
    ErrorFrame,
    Frame,
    FrameError,
    LogFrame,
    MetadataFrame,
    RequestFrame,
    ResultFrame,
    RunFrame,
    TaskError,
    TaskSpec,
    TriggerFrame,
    parse_frame,
)
from polaris_jupyter.kernel._base import PolarisError

if TYPE_CHECKING:
    from polaris_jupyter.kernel._loop import LoopThread
    from polaris_jupyter.kernel._remote import RemoteBackend

__all__ = ["KernelRunContext", "KernelRunHandle", "KernelRunResult", "TaskBridge", "kernel_id"]

log = logging.getLogger("polaris_jupyter.kernel")
CONNECT_TIMEOUT_S = 10.0
#: How many refusals from the server the bridge keeps (``TaskBridge.frame_errors``).
MAX_FRAME_ERRORS = 50


def kernel_id() -> str:
    """This kernel's id (from its connection file), else a process id."""
    with contextlib.suppress(Exception):
        from ipykernel.connect import get_connection_file

        name = os.path.basename(get_connection_file())
        if name.startswith("kernel-") and name.endswith(".json"):
            return name[len("kernel-") : -len(".json")]
    return f"pid-{os.getpid()}"


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
    """The ``ctx`` a kernel-defined task gets: the ``TaskContext`` contract, forwarded over the wire.

    Metadata, log lines, checkpoints and events are checked here by the same rules as on the
    server (a bad value raises ``InvalidInput`` in the task, with the server's message) and then
    sent; the server applies them again through those rules."""

    def __init__(self, bridge: TaskBridge, frame: RunFrame) -> None:
        self._bridge = bridge
        self.run_id = frame.run_id
        self.task_id = frame.task_id
        self.attempt = frame.attempt
        self.max_attempts = frame.run.max_attempts
        self.payload: Any = frame.payload
        self.tags: list[str] = list(frame.run.tags)
        self._checkpoints: dict[str, Any] = dict(frame.run.checkpoints)
        self.metadata = RunMetadata(dict(frame.run.metadata), self._metadata_changed)
        self.logger = RunLogger(
            lambda level, message, data: bridge.send(LogFrame(run_id=self.run_id, level=level, message=message, data=data))
        )

    def _metadata_changed(self, change: MetadataChange) -> None:
        self._bridge.send(MetadataFrame(run_id=self.run_id, op=change.op, key=change.key, value=change.value))

    def checkpoint(self, key: str) -> Any:
        return self._checkpoints.get(key)

    async def save_checkpoint(self, key: str, value: Any) -> None:
        """Persist ``value`` under ``key`` on the server; returns once it is on disk there."""
        check_checkpoint(key, value)
        await self._bridge.request(CheckpointFrame(id=self._bridge.new_request_id(), run_id=self.run_id, key=key, value=value))
        self._checkpoints[key] = value

    def emit(self, type: str, data: dict[str, Any]) -> None:
        """Stream a custom event on the run; the engine's and the chat's event types are refused."""
        check_event(type, data, EVENT_PREFIXES_RESERVED_FOR_SERVER)
        self._bridge.send(EmitFrame(run_id=self.run_id, event_type=type, data=data))

    async def trigger(
        self, task_id: str, payload: Any = None, options: TriggerOptions | dict[str, Any] | None = None
    ) -> KernelRunHandle:
        """Trigger a child run, as the engine's ``ctx.trigger`` does: the server triggers it from
        this attempt's context, so the child records its parent and idempotency keys scoped to
        the run or the attempt work. ``options`` is a TriggerOptions or its JSON form."""
        wire = options_to_json(options) if isinstance(options, TriggerOptions) else options
        frame = TriggerFrame(id=self._bridge.new_request_id(), run_id=self.run_id, task_id=task_id, payload=payload, options=wire)
        reply = await self._bridge.request(frame)
        data = reply.data if isinstance(reply, AckFrame) and isinstance(reply.data, dict) else {}
        if not isinstance(data.get("id"), str):
            raise PolarisError("the server's answer to a trigger carries no run id", 502)
        return KernelRunHandle(self._bridge.backend, data["id"], is_cached=bool(data.get("isCached")))

    async def trigger_and_wait(
        self, task_id: str, payload: Any = None, options: TriggerOptions | dict[str, Any] | None = None
    ) -> KernelRunResult:
        """Trigger a child run and wait until it is final."""
        handle = await self.trigger(task_id, payload, options)
        return await handle.result()


if TYPE_CHECKING:  # mypy proves the kernel's context keeps the contract

    def _conforms(ctx: KernelRunContext) -> TaskContext:
        return ctx


class TaskBridge:
    """One WebSocket per kernel: claims its tasks and runs the attempts the server sends."""

    def __init__(self, backend: RemoteBackend, loop: LoopThread, registry: TaskRegistry | None = None) -> None:
        self.backend = backend
        self.loop = loop
        self.registry = registry or default_registry
        self.kernel_id = kernel_id()
        self.sent: dict[str, TaskSpec] = {}
        self.claimed: set[str] = set()
        self.refused: dict[str, str] = {}
        self.running: dict[str, asyncio.Task[None]] = {}
        #: The server's refusals of frames this kernel sent (newest last), and bad frames it sent.
        self.frame_errors: collections.deque[str] = collections.deque(maxlen=MAX_FRAME_ERRORS)
        self._conn: WebSocketClientConnection | None = None
        self._connected: asyncio.Event | None = None
        self._main: asyncio.Task[None] | None = None
        self._requests: dict[str, asyncio.Future[ClaimedFrame | AckFrame]] = {}
        self._ids = itertools.count(1)
        self._closing = False

    def task_spec(self, task_id: str) -> TaskSpec | None:
        definition = self.registry.get(task_id)
        return TaskSpec.from_task(definition, f"defined in kernel {self.kernel_id[:8]}") if definition else None

    # -- public (run on the loop) ----------------------------------------------------------------
    async def sync(self) -> dict[str, Any]:
        """Claim tasks that are new or changed since the last claim; returns what the server said."""
        await self._ensure_connected()
        specs = [spec for d in self.registry.all() if (spec := self.task_spec(d.id)) is not None]
        changed = [spec for spec in specs if self.sent.get(spec.id) != spec]
        new_refusals: dict[str, str] = {}
        if changed:
            reply = await self.request(ClaimFrame(id=self.new_request_id(), tasks=[spec.to_json() for spec in changed]))
            for spec in changed:
                self.sent[spec.id] = spec
            if isinstance(reply, ClaimedFrame):
                self.claimed.update(reply.tasks)
                new_refusals = dict(reply.refused)
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

    def new_request_id(self) -> str:
        """The ``id`` of a request frame; the server's ``claimed`` / ``ack`` answer carries it."""
        return f"k{next(self._ids)}"

    def send(self, frame: Frame) -> None:
        if self._conn is None:
            return
        try:
            self._conn.write_message(frame.dumps())
        except Exception as exc:  # closed meanwhile: the server fails the attempt itself
            log.debug("polaris: could not send %s: %s", frame.TYPE, exc)

    async def request(self, frame: RequestFrame, timeout_s: float = 30.0) -> ClaimedFrame | AckFrame:
        """Send a request frame and wait for its answer; a refusal raises ``PolarisError``."""
        request_id = frame.id or self.new_request_id()
        future: asyncio.Future[ClaimedFrame | AckFrame] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        try:
            if self._conn is None:
                raise PolarisError("not connected to the Polaris server", 503)
            self.send(frame if frame.id == request_id else _with_id(frame, request_id))
            reply = await asyncio.wait_for(future, timeout_s)
        finally:
            self._requests.pop(request_id, None)
        if isinstance(reply, AckFrame) and not reply.ok:
            raise PolarisError(reply.error or "the server refused the request")
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
                    reclaim = [spec for task_id in sorted(self.claimed) if (spec := self.task_spec(task_id)) is not None]
                    if reclaim:
                        self.send(ClaimFrame(id="reclaim", tasks=[spec.to_json() for spec in reclaim]))
                        self.sent.update((spec.id, spec) for spec in reclaim)
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

    def _frame_error(self, message: str) -> None:
        self.frame_errors.append(message)
        log.warning("polaris: %s", message)

    async def _read(self, conn: WebSocketClientConnection) -> None:
        while True:
            message = await conn.read_message()
            if message is None:
                return
            try:
                frame = parse_frame(message, SERVER_FRAMES)
            except FrameError as exc:
                self._frame_error(f"ignored a frame from the server: {exc}")
                continue
            if isinstance(frame, (ClaimedFrame, AckFrame)):
                future = self._requests.get(str(frame.id))
                if future is not None and not future.done():
                    future.set_result(frame)
            elif isinstance(frame, RunFrame):
                old = self.running.pop(frame.run_id, None)
                if old is not None:
                    old.cancel()
                self.running[frame.run_id] = asyncio.get_running_loop().create_task(
                    self._execute(frame), name=f"polaris-kernel-run-{frame.run_id}"
                )
            elif isinstance(frame, CancelFrame):
                task = self.running.get(frame.run_id)
                if task is not None:
                    task.cancel()
            elif isinstance(frame, ErrorFrame):
                self._frame_error(f"the server refused a {frame.frame_type or 'malformed'} frame from this kernel: {frame.error}")

    # -- attempts --------------------------------------------------------------------------------
    async def _execute(self, frame: RunFrame) -> None:
        run_id = frame.run_id
        definition = self.registry.get(frame.task_id)
        result: ResultFrame
        try:
            if definition is None:
                raise LookupError(f"task {frame.task_id!r} is no longer defined in this kernel")
            ctx = KernelRunContext(self, frame)
            try:
                if ctx.attempt == 1:
                    await call_hook(definition.on_start, ctx.payload, ctx)
                output = await definition.fn(ctx.payload, ctx)  # type: ignore[arg-type]
                check_output(output)
            except asyncio.CancelledError:
                await call_hook(definition.on_cancel, ctx.payload, ctx)
                raise
            except Exception as exc:
                if not is_retryable(exc) or ctx.attempt >= ctx.max_attempts:
                    await call_hook(definition.on_failure, ctx.payload, exc, ctx)
                raise
            await call_hook(definition.on_success, ctx.payload, output, ctx)
            result = ResultFrame(run_id=run_id, attempt=frame.attempt, ok=True, output=output)
        except asyncio.CancelledError:
            error = TaskError(name="Canceled", message="canceled in the kernel")
            self.send(ResultFrame(run_id=run_id, attempt=frame.attempt, ok=False, canceled=True, error=error))
            raise
        except Exception as exc:
            stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            error = TaskError(name=type(exc).__name__, message=str(exc) or type(exc).__name__, stack=stack[-4000:])
            result = ResultFrame(run_id=run_id, attempt=frame.attempt, ok=False, error=error, abort=not is_retryable(exc))
        finally:
            if self.running.get(run_id) is asyncio.current_task():
                del self.running[run_id]
        self.send(result)


def _with_id(frame: RequestFrame, request_id: str) -> RequestFrame:
    return dataclasses.replace(frame, id=request_id)
