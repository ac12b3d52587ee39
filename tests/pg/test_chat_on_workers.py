"""Chat answered on a worker: a real ``jupyter server`` that executes nothing
(``execute_tasks=False``) and a real ``polaris-jupyter worker --workspace`` on one PostgreSQL
schema. A message posted to the server is answered by the worker (with the worker's model
settings: the server has none), its events stream live on the SERVER's WebSocket and resume by
``since``, the answer is stored, and the conversation is free for the next message."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.helpers import clean_env
from tests.live_server import LiveServer
from tests.pg.processes import Workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
API = "/polaris/api/v1"
ANSWER = "The worker answers: two plus two is four, and that is all."


def _isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment without model settings, with Jupyter dirs of its own."""
    dirs = {name: str(tmp_path / name.lower()) for name in ("JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR",
                                                              "JUPYTER_RUNTIME_DIR")}
    base = {k: v for k, v in os.environ.items() if not k.startswith("POLARIS_")}
    return clean_env(base, **dirs, **extra)


@pytest_asyncio.fixture
async def model() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(default=None) as server:
        yield server


async def _ws(server: LiveServer, query: str) -> WebSocketClientConnection:
    url = f"ws://127.0.0.1:{server.port}{API}/events{query}"
    return await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {server.token}"}))


async def _read_until_final(ws: WebSocketClientConnection, message_id: str, timeout_s: float = 90) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while True:
        frame = await asyncio.wait_for(ws.read_message(), timeout_s)
        assert frame is not None, f"the server closed the event stream after {seen[-3:]}"
        event = json.loads(frame)
        seen.append(event)
        data = event.get("data", {})
        if event["type"] == "message.status" and data.get("messageId") == message_id and data.get("final"):
            return seen


