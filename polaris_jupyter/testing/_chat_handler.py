"""``POST /v1/chat/completions`` for the scripted server: validation, errors, SSE pacing.

Tokens go out on an absolute schedule (token *i* is due at ``t0 + i * interval``); at each
wake-up every due token is written in one batch, so a per-token delay below the event loop's
timer resolution (about 1 ms) still yields the scripted rate.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import tornado.iostream
import tornado.web

from polaris_jupyter.testing._script import (
    ChunkWriter,
    Response,
    bad_request,
    check_envelope,
    completion_body,
    compute_usage,
    tool_call_events,
)

if TYPE_CHECKING:
    from polaris_jupyter.testing._server import RecordedRequest, ScriptedModelServer

__all__ = ["ChatCompletionsHandler"]


class _Gone(Exception):
    """The client went away or the server is stopping: stop writing."""


def validate_request(body: Any, server: ScriptedModelServer) -> Response | None:
    """The checks real servers make that our client must pass; None when the request is fine."""
    envelope = check_envelope(body, validate=server.validate)
    if envelope is not None or not server.validate:
        return envelope
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return bad_request("'messages' must be a non-empty array.", "messages")
    if "tool_choice" in body and not body.get("tools"):
        return bad_request("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                            "are specified.", "tool_choice")
    known_ids: set[str] = set()
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg:
            return bad_request(f"messages[{i}] must be an object with a 'role'.", f"messages[{i}]")
        calls = msg.get("tool_calls") or []
        for call in calls:
            known_ids.add(str(call.get("id")))
        if calls and msg.get("content") is None and server.reject_null_content:
            return bad_request(f"messages[{i}].content must be a string, got null.", f"messages[{i}]")
        if msg["role"] == "tool" and msg.get("tool_call_id") not in known_ids:
            return bad_request(f"Invalid parameter: messages[{i}] with role 'tool' must be a response to a "
                                "preceding message with 'tool_calls'.", f"messages[{i}]")
    if (server.reject_streaming_tools and body.get("stream") and body.get("tools")
            and body.get("tool_choice") in (None, "auto")):
        return bad_request("Cannot use tools with stream")
    return None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ChatCompletionsHandler(tornado.web.RequestHandler):
    """Serves one chat-completions request from the server's script."""

    def initialize(self, server: ScriptedModelServer) -> None:
        self.server = server
        self._gone = False
        self._done = False
        self._waiter: asyncio.Future[None] | None = None
        self._rec: RecordedRequest | None = None

    # -- disconnect detection -----------------------------------------------------------------
    def on_connection_close(self) -> None:
        if not self._done and self._rec is not None:
            self._rec.client_disconnected = True
        self.wake()

    def wake(self, stopping: bool = False) -> None:
        self._gone = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _pause(self, delay_s: float) -> None:
        if self._gone:
            raise _Gone
        if delay_s > 0:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter = waiter
            handle = loop.call_later(delay_s, _resolve, waiter)
            try:
                await waiter
            finally:
                handle.cancel()
                self._waiter = None
        if self._gone:
            raise _Gone

    async def _send(self, data: bytes) -> None:
        if self._gone:
            raise _Gone
        self.write(data)
        try:
            await self.flush()
        except tornado.iostream.StreamClosedError:
            if self._rec is not None and not self._done:
                self._rec.client_disconnected = True
            self._gone = True
            raise _Gone from None

    async def _send_last(self, rec: RecordedRequest, data: bytes) -> None:
        """Send a response's final bytes, recording it completed *before* they leave.

        A client may read the last event and look at the record at once, from another thread
        (thread mode) or another task, while this handler is still returning from the flush; so
        the mark goes first and is taken back if the client turned out to be gone.
        """
        rec.completed = True
        try:
            await self._send(data)
        except _Gone:
            rec.completed = False
            raise
        self._done = True

    # -- request ------------------------------------------------------------------------------
    async def post(self) -> None:
        try:
            body: Any = json.loads(self.request.body or b"null")
        except ValueError:
            body = None
        rec = self.server.record(self.request, body if isinstance(body, dict) else None)
        self._rec = rec
        self.server._active.add(self)
        try:
            response = self._check_auth() or validate_request(body, self.server)
            if response is None:
                response = await self.server.next_response(body)
            rec.response = response
            await self._serve(rec, response, body)
        except _Gone:
            if not self._finished:  # server stopping mid-response: drop the connection
                self.detach().close()
        finally:
            self._done = True
            self.server._active.discard(self)
            rec.finished_at = time.perf_counter()
            rec._finished.set()

    def _check_auth(self) -> Response | None:
        if self.server.api_key is None:
            return None
        if self.request.headers.get("Authorization", "") == f"Bearer {self.server.api_key}":
            return None
        return Response(status=401, error_message="Incorrect API key provided.")

    async def _serve(self, rec: RecordedRequest, response: Response, body: dict[str, Any]) -> None:
        rec.status = response.status
        for name, value in response.headers.items():
            self.set_header(name, value)
        if response.retry_after_s is not None:
            self.set_header("Retry-After", f"{response.retry_after_s:g}")
        if response.is_error:
            await self._pause(response.ttft_s)
            self.set_status(response.status)
            self.set_header("x-should-retry", "false")  # the openai client would retry 429/5xx otherwise
            if response.error_text is not None:
                self.set_header("Content-Type", "text/plain")
                rec.completed = True  # before the bytes leave: see _send_last
                self.finish(response.error_text)
            else:
                self.set_header("Content-Type", "application/json")
                rec.completed = True
                self.finish(json.dumps(response.error_body()))
            return
        if rec.stream:
            await self._stream(rec, response, body)
        else:
            await self._complete(rec, response, body)

    async def _complete(self, rec: RecordedRequest, response: Response, body: dict[str, Any]) -> None:
        n_tokens = len(response.content_tokens())
        await self._pause(response.ttft_s + n_tokens * response.token_interval_s())
        if response.disconnect_after_tokens is not None:
            self._drop_connection(rec)
            return
        self.set_header("Content-Type", "application/json")
        rec.tokens_sent = n_tokens
        rec.completed = True  # before the bytes leave: see _send_last
        self.finish(json.dumps(completion_body(response, body, self.server.model)))

    def _drop_connection(self, rec: RecordedRequest) -> None:
        """Close the TCP connection without ending the HTTP response (a crashed upstream)."""
        rec.server_disconnected = True
        self._done = True
        self.detach().close()
        raise _Gone

    async def _stream(self, rec: RecordedRequest, response: Response, body: dict[str, Any]) -> None:
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage")) and response.send_usage
        writer = ChunkWriter(self.server.model, include_usage=include_usage)
        if not any(k.lower() == "content-type" for k in response.headers):
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        if response.raw_events is not None:
            await self._stream_raw(rec, response)
            return
        tokens = response.content_tokens()
        cut = response.disconnect_after_tokens
        if cut is None:
            cut = response.error_after_tokens
        if cut is not None:
            tokens = tokens[:cut]
        # Each unit is one SSE event (content token or tool-call piece) paced on the schedule.
        units: list[tuple[bytes, str | None]] = [(writer.content(t), t) for t in tokens]
        if cut is None:
            units += [(ev, None) for ev in tool_call_events(writer, response)]
        await self._pause(response.ttft_s)
        interval_s = response.token_interval_s()
        t0 = time.perf_counter()
        offset = 0
        sent = 0
        first: bytes | None = writer.event({"role": "assistant", "content": ""})
        while sent < len(units) or first:
            now = time.perf_counter()
            due = len(units) if interval_s <= 0 else min(len(units), int((now - t0) / interval_s) + 1)
            if due <= sent and not first:
                await self._pause(t0 + sent * interval_s - now)
                continue
            batch = units[sent:due]
            payload = (first or b"") + b"".join(ev for ev, _ in batch)
            first = None
            await self._send(payload)
            sent_at = time.perf_counter()
            for _, token in batch:
                if token is not None:
                    rec.token_times.append(sent_at)
                    rec.token_offsets.append(offset)
                    self.server.token_sent_times.append(sent_at)
                    offset += len(token)
                    rec.tokens_sent += 1
            sent = due
        if response.disconnect_after_tokens is not None:
            self._drop_connection(rec)
        if response.error_after_tokens is not None:
            message = response.error_message or "The model server failed while generating."
            await self._send(writer.error(Response.error(500, message).error_body()))
            self._done = True
            self.finish()
            return
        tail = writer.event({}, response.resolved_finish_reason())
        if writer.include_usage:
            tail += writer.usage(compute_usage(response, body))
        await self._send_last(rec, tail + writer.done())
        self.finish()

    async def _stream_raw(self, rec: RecordedRequest, response: Response) -> None:
        """Send ``raw_events`` verbatim, one per interval (for servers' quirks: comments, bad JSON...)."""
        await self._pause(response.ttft_s)
        events = [event.encode() for event in response.raw_events or ()]
        cut = response.disconnect_after_tokens is not None
        for i, event in enumerate(events):
            if i:
                await self._pause(response.token_interval_s())
            if i == len(events) - 1 and not cut:
                await self._send_last(rec, event)
            else:
                await self._send(event)
        if cut:
            self._drop_connection(rec)
        rec.completed = True  # also with no events at all: an empty answer, as scripted
        self._done = True
        self.finish()
