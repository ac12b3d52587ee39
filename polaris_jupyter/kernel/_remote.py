"""The remote backend: the server extension's REST API (httpx) and event WebSocket (tornado).

The kernel inherits ``POLARIS_URL`` and ``POLARIS_TOKEN`` from the server that launched it and
sends ``Authorization: Bearer <token>``. The event stream reconnects on its own after a drop
and resumes with ``since=<last seq seen>``, so a consumer sees every event exactly once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from polaris_jupyter.api import route_for
from polaris_jupyter.api.routes import snake_case
from polaris_jupyter.errors import error_for_status
from polaris_jupyter.kernel._base import Backend, PolarisError

__all__ = ["RemoteBackend"]

log = logging.getLogger("polaris_jupyter.kernel")
API = "polaris/api/v1"
#: Reconnect backoff of the event stream: first retry fast, then at most every few seconds.
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 3.0


class RemoteBackend(Backend):
    """Talks to a Jupyter server running the Polaris extension."""

    mode = "remote"

    def __init__(self, url: str, token: str, *, scheme: str = "Bearer", request_timeout_s: float = 30.0) -> None:
        if not url:
            raise PolarisError("no server URL (POLARIS_URL) to connect to")
        self.base_url = url if url.endswith("/") else url + "/"
        self.auth_header = f"{scheme} {token}" if token else ""
        self.request_timeout_s = request_timeout_s
        self._http: httpx.AsyncClient | None = None
        #: How many times event streams reconnected (for diagnostics and tests).
        self.reconnects = 0

    @property
    def description(self) -> str:
        return f"Polaris server at {self.base_url}"

    @property
    def ws_base(self) -> str:
        return "ws" + self.base_url[len("http"):] if self.base_url.startswith("http") else self.base_url

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.auth_header} if self.auth_header else {}

    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url, headers=self.headers(), timeout=self.request_timeout_s, trust_env=False
            )
        await self.call("health")

    async def close(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def call(
        self, op: str, *, path: dict[str, str] | None = None, query: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        route = route_for(op)
        url = route.url(**{snake_case(k): v for k, v in (path or {}).items()}).lstrip("/")
        return await self._request(route.method, url, body if route.body is not None else None, query)

    async def _request(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        if self._http is None:
            await self.start()
        assert self._http is not None
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        try:
            response = await self._http.request(method, path, json=body, params=clean or None)
        except httpx.HTTPError as exc:
            raise PolarisError(f"cannot reach the Polaris server at {self.base_url}: {exc or type(exc).__name__}", 503) from exc
        if response.status_code >= 400:
            raise error_for_status(response.status_code, _error_message(response))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise PolarisError(f"the server answered {method} {path} with something that is not JSON", 502) from exc

    # -- events ---------------------------------------------------------------------------------
    async def events(
        self, *, conversation_id: str | None = None, run_id: str | None = None, since: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        last = since if since is not None else await self.last_event_seq()
        delay_s = RECONNECT_MIN_S
        while True:
            params = {"since": last, "conversation": conversation_id, "run": run_id}
            url = f"{self.ws_base}{API}/events?" + urlencode({k: v for k, v in params.items() if v is not None})
            try:
                conn = await websocket_connect(
                    HTTPRequest(url, headers=self.headers(), request_timeout=self.request_timeout_s),
                    ping_interval=20,
                    ping_timeout=20,
                )
            except HTTPClientError as exc:
                if exc.code in (400, 401, 403, 404):
                    raise PolarisError(f"the server refused the event stream: HTTP {exc.code} {exc.message}", exc.code) from exc
                conn = None
            except (OSError, asyncio.TimeoutError, WebSocketClosedError):
                conn = None
            if conn is not None:
                delay_s = RECONNECT_MIN_S
                try:
                    async for event in _read_events(conn):
                        seq = int(event.get("seq") or 0)
                        if seq <= last:
                            continue
                        last = seq
                        yield event
                finally:
                    conn.close()
            self.reconnects += 1
            log.debug("polaris: event stream dropped; resuming after seq %d in %.1f s", last, delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(RECONNECT_MAX_S, delay_s * 2)


async def _read_events(conn: WebSocketClientConnection) -> AsyncIterator[dict[str, Any]]:
    while True:
        message = await conn.read_message()
        if message is None:
            return
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        if message == "pong":
            continue
        try:
            event = json.loads(message)
        except ValueError:
            log.warning("polaris: ignored a non-JSON event frame")
            continue
        if isinstance(event, dict):
            yield event


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return str(body["message"])
    text = response.text.strip()
    if response.status_code == 404 and (not text or text.startswith("<")):
        return f"not found: {response.request.url.path}"
    if response.status_code == 403:
        return "the Polaris server refused the request (403): the kernel's POLARIS_TOKEN is not valid for it"
    return text[:300] or f"HTTP {response.status_code}"
