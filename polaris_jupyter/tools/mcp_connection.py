"""One MCP server: a long-lived task that owns its session and keeps it alive.

The task connects (stdio: starts the program in the workspace with the SDK's safe default
environment plus the entry's ``env``; HTTP: the streamable HTTP endpoint with the entry's
headers), initializes, lists the tools, then watches the connection: the end of a stdio
server's output, a failed ping, or a call that finds the connection closed. When the session
dies the server is ``failed`` with the reason (for a program: the tail of its stderr) and is
restarted after a backoff (``min_s`` doubling up to ``max_s``; reset once a session has stayed
up). Tool calls come from other tasks (the runs) and share the session; a cancelled call
cancels the request (the SDK tells the server).

The SDK is anyio-based and its context managers must be entered and left by one task: only
:meth:`McpConnection._run` does that, and :meth:`stop` asks it to leave instead of cancelling
it (which could cut the program's shutdown short).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import anyio

from polaris_jupyter._version import __version__
from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.mcp_config import McpServerSpec, McpStatus, McpTransport, expand_env
from polaris_jupyter.tools.mcp_tools import McpToolInfo

__all__ = ["Backoff", "McpConnection", "McpUnavailable"]

log = logging.getLogger("polaris_jupyter.tools.mcp")

#: Characters of a stdio server's stderr kept in its failure reason.
STDERR_TAIL_CHARS = 1_500
#: How long a stopping server gets to end its session before its task is cancelled.
STOP_GRACE_S = 8.0
#: Env and header values at least this long are masked in failure reasons.
MIN_MASKED_CHARS = 6
#: MCP's JSON-RPC error code for "the connection closed".
_CONNECTION_CLOSED = -32000


class McpUnavailable(ToolError):
    """The server is not connected (it is connecting, failed or disabled); the message says which and
    why. A ToolError, so the model reads it as the call's result."""


@dataclass
class Backoff:
    """Delay before restart n (1-based): ``min(max_s, min_s * factor**(n-1))``."""

    min_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0
    #: A session that stayed up this long resets the count.
    stable_s: float = 30.0

    def delay_s(self, failures: int) -> float:
        return min(self.max_s, self.min_s * self.factor ** max(0, failures - 1))


class _ConnectionLost(Exception):
    """The watch found the session gone (its reason is the message)."""


