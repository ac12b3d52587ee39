"""Kernels for the notebook tools: find a notebook's own kernel and run code in it, bounded in time.

A notebook open in JupyterLab has a session whose kernel holds the user's variables. The tools
reach it through a :class:`NotebookKernels` (``ToolContext.kernels``): :class:`ServerKernels`
asks the Jupyter server's session and kernel managers; :class:`MappedKernels` is an explicit
map for tests and embedders. :func:`execute` runs one piece of code with a client of its own
(the notebook's frontend is not disturbed: it shows only replies to its own requests) and
collects the outputs as nbformat outputs. Its timeout interrupts the kernel only when the code
running there is ours, so a user's long cell is never stopped; a busy kernel is refused before
anything is queued. :func:`fresh_kernel` starts a kernel for one call and always shuts it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import posixpath
import queue
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import nbformat
from nbformat import NotebookNode

from polaris_jupyter.tools.base import ToolError

__all__ = [
    "Execution",
    "KernelBusy",
    "KernelHandle",
    "KernelUnavailable",
    "MappedKernels",
    "NotebookKernels",
    "ServerKernels",
    "execute",
    "fresh_kernel",
]

#: Outputs kept per execution (bytes of JSON); later ones are counted, not kept.
MAX_OUTPUT_BYTES = 5_000_000
#: How long a busy kernel may take to go idle before a run is refused (comm traffic is brief).
BUSY_GRACE_S = 1.0
_READY_TIMEOUT_S = 30.0
_AFTER_INTERRUPT_S = 3.0


class KernelBusy(ToolError):
    """The kernel is running something else; nothing was sent to it."""


class KernelUnavailable(ToolError):
    """The kernel did not answer in time, died, or could not be reached or started."""


@dataclass(frozen=True)
class KernelHandle:
    """A running kernel: its id and a jupyter_client (async) kernel manager for it."""

    kernel_id: str
    manager: Any
    #: The notebook whose session uses it, when found that way.
    path: str | None = None

    @property
    def busy(self) -> bool:
        """True when the server saw the kernel busy (unknown counts as idle)."""
        return getattr(self.manager, "execution_state", None) == "busy"


class NotebookKernels(Protocol):
    """Where the notebook tools find kernels (``ToolContext.kernels``)."""

    async def for_notebook(self, rel_path: str) -> KernelHandle | None:
        """The kernel of the session that has ``rel_path`` open, if any."""
        ...

    async def by_id(self, kernel_id: str) -> KernelHandle | None: ...


def _norm(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/")).lstrip("/")


class ServerKernels:
    """The Jupyter server's sessions and kernels (session paths are relative to its root, as
    workspace paths are)."""

    def __init__(self, session_manager: Any, kernel_manager: Any) -> None:
        self._sessions = session_manager
        self._kernels = kernel_manager

    @classmethod
    def from_serverapp(cls, serverapp: Any) -> ServerKernels:
        return cls(serverapp.session_manager, serverapp.kernel_manager)

    async def for_notebook(self, rel_path: str) -> KernelHandle | None:
        wanted = _norm(rel_path)
        for session in await self._sessions.list_sessions():
            kernel = session.get("kernel") or {}
            if _norm(str(session.get("path") or "")) == wanted and kernel.get("id"):
                handle = await self.by_id(str(kernel["id"]))
                if handle is not None:
                    return KernelHandle(handle.kernel_id, handle.manager, wanted)
        return None

    async def by_id(self, kernel_id: str) -> KernelHandle | None:
        if kernel_id not in self._kernels:  # get_kernel raises a 404 HTTPError of its own
            return None
        return KernelHandle(kernel_id, self._kernels.get_kernel(kernel_id))


class MappedKernels:
    """Kernels named explicitly: notebook path → handle (tests, embedders)."""

    def __init__(self, by_path: Mapping[str, KernelHandle] | None = None) -> None:
        self._by_path = {_norm(p): h for p, h in (by_path or {}).items()}

    def add(self, rel_path: str, handle: KernelHandle) -> None:
        self._by_path[_norm(rel_path)] = handle

    async def for_notebook(self, rel_path: str) -> KernelHandle | None:
        return self._by_path.get(_norm(rel_path))

    async def by_id(self, kernel_id: str) -> KernelHandle | None:
        return next((h for h in self._by_path.values() if h.kernel_id == kernel_id), None)


@dataclass
class Execution:
    """What one execution produced, in nbformat terms."""

    outputs: list[NotebookNode] = field(default_factory=list)
    execution_count: int | None = None
    #: The reply's status: ok, error, aborted; "timeout" when no reply came in time.
    status: str = "ok"
    language: str = ""
    timed_out: bool = False
    #: True when the timeout (or a cancel) interrupted our code in the kernel.
    interrupted: bool = False
    dropped_outputs: int = 0
    elapsed_ms: float = 0.0

    def stdout(self) -> str:
        return "".join(
            "".join(o.text) if isinstance(o.text, list) else o.text
            for o in self.outputs
            if o.output_type == "stream" and o.get("name") == "stdout"
        )


class _Collector:
    """Turns iopub messages of one request into nbformat outputs (stream text merged,
    clear_output and display updates applied, size capped)."""

    def __init__(self, max_bytes: int) -> None:
        self.outputs: list[NotebookNode] = []
        self.dropped = 0
        self._size = 0
        self._max = max_bytes
        self._clear_on_next = False
        self._displays: dict[str, list[int]] = {}

    def add(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg.get("content", {})
        if kind == "clear_output":
            if content.get("wait"):
                self._clear_on_next = True
            else:
                self._clear()
            return
        if kind == "update_display_data":
            for position in self._displays.get((content.get("transient") or {}).get("display_id", ""), []):
                self.outputs[position]["data"] = content.get("data", {})
                self.outputs[position]["metadata"] = content.get("metadata", {})
            return
        if kind not in ("stream", "display_data", "execute_result", "error"):
            return
        if self._clear_on_next:
            self._clear()
        output = nbformat.v4.output_from_msg(msg)
        size = len(json.dumps(output, default=str))
        if self._size + size > self._max:
            self.dropped += 1
            return
        self._size += size
        last = self.outputs[-1] if self.outputs else None
        if kind == "stream" and last is not None and last.output_type == "stream" and last.name == output.name:
            last.text = last.text + output.text
            return
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id:
            self._displays.setdefault(display_id, []).append(len(self.outputs))
        self.outputs.append(output)

    def _clear(self) -> None:
        self.outputs, self._size, self._clear_on_next, self._displays = [], 0, False, {}


async def _ready(client: Any, deadline: float) -> str:
    """Wait for a kernel_info reply AND its idle status on iopub (so iopub is subscribed and no
    output of ours can be missed); returns the kernel's language."""
    loop = asyncio.get_running_loop()
    while True:
        msg_id = client.kernel_info()
        language, seen_idle, resend_at = "", False, loop.time() + 0.5
        got_reply = False
        while loop.time() < min(resend_at, deadline) and not (got_reply and seen_idle):
            if not got_reply:
                with contextlib.suppress(queue.Empty):
                    reply = await client.get_shell_msg(timeout=0.05)
                    if reply["parent_header"].get("msg_id") == msg_id:
                        got_reply = True
                        language = str((reply["content"].get("language_info") or {}).get("name", ""))
            if seen_idle:
                continue
            with contextlib.suppress(queue.Empty):
                msg = await client.get_iopub_msg(timeout=0.05)
                if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                        and msg["content"].get("execution_state") == "idle"):
                    seen_idle = True
        if got_reply and seen_idle:
            return language
        if loop.time() >= deadline:
            raise KernelUnavailable("the kernel did not answer (kernel_info) in time; it may be busy, starting or dead")


