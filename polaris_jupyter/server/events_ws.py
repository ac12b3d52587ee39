"""The event WebSocket: every event (or one run's / one conversation's), resumable by ``since``.

Each text frame is one event as JSON. A client that reconnects with ``since=<last seq seen>``
gets everything after it, without gaps or duplicates. A client that cannot keep up is closed
with code 4000 and can resume the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from polaris_jupyter.jobs import EventFilter, SubscriberLagging
from polaris_jupyter.server.base import BearerWebSocketMixin

__all__ = ["EventsWebSocket", "encode_event"]


def encode_event(data: dict[str, Any]) -> str:
    """Compact JSON without null fields: deltas are small, so framing overhead matters."""
    return json.dumps({k: v for k, v in data.items() if v is not None}, separators=(",", ":"), default=str)


class EventsWebSocket(BearerWebSocketMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    _pump: asyncio.Task[None] | None = None

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        runtime = self.settings.get("polaris_runtime")
        if runtime is None or not runtime.started:
            raise web.HTTPError(503, "the Polaris engine is starting")
        if not self._polaris_bearer and not self.authorizer.is_authorized(self, self.current_user, "read", "polaris"):
            raise web.HTTPError(403)
        since_text = self.get_query_argument("since", None)
        if since_text not in (None, "") and not str(since_text).isdigit():
            raise web.HTTPError(400, "since must be a non-negative integer")
        self._since = int(since_text) if since_text not in (None, "") else None
        self._filter = EventFilter(
            run_id=self.get_query_argument("run", None) or None,
            conversation_id=self.get_query_argument("conversation", None) or None,
        )
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().open()
        self._pump = asyncio.create_task(self._forward())

    async def _forward(self) -> None:
        bus = self.settings["polaris_runtime"].engine.bus
        try:
            async for event in bus.subscribe(self._filter, self._since):
                data = event.to_json()
                if self._filter.conversation_id is not None:
                    data.pop("conversationId", None)  # implied by the subscription
                if event.type == "message.delta":
                    data.pop("ts", None)  # deltas are many and small; their time is not used
                await self.write_message(encode_event(data))
        except SubscriberLagging as exc:
            self.close(4000, str(exc)[:120])
        except (WebSocketClosedError, asyncio.CancelledError):
            pass
        except Exception:
            self.log.exception("polaris event stream failed")
            self.close(1011, "event stream failed")

    def on_message(self, message: str | bytes) -> None:
        """Clients only listen; a ``ping`` text gets a ``pong`` (useful behind proxies)."""
        if message == "ping":
            with contextlib.suppress(WebSocketClosedError):
                self.write_message("pong")

    def on_close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