class McpConnection:
    """The state and the session of one configured server (see the module docstring)."""

    def __init__(
        self,
        spec: McpServerSpec,
        *,
        root: Path,
        connect_timeout_s: float,
        health_interval_s: float = 15.0,
        backoff: Backoff | None = None,
        on_change: Callable[[McpConnection], None] | None = None,
    ) -> None:
        self.spec = spec
        self.root = root
        self.connect_timeout_s = connect_timeout_s
        self.health_interval_s = health_interval_s
        self.backoff = backoff or Backoff()
        self._on_change = on_change
        self.status = McpStatus.DISABLED if spec.disabled else McpStatus.CONNECTING
        self.error: str | None = spec.error
        if spec.error is not None:
            self.status = McpStatus.FAILED
        self.tools: list[McpToolInfo] = []
        self.server_info: str | None = None
        #: Sessions opened so far, and how long the last connect took (start → tools listed).
        self.connections = 0
        self.connect_ms: float | None = None
        self.retry_at: float | None = None
        self._session: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._tools_changed = False
        self._closed_by_peer = False
        self._transport_error: str | None = None
        #: The scope of the current attempt (anyio's: cancelling it ends the SDK's contexts in order).
        self._scope: anyio.CancelScope | None = None
        #: The expanded env and header values of the entry (masked in failure reasons).
        self._secrets: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the owner task (returns at once); a disabled or misconfigured server stays as it is."""
        if self._task is not None or self.spec.disabled or self.spec.error is not None:
            return
        self._task = asyncio.create_task(self._run(), name=f"mcp:{self.spec.name}")

    async def stop(self) -> None:
        """End the session (a program gets closed stdin, then SIGTERM) and the owner task."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        if self._scope is not None:  # also while connecting: anyio's cancel lets the SDK stop the program
            self._scope.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_S)
        if not done:
            log.warning("MCP server %s did not stop within %g s; cancelling its task", self.spec.name, STOP_GRACE_S)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    # -- calls from runs -----------------------------------------------------------------
    async def call(self, tool: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        """``tools/call`` on the live session; TimeoutError after ``timeout_s`` (the request is cancelled)."""
        session = self._session
        if session is None or self.status is not McpStatus.READY:
            raise McpUnavailable(self.unavailable_reason())
        from mcp.shared.exceptions import MCPError

        try:
            async with asyncio.timeout(timeout_s):
                return await session.call_tool(tool, arguments)
        except MCPError as exc:
            if exc.code == _CONNECTION_CLOSED:
                self._wake.set()  # let the owner notice now, not at the next ping
                raise McpUnavailable(f"MCP server {self.spec.name} closed the connection during the call; "
                                     "it is being restarted") from None
            raise McpUnavailable(f"MCP server {self.spec.name} refused the call: {exc.message}") from None

    def unavailable_reason(self) -> str:
        name = self.spec.name
        if self.status is McpStatus.DISABLED:
            return f"MCP server {name} is disabled in {self.spec.source}"
        if self.status is McpStatus.FAILED:
            return f"MCP server {name} is not connected: {self.error}"
        return f"MCP server {name} is still connecting; try again in a moment"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.spec.name, "transport": self.spec.transport.value, "target": self.spec.target,
            "source": self.spec.source, "status": self.status.value, "error": self.error,
            "serverInfo": self.server_info, "connections": self.connections, "connectMs": self.connect_ms,
            "retryAt": self.retry_at, "tools": [t.to_json() for t in self.tools],
        }

    # -- the owner task --------------------------------------------------------------------
    def _set(self, status: McpStatus, error: str | None = None) -> None:
        if error is not None:  # a reason never shows the entry's env or header values (tokens)
            for secret in self._secrets:
                error = error.replace(secret, "***")
        self.status, self.error = status, error
        if self._on_change is not None:
            self._on_change(self)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self.retry_at = None
            self._set(McpStatus.CONNECTING, None)
            started = time.monotonic()
            try:
                with anyio.CancelScope() as self._scope:
                    await self._serve_once()
                if self._scope.cancelled_caught:
                    break
            except asyncio.CancelledError:
                if self._stopping.is_set():  # the SDK's own scopes re-raise our stop as a cancel
                    break
                raise
            except BaseException as exc:  # every failure is the server's status
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                reason = _describe(exc)
                self.tools = []
                if self._stopping.is_set():
                    break
                failures = 1 if time.monotonic() - started >= self.backoff.stable_s and self.connections else failures + 1
                delay_s = self.backoff.delay_s(failures)
                self.retry_at = time.time() + delay_s
                self._set(McpStatus.FAILED, reason)
                log.warning("MCP server %s failed (%s); restarting in %g s", self.spec.name, reason, delay_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay_s)
                continue
            break  # _serve_once returns only when asked to stop
        self.tools = []

    async def _serve_once(self) -> None:
        await asyncio.to_thread(_import_sdk, self.spec.transport)  # a heavy first import (~1 s), off the loop
        from mcp.client.session import ClientSession
        from mcp.types import Implementation

        self._closed_by_peer, self._transport_error, self._tools_changed = False, None, False
        started = time.perf_counter()
        errlog = await asyncio.to_thread(_stderr_file) if self.spec.transport is McpTransport.STDIO else None
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    async with asyncio.timeout(self.connect_timeout_s):
                        read, write = await stack.enter_async_context(self._transport(errlog))
                        session = await stack.enter_async_context(ClientSession(
                            read, write, message_handler=self._on_message,
                            client_info=Implementation(name="polaris-jupyter", version=__version__),
                        ))
                        init = await session.initialize()
                        self.tools = await self._list_tools(session)
                except TimeoutError:
                    raise _ConnectionLost(f"no answer within {self.connect_timeout_s:g} s while connecting "
                                          "(PolarisConfig.mcp_connect_timeout_s)") from None
                self.server_info = f"{init.server_info.name} {init.server_info.version or ''}".strip()
                self.connect_ms = (time.perf_counter() - started) * 1000.0
                self.connections += 1
                self._session = session
                self._set(McpStatus.READY, None)
                log.info("MCP server %s ready: %d tools in %.0f ms", self.spec.name, len(self.tools), self.connect_ms)
                try:
                    await self._watch(session)
                finally:
                    self._session = None
        except BaseException as exc:
            tail = await asyncio.to_thread(_tail, errlog) if errlog is not None else ""
            if tail and not self._stopping.is_set() and not isinstance(exc, asyncio.CancelledError):
                raise _ConnectionLost(f"{_describe(exc)}; its stderr ends with: {tail}") from exc
            raise
        finally:
            if errlog is not None:
                await asyncio.to_thread(errlog.close)

    async def _list_tools(self, session: Any) -> list[McpToolInfo]:
        out: list[McpToolInfo] = []
        cursor: str | None = None
        from mcp.types import PaginatedRequestParams

        while True:
            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            out.extend(McpToolInfo.from_mcp(self.spec.name, tool) for tool in page.tools)
            cursor = page.next_cursor
            if not cursor:
                return out

    async def _watch(self, session: Any) -> None:
        """Return when asked to stop; raise when the session is gone."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.health_interval_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            if self._closed_by_peer:
                raise _ConnectionLost("the server closed the connection (the program exited?)")
            if self._tools_changed:
                self._tools_changed = False
                self.tools = await self._list_tools(session)
                self._set(McpStatus.READY, None)
            try:
                async with asyncio.timeout(min(10.0, self.connect_timeout_s)):
                    await session.send_ping()
            except Exception as exc:
                raise _ConnectionLost(f"the server stopped answering: {self._transport_error or _describe(exc)}") from exc

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self._transport_error = _describe(message)
            self._wake.set()
        elif getattr(message, "method", None) == "notifications/tools/list_changed":
            self._tools_changed = True
            self._wake.set()

    @contextlib.asynccontextmanager
    async def _transport(self, errlog: TextIO | None) -> AsyncIterator[tuple[Any, Any]]:
        spec = self.spec
        if spec.transport is McpTransport.HTTP:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            url = expand_env(spec.url, "url")
            headers = {k: expand_env(v, f"headers.{k}") for k, v in spec.headers.items()}
            self._secrets = _maskable(headers.values())
            timeout = httpx2.Timeout(self.connect_timeout_s, read=300.0)
            async with httpx2.AsyncClient(headers=headers, timeout=timeout) as client:
                async with streamable_http_client(url, http_client=client) as (read, write):
                    yield read, write
            return
        from mcp.client.stdio import StdioServerParameters, stdio_client

        cwd = self.root if spec.cwd is None else (self.root / expand_env(spec.cwd, "cwd"))
        params = StdioServerParameters(
            command=expand_env(spec.command, "command"),
            args=[expand_env(a, f"args[{i}]") for i, a in enumerate(spec.args)],
            env={k: expand_env(v, f"env.{k}") for k, v in spec.env.items()},
            cwd=str(cwd),
        )
        self._secrets = _maskable((params.env or {}).values())
        assert errlog is not None
        async with stdio_client(params, errlog=errlog) as (read, write):
            yield _EndWatch(read, self._peer_closed), write

    def _peer_closed(self) -> None:
        self._closed_by_peer = True
        self._wake.set()


class _EndWatch:
    """A stdio read stream that tells when it ends (the program exited or closed its output)."""

    def __init__(self, stream: Any, on_end: Callable[[], None]) -> None:
        self._stream = stream
        self._on_end = on_end

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __aiter__(self) -> _EndWatch:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            self._on_end()
            raise

    async def receive(self) -> Any:
        return await self._stream.receive()

    async def __aenter__(self) -> _EndWatch:
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._stream.__aexit__(*exc)

    async def aclose(self) -> None:
        await self._stream.aclose()


def _import_sdk(transport: McpTransport) -> None:
    names = ["mcp.types", "mcp.client.session", "mcp.shared.exceptions"]
    names += ["httpx2", "mcp.client.streamable_http"] if transport is McpTransport.HTTP else ["mcp.client.stdio"]
    for name in names:
        importlib.import_module(name)


def _maskable(values: Iterable[str]) -> list[str]:
    """Values long enough to be secrets (short ones such as "1" or "warn" would mask too much), longest first."""
    return sorted({v for v in values if len(v) >= MIN_MASKED_CHARS}, key=len, reverse=True)


def _stderr_file() -> TextIO:
    return cast(TextIO, tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace"))


def _tail(errlog: TextIO) -> str:
    try:
        errlog.flush()
        size = errlog.seek(0, 2)
        errlog.seek(max(0, size - STDERR_TAIL_CHARS * 2))
        text = errlog.read()
    except (OSError, ValueError):
        return ""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    tail = " | ".join(lines)
    return tail[-STDERR_TAIL_CHARS:]


def _describe(exc: BaseException) -> str:
    """The first real failure inside ``exc`` (anyio wraps them in exception groups), in one line."""
    while isinstance(group := getattr(exc, "exceptions", None), tuple) and group:
        real = [e for e in group if not isinstance(e, asyncio.CancelledError)]
        exc = (real or list(group))[0]
    if isinstance(exc, _ConnectionLost | McpUnavailable):
        return str(exc)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"cannot start {exc.filename!r}: no such program (is it installed and on PATH?)"
    text = str(exc).strip() or type(exc).__name__
    name = type(exc).__name__
    return text if name in ("MCPError", "ValueError") else f"{name}: {text}"