def _server_and_worker_env(tmp_path: Path, pg_url: str, pg_schema: str,
                           model: ScriptedModelServer) -> tuple[Path, LiveServer, Workers, dict[str, str]]:
    """A workspace, a server that executes nothing and has no model settings (it could not
    answer), the worker processes of the schema and the worker's environment (its model)."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    markers = tmp_path / "markers"
    markers.mkdir()
    worker_env = _isolated_env(
        tmp_path / "worker", OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="sk-worker", OPENAI_MODEL="scripted-1",
        POLARIS_PROVIDER="openai", POLARIS_STREAM_WINDOW_MS="20",
    )
    server_dirs = {k: v for k, v in _isolated_env(tmp_path / "server").items() if k.startswith("JUPYTER_")}
    server = LiveServer(
        workspace, tmp_path / "unused.db", env=server_dirs,
        extra_args=[f"--PolarisConfig.database_url={pg_url}", f"--PolarisConfig.database_schema={pg_schema}",
                    "--PolarisConfig.execute_tasks=False"],
    )
    return workspace, server, Workers(pg_url, pg_schema, markers), worker_env


@pytest.mark.asyncio
async def test_a_message_posted_to_the_server_is_answered_by_a_worker_and_streamed_by_the_server(
    pg_url: str, pg_schema: str, tmp_path: Path, model: ScriptedModelServer
) -> None:
    workspace, server, workers, worker_env = _server_and_worker_env(tmp_path, pg_url, pg_schema, model)
    (workspace / "notes.txt").write_text("2 + 2\n")
    model.enqueue(Response(text=ANSWER, tokens_per_s=60), Response(text="Second answer."))
    try:
        await asyncio.to_thread(server.start, 90)
        await asyncio.to_thread(workers.start, 1, args=("--workspace", str(workspace)), env=worker_env)

        ws = await _ws(server, "")
        status, conv = await asyncio.to_thread(server.request, "POST", f"{API}/conversations", {"title": "math"})
        assert status == 201
        status, accepted = await asyncio.to_thread(
            server.request, "POST", f"{API}/conversations/{conv['id']}/messages", {"content": "What is 2 + 2?"}
        )
        assert status == 202, accepted
        message_id, run_id = accepted["messageId"], accepted["runId"]
        live = await _read_until_final(ws, message_id)
        ws.close()

        mine = [e for e in live if e.get("runId") == run_id]
        deltas = [e for e in mine if e["type"] == "message.delta"]
        assert len(deltas) >= 2, "the answer streamed in several deltas"
        assert [e["data"]["messageId"] for e in deltas] == [message_id] * len(deltas)
        seqs = [e["seq"] for e in live]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        finals = [e["data"]["status"] for e in mine if e["type"] == "message.status" and e["data"]["final"]]
        assert finals == ["completed"]

        # The worker ran it, with ITS model settings (the server has none).
        assert len(model.chat_requests) == 1
        assert model.chat_requests[0].headers.get("authorization") == "Bearer sk-worker"
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(f'SELECT executor_id, status FROM "{pg_schema}".runs WHERE id = %s', (run_id,)).fetchone()
        assert row is not None and "-worker-" in row[0] and row[1] == "COMPLETED"

        # The answer is stored, as the server lists it.
        status, listed = await asyncio.to_thread(server.request, "GET", f"{API}/conversations/{conv['id']}/messages")
        assert status == 200
        answer = next(m for m in listed["data"] if m["id"] == message_id)
        assert (answer["status"], answer["content"]) == ("completed", ANSWER)

        # Resumable by since: exactly the run's events after the first one, in order.
        first = mine[0]["seq"]
        resumed_ws = await _ws(server, f"?run={run_id}&since={first}")
        resumed = await _read_until_final(resumed_ws, message_id, timeout_s=30)
        resumed_ws.close()
        assert [e["seq"] for e in resumed] == [e["seq"] for e in mine[1:]]

        # The conversation is free again on the server: the next message is accepted, not a 409.
        status, second = await asyncio.to_thread(
            server.request, "POST", f"{API}/conversations/{conv['id']}/messages", {"content": "And 3 + 3?"}
        )
        assert status == 202, second
        assert (await asyncio.to_thread(server.wait_run, second["runId"], {"COMPLETED", "FAILED"}, 90))["status"] == "COMPLETED"
    finally:
        await asyncio.to_thread(workers.stop)
        await asyncio.to_thread(server.stop)


@pytest.mark.asyncio
async def test_stop_on_the_server_stops_the_answer_on_the_worker(
    pg_url: str, pg_schema: str, tmp_path: Path, model: ScriptedModelServer
) -> None:
    """Stop pressed on the server cancels the worker's turn: the message ends cancelled once, the
    run CANCELED, and the worker closes the model's stream (no tokens paid for nobody)."""
    workspace, server, workers, worker_env = _server_and_worker_env(tmp_path, pg_url, pg_schema, model)
    model.enqueue(Response(text=" ".join(f"word{i}" for i in range(2000)), tokens_per_s=40))
    try:
        await asyncio.to_thread(server.start, 90)
        await asyncio.to_thread(workers.start, 1, args=("--workspace", str(workspace)), env=worker_env)
        ws = await _ws(server, "")
        _, conv = await asyncio.to_thread(server.request, "POST", f"{API}/conversations", {})
        status, accepted = await asyncio.to_thread(
            server.request, "POST", f"{API}/conversations/{conv['id']}/messages", {"content": "Write for ever."}
        )
        assert status == 202, accepted
        message_id, run_id = accepted["messageId"], accepted["runId"]
        while True:  # the worker is streaming the answer
            event = json.loads(await asyncio.wait_for(ws.read_message(), 90) or "{}")
            if event.get("type") == "message.delta" and event["data"].get("messageId") == message_id:
                break
        status, cancelled = await asyncio.to_thread(server.request, "POST", f"{API}/messages/{message_id}/cancel", {})
        assert status == 200, cancelled
        live = await _read_until_final(ws, message_id)
        ws.close()
        finals = [e["data"]["status"] for e in live
                  if e["type"] == "message.status" and e["data"].get("messageId") == message_id and e["data"]["final"]]
        assert finals == ["cancelled"]
        run = await asyncio.to_thread(server.wait_run, run_id, {"CANCELED", "COMPLETED", "FAILED"}, 60)
        assert run["status"] == "CANCELED"
        [request] = model.chat_requests
        deadline = asyncio.get_running_loop().time() + 30
        while not request.client_disconnected:  # the worker closed the model stream
            assert asyncio.get_running_loop().time() < deadline, "the worker kept reading the model's stream"
            await asyncio.sleep(0.1)
        assert len(request.token_times) < 2000
    finally:
        await asyncio.to_thread(workers.stop)
        await asyncio.to_thread(server.stop)
