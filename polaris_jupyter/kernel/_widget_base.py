"""What both notebook widgets share: the bundles, the request/response plumbing over anywidget
custom messages (the browser's ``request`` answered by ``_do_<action>`` on the Polaris loop)
and the batching of a live event stream into at most one message per window."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget

from polaris_jupyter.kernel._base import PolarisError

if TYPE_CHECKING:
    from polaris_jupyter.kernel.client import Polaris

__all__ = ["BATCH_WINDOW_S", "PolarisWidget", "batched", "bundle", "error_text"]

log = logging.getLogger("polaris_jupyter.kernel")
STATIC = Path(__file__).parent / "static"
#: Custom messages of one widget are at least this far apart (<= 20 per second).
BATCH_WINDOW_S = 0.05


def bundle(name: str) -> Any:
    path = STATIC / name
    if path.is_file():
        return path
    if name.endswith(".css"):
        return ""
    return (
        "export default { render({ el }) { el.textContent = 'The Polaris widget bundle is missing: "
        "run `cd labextension && npm run build:widget` (or install a released wheel).'; } };"
    )


def error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, PolarisError) else f"{type(exc).__name__}: {exc}"


class PolarisWidget(anywidget.AnyWidget):
    """Request/response plumbing shared by both widgets; all work runs on the Polaris loop."""

    def __init__(self, client: Polaris, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client = client
        self._pump: concurrent.futures.Future[None] | None = None
        self._closed = False
        self.on_msg(self._on_custom)

    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("kind") != "request":
            return
        request_id = str(content.get("id") or "")
        action = str(content.get("action") or "")
        raw_args = content.get("args")
        args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
        try:
            self._client.loop.submit(self._answer(request_id, action, args))
        except RuntimeError as exc:  # the client was closed (disconnect()): say so, do not raise in the comm
            self._push({"kind": "response", "id": request_id, "ok": False, "error": f"Polaris is disconnected: {exc}"})

    async def _answer(self, request_id: str, action: str, args: dict[str, Any]) -> None:
        handler = getattr(self, f"_do_{action}", None)
        try:
            if handler is None:
                raise PolarisError(f"unknown widget action {action!r}")
            data = await handler(args)
        except Exception as exc:
            status = exc.status if isinstance(exc, PolarisError) else None  # 409: the UI offers to force
            self._push({"kind": "response", "id": request_id, "ok": False, "error": error_text(exc), "status": status})
            return
        self._push({"kind": "response", "id": request_id, "ok": True, "data": data})

    def _push(self, content: dict[str, Any]) -> None:
        if not self._closed:
            self.send(content)

    def _start_pump(self, coro: Any) -> None:
        self._stop_pump()
        self._pump = self._client.loop.submit(coro)
        self._pump.add_done_callback(self._pump_done)

    def _pump_done(self, future: concurrent.futures.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.warning("polaris widget stream stopped: %s", exc)
            self._on_pump_error(exc)

    def _on_pump_error(self, exc: BaseException) -> None:
        pass

    def _stop_pump(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None

    def close(self) -> None:
        self._closed = True
        self._stop_pump()
        super().close()


async def batched(stream: Any, window_s: float) -> Any:
    """Yield lists of items from ``stream``, at most one list per ``window_s``."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()

    async def read() -> None:
        try:
            async for item in stream:
                queue.put_nowait(item)
        except Exception as exc:
            queue.put_nowait(exc)
        else:
            queue.put_nowait(done)

    reader = asyncio.create_task(read())
    loop = asyncio.get_running_loop()
    sent_at = -1e9
    try:
        while True:
            first = await queue.get()
            wait_s = sent_at + window_s - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            batch = [first]
            while not queue.empty():
                batch.append(queue.get_nowait())
            tail = next((x for x in batch if x is done or isinstance(x, Exception)), None)
            items = [x for x in batch if x is not done and not isinstance(x, Exception)]
            if items:
                sent_at = loop.time()
                yield items
            if isinstance(tail, Exception):
                raise tail
            if tail is done:
                return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        with contextlib.suppress(Exception):
            await stream.aclose()
