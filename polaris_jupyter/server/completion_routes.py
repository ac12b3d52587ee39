"""``POST /polaris/api/v1/completions``: an inline completion streamed as NDJSON, one line per piece.

The route is in the table (``polaris_jupyter.api.routes``, ``stream=True``); this class serves
it because its answer is not one JSON document. It validates and starts the completion through
:meth:`PolarisAPI.dispatch` like every route, then writes :meth:`CompletionHandle.events` one
line at a time and flushes each, so a piece of ghost text leaves the server as soon as the
model produced it. A failure found before the first line (bad input, a provider that is not
configured, every provider failing) is an ordinary JSON error with its status. When the client
goes away (the editor's next keystroke aborts its fetch) tornado calls
:meth:`on_connection_close`, which cancels the completion: its task is cancelled and the model
stream closes at once, so no tokens are paid for a suggestion nobody will see.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any, cast

from tornado import web
from tornado.iostream import StreamClosedError

from polaris_jupyter.agent.completions import CancelReason, CompletionHandle
from polaris_jupyter.errors import PolarisError
from polaris_jupyter.server.base import ApiError
from polaris_jupyter.server.handlers import RouteHandler

__all__ = ["NDJSON", "CompletionStreamHandler"]

NDJSON = "application/x-ndjson"


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=str).encode() + b"\n"


class CompletionStreamHandler(RouteHandler):
    """Serves the ``complete`` route: NDJSON lines ``start``, ``delta``…, ``end`` (or ``error``)."""

    _handle: CompletionHandle | None = None

    @web.authenticated
    async def post(self) -> None:
        """An inline completion (ghost text) at the cursor, streamed."""
        body = self.json_body(required=False, parse_only=True)
        answer = await self.api.dispatch("complete", body=body)
        handle: CompletionHandle = answer.body
        self._handle = handle
        events = cast("AsyncGenerator[dict[str, Any], None]", handle.events())
        try:
            first = await anext(events, None)
            if first is not None and first.get("type") == "error":
                self._raise_error(handle, first)
            self.set_status(200)
            self.set_header("Content-Type", NDJSON)
            self.set_header("Cache-Control", "no-cache, no-store")
            self.set_header("X-Accel-Buffering", "no")  # proxies must not hold the pieces back
            await self._write_all(first, events)
        finally:
            await events.aclose()
            handle.cancel(CancelReason.CANCELLED)  # a no-op once it is final
        if not self._finished:
            self.finish()

    async def _write_all(self, first: dict[str, Any] | None, events: AsyncGenerator[dict[str, Any], None]) -> None:
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            # Small writes must leave at once, not wait for the client's delayed ACK (Nagle).
            stream.set_nodelay(True)
        line = first
        try:
            while line is not None:
                self.write(_line(line))
                if line.get("type") != "start":  # start goes out with the first piece, in one packet
                    await self.flush()
                line = await anext(events, None)
        except StreamClosedError:
            if self._handle is not None:
                self._handle.cancel(CancelReason.CANCELLED)

    def _raise_error(self, handle: CompletionHandle, line: dict[str, Any]) -> None:
        """Nothing was sent yet: the failure becomes the JSON error of the request."""
        if isinstance(handle.error, PolarisError):
            raise handle.error
        status = line.get("status")
        raise ApiError(status if isinstance(status, int) and 400 <= status < 600 else 502, str(line.get("message")))

    def on_connection_close(self) -> None:
        """The client left (the next keystroke, a closed editor): stop the model stream now."""
        if self._handle is not None:
            self._handle.cancel(CancelReason.CANCELLED)
        super().on_connection_close()