async def execute(
    handle: KernelHandle,
    code: str,
    *,
    timeout_s: float,
    silent: bool = False,
    store_history: bool = True,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
    language: str | None = None,
) -> Execution:
    """Run ``code`` in the kernel of ``handle`` with a client of our own and wait up to
    ``timeout_s`` for it to finish. Refuses a busy kernel (:class:`KernelBusy`) and, when
    ``language`` is given, a kernel of another language, before sending anything; on timeout or
    cancel interrupts the kernel only if our code is what runs there."""
    loop = asyncio.get_running_loop()
    # A kernel is busy for a few milliseconds with every comm message it handles (the notebook
    # ChatPanel's own Send is one): only a kernel still busy after the grace runs a user's cell.
    grace_ends = loop.time() + BUSY_GRACE_S
    while handle.busy:
        if loop.time() >= grace_ends:
            raise KernelBusy("the kernel is busy running another cell; try again when it is idle")
        await asyncio.sleep(0.05)
    started = loop.time()
    deadline = started + timeout_s
    client = handle.manager.client()
    client.start_channels()
    result = Execution()
    collector = _Collector(max_output_bytes)
    running = False  # our request reached the kernel and has not finished
    try:
        result.language = await _ready(client, min(deadline, started + _READY_TIMEOUT_S))
        if language is not None and result.language.lower() != language:
            raise ToolError(f"the kernel runs {result.language or 'an unknown language'}; this needs a {language} kernel")
        msg_id = client.execute(code, silent=silent, store_history=store_history, allow_stdin=False,
                                stop_on_error=False)
        idle = False
        reply: dict[str, Any] | None = None
        while not (idle and reply is not None):
            if loop.time() >= deadline:
                result.timed_out, result.status = True, "timeout"
                break
            with contextlib.suppress(queue.Empty):
                msg = await client.get_iopub_msg(timeout=min(0.1, max(deadline - loop.time(), 0.001)))
                if msg["parent_header"].get("msg_id") == msg_id:
                    if msg["msg_type"] == "status":
                        state = msg["content"].get("execution_state")
                        running = state == "busy"
                        idle = state == "idle"
                    elif msg["msg_type"] == "execute_input":
                        running = True
                    else:
                        collector.add(msg)
            if idle and reply is None:
                with contextlib.suppress(queue.Empty):
                    candidate = await client.get_shell_msg(timeout=0.05)
                    if candidate["parent_header"].get("msg_id") == msg_id:
                        reply = candidate
        if reply is not None:
            result.status = str(reply["content"].get("status", "ok"))
            count = reply["content"].get("execution_count")
            result.execution_count = count if isinstance(count, int) and not silent else None
        if result.timed_out and running:
            await _interrupt(handle, client, msg_id, collector)
            result.interrupted = True
    except asyncio.CancelledError:
        if running:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.manager.interrupt_kernel(), _AFTER_INTERRUPT_S)
        raise
    finally:
        client.stop_channels()
    result.outputs, result.dropped_outputs = collector.outputs, collector.dropped
    result.elapsed_ms = (loop.time() - started) * 1000
    return result


