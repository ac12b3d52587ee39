"""Inline completions over REST on a real Jupyter server, the real openai client to the scripted
model: NDJSON lines arrive one by one, a disconnect or a newer request closes the model stream
(the scripted server records the disconnect), feedback and metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from polaris_jupyter.testing import Response, ScriptedModelServer
from polaris_jupyter.testing._completion_handler import completion_requests
from tests.helpers import async_wait_until
from tests.server.test_runs_api import API, call


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer.start_in_thread()
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_MODEL", "scripted-1")
    monkeypatch.setenv("POLARIS_PROVIDER", "openai")
    monkeypatch.setenv("POLARIS_LOCAL_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    yield server
    server.stop()


class Stream:
    """One streamed request: the lines as they arrived (with a note of which came before the
    model had sent everything), and a way to hang up in the middle."""

    def __init__(self, jp_base_url: str, jp_auth_header: dict[str, str], port: int) -> None:
        self.url = f"http://localhost:{port}{jp_base_url}polaris/api/v1/completions"
        self.headers = {**jp_auth_header, "Content-Type": "application/json"}
        self.lines: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self._buffer = b""
        self.port = port
        self.path = f"{jp_base_url}polaris/api/v1/completions"
        self.on_line: Any = None

    def _chunk(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = json.loads(raw)
            self.lines.append(line)
            if self.on_line is not None:
                self.on_line(line)
            self.arrived.set()

    async def post(self, body: dict[str, Any]) -> int:
        client = AsyncHTTPClient(force_instance=True)
        request = HTTPRequest(self.url, method="POST", body=json.dumps(body), headers=self.headers,
                              streaming_callback=self._chunk, request_timeout=30)
        try:
            response = await client.fetch(request, raise_error=False)
            return int(response.code)
        finally:
            client.close()

    async def post_and_hang_up(self, body: dict[str, Any], after_lines: int) -> None:
        """Send the request on a plain socket, read ``after_lines`` lines, then close the socket
        (what a browser does when the editor aborts its fetch)."""
        reader, writer = await asyncio.open_connection("localhost", self.port)
        data = json.dumps(body).encode()
        head = [f"POST {self.path} HTTP/1.1", f"Host: localhost:{self.port}", f"Content-Length: {len(data)}",
                *(f"{k}: {v}" for k, v in self.headers.items())]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        received = b""
        while received.count(b"{") < after_lines:  # chunked framing around JSON lines; enough to count
            chunk = await asyncio.wait_for(reader.read(4096), 10)
            assert chunk, f"the server closed first: {received!r}"
            received += chunk
        assert b" 200 " in received.split(b"\r\n", 1)[0]
        writer.close()
        await writer.wait_closed()


@pytest.fixture
def stream(jp_fetch: Any, jp_base_url: str, jp_auth_header: dict[str, str], jp_http_port: int) -> Any:
    """Streamed requests to the test server (``jp_fetch`` is what brings its HTTP server up)."""
    return lambda: Stream(jp_base_url, jp_auth_header, jp_http_port)


async def test_lines_arrive_while_the_model_still_streams(polaris: Any, model: ScriptedModelServer, stream: Any) -> None:
    model.enqueue(Response(tokens=[" a", " +", " b", " + c"], ttft_s=0.01, delay_s=0.05))
    s = stream()
    sent_when_seen: list[int] = []
    s.on_line = lambda line: sent_when_seen.append(completion_requests(model)[-1].tokens_sent)
    status = await s.post({"prefix": "def add(a, b, c):\n    return", "suffix": "\n", "editorId": "cell-1",
                           "language": "python", "path": "nb.ipynb", "cells": ["import math"]})
    assert status == 200
    types = [line["type"] for line in s.lines]
    assert types[0] == "start" and types[-1] == "end" and types.count("delta") >= 2
    assert s.lines[0]["id"].startswith("cmp") and s.lines[-1]["id"] == s.lines[0]["id"]
    assert "".join(line["text"] for line in s.lines if line["type"] == "delta") == " a + b + c"
    end = s.lines[-1]
    assert end["status"] == "COMPLETED" and end["text"] == " a + b + c" and end["provider"] == "openai"
    # The first piece left the server before the model had sent its last token: a real stream.
    assert sent_when_seen[1] < 4
    [rec] = completion_requests(model)
    assert rec.body is not None and rec.body["suffix"] == "\n" and "import math" in rec.body["prompt"]


async def test_hanging_up_cancels_the_model_stream(polaris: Any, model: ScriptedModelServer, stream: Any,
                                                   jp_fetch: Any) -> None:
    model.enqueue(Response(tokens=[" x"] * 500, delay_s=0.02))
    # start + one delta, then the editor's next keystroke aborts the fetch
    await stream().post_and_hang_up({"prefix": "value =", "editorId": "cell-2"}, after_lines=2)
    [rec] = completion_requests(model)
    await async_wait_until(lambda: rec.finished, 10, "the model stream closed")
    assert rec.client_disconnected and not rec.completed and rec.tokens_sent < 500
    _, metrics = await call(jp_fetch, "completions", "metrics")
    assert metrics["cancelReasons"].get("cancelled") == 1 and metrics["running"] == 0


async def test_a_newer_request_from_the_same_editor_supersedes_the_old(polaris: Any, model: ScriptedModelServer,
                                                                       stream: Any) -> None:
    model.enqueue(Response(tokens=[" slow"] * 500, delay_s=0.02), Response(text=" 42"))
    old, new = stream(), stream()
    old_post = asyncio.ensure_future(old.post({"prefix": "first =", "editorId": "cell-3"}))
    await asyncio.wait_for(old.arrived.wait(), 10)
    assert await new.post({"prefix": "second =", "editorId": "cell-3"}) == 200
    assert await old_post == 200
    assert old.lines[-1]["status"] == "CANCELED" and old.lines[-1]["cancelReason"] == "superseded"
    assert new.lines[-1]["status"] == "COMPLETED" and new.lines[-1]["text"] == " 42"
    first = completion_requests(model)[0]
    await async_wait_until(lambda: first.finished, 10, "the old model stream closed")
    assert first.client_disconnected and first.tokens_sent < 500


async def test_feedback_counts_toward_the_accept_rate(polaris: Any, model: ScriptedModelServer, stream: Any,
                                                      jp_fetch: Any) -> None:
    model.enqueue(Response(text=" 1"), Response(text=" 2"))
    ids = []
    for prefix in ("a =", "b ="):
        s = stream()
        assert await s.post({"prefix": prefix, "editorId": prefix}) == 200
        ids.append(s.lines[0]["id"])
    status, answer = await call(jp_fetch, "completions", ids[0], "feedback", method="POST", body={"event": "accepted"})
    assert status == 200 and answer == {"id": ids[0], "events": ["accepted", "shown"]}
    await call(jp_fetch, "completions", ids[1], "feedback", method="POST", body={"event": "shown"})
    await call(jp_fetch, "completions", ids[1], "feedback", method="POST", body={"event": "dismissed"})
    status, metrics = await call(jp_fetch, "completions", "metrics")
    assert status == 200 and metrics["taskId"] == "inline-completion" and metrics["persisted"] is False
    assert metrics["counts"]["COMPLETED"] == 2 and metrics["acceptRate"] == 0.5
    assert metrics["feedback"] == {"shown": 2, "accepted": 1, "dismissed": 1}
    status, error = await call(jp_fetch, "completions", ids[0], "feedback", method="POST", body={"event": "liked"})
    assert status == 400 and "event" in error["message"]
    status, error = await call(jp_fetch, "completions", "cmp_nope", "feedback", method="POST", body={"event": "shown"})
    assert status == 404


async def test_bad_requests_are_json_errors_before_any_line(polaris: Any, model: ScriptedModelServer,
                                                            jp_fetch: Any) -> None:
    for body, needle in (({"suffix": "x"}, "prefix"), ({"prefix": "x", "maxTokens": 0}, "maxTokens"),
                         ({"prefix": "x", "provider": "cerebras"}, "cerebras")):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(*API, "completions", method="POST", body=json.dumps(body))
        assert info.value.code == 400
        assert needle in json.loads(info.value.response.body)["message"]
    assert completion_requests(model) == []