async def _interrupt(handle: KernelHandle, client: Any, msg_id: str, collector: _Collector) -> None:
    """Interrupt our own code and keep what it printed on the way out (KeyboardInterrupt)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(handle.manager.interrupt_kernel(), _AFTER_INTERRUPT_S)
    end = loop.time() + _AFTER_INTERRUPT_S
    while loop.time() < end:
        with contextlib.suppress(queue.Empty):
            msg = await client.get_iopub_msg(timeout=0.1)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                return
            if msg["msg_type"] != "status":
                collector.add(msg)


@contextlib.asynccontextmanager
async def fresh_kernel(kernel_name: str, *, cwd: Path, env: dict[str, str] | None = None,
                       startup_timeout_s: float = 60.0) -> AsyncIterator[KernelHandle]:
    """A kernel started for one call (in ``cwd``, with ``env``) and shut down after it."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager

    manager = AsyncKernelManager(kernel_name=kernel_name)
    started = time.monotonic()
    try:
        kwargs: dict[str, Any] = {"cwd": str(cwd)}
        if env is not None:
            kwargs["env"] = env
        await asyncio.wait_for(manager.start_kernel(**kwargs), startup_timeout_s)
    except NoSuchKernel:
        raise KernelUnavailable(f"no kernel named {kernel_name!r} is installed here (see `jupyter kernelspec list`)") from None
    except (asyncio.TimeoutError, RuntimeError, OSError) as exc:
        with contextlib.suppress(Exception):
            await manager.shutdown_kernel(now=True)
        raise KernelUnavailable(f"the {kernel_name!r} kernel did not start in {time.monotonic() - started:.0f} s: {exc}") from None
    try:
        yield KernelHandle(f"fresh-{manager.kernel_id or kernel_name}", manager)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(manager.shutdown_kernel(now=True))
