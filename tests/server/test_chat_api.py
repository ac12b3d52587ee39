"""Chat turns as jobs, end to end: REST + WebSocket on a real Jupyter server, the real openai
client over HTTP to the scripted model server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.helpers import read_events
from tests.server.test_runs_api import API, call

WORDS = [f"word{i} " for i in range(60)]


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer.start_in_thread()
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_MODEL", "scripted-1")
    for name in ("CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "POLARIS_PROVIDER", "POLARIS_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POLARIS_LOCAL_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    yield server
    server.stop()


async def new_conversation(jp_fetch: Any) -> str:
    status, conv = await call(jp_fetch, "conversations", method="POST", body={})
    assert status == 201
    return str(conv["id"])


async def post(jp_fetch: Any, conv_id: str, content: str) -> dict[str, Any]:
    status, body = await call(jp_fetch, "conversations", conv_id, "messages", method="POST", body={"content": content})
    assert status == 202, body
    return body  # type: ignore[no-any-return]


async def wait_message(jp_fetch: Any, conv_id: str, message_id: str, statuses: set[str], timeout_s: float = 20) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        _, page = await call(jp_fetch, "conversations", conv_id, "messages")
        message = next(m for m in page["data"] if m["id"] == message_id)
        if message["status"] in statuses:
            return message  # type: ignore[no-any-return]
        if loop.time() > deadline:
            raise AssertionError(f"message stayed {message['status']}")
        await asyncio.sleep(0.05)


def is_final_status(event: dict[str, Any]) -> bool:
    return event["type"] == "message.status" and event["data"]["final"]


async def test_plain_reply_streams_deltas(jp_fetch: Any, jp_ws_fetch: Any, polaris: Any, model: ScriptedModelServer) -> None:
    model.enqueue(Response(tokens=WORDS, tokens_per_s=400))
    conv = await new_conversation(jp_fetch)
    ws = await jp_ws_fetch(*API, "events", params={"conversation": conv, "since": str(polaris.engine.bus.last_seq)})
    accepted = await post(jp_fetch, conv, "Say sixty words")
    events = await read_events(ws, is_final_status)
    ws.close()
    deltas = [e["data"] for e in events if e["type"] == "message.delta"]
    assert "".join(d["delta"] for d in deltas) == "".join(WORDS)
    offsets = [d["offset"] for d in deltas]
    assert offsets == sorted(offsets) and offsets[0] == 0
    assert 1 < len(deltas) < len(WORDS), "deltas must be coalesced, not one per token"
    message = await wait_message(jp_fetch, conv, accepted["messageId"], {"completed"})
    assert message["content"] == "".join(WORDS)
    assert message["provider"] == "openai" and message["model"] == "scripted-1"
    assert message["usage"]["completionTokens"] > 0
    _, run = await call(jp_fetch, "runs", accepted["runId"])
    assert run["status"] == "COMPLETED" and run["metadata"]["provider"] == "openai"
    _, listing = await call(jp_fetch, "conversations", conv, "messages")
    assert [m["role"] for m in listing["data"]] == ["user", "assistant"]
    _, conversations = await call(jp_fetch, "conversations")
    assert next(c for c in conversations["data"] if c["id"] == conv)["title"] == "Say sixty words"
    request = model.requests[-1]
    assert request.body["messages"][0]["role"] == "system"
    assert request.body["messages"][-1] == {"role": "user", "content": "Say sixty words"}


async def test_tool_loop_edits_a_file_and_revert_undoes_it(jp_fetch: Any, jp_ws_fetch: Any, polaris: Any, model: ScriptedModelServer) -> None:
    root = Path(polaris.root_dir)
    (root / "notes.txt").write_text("old\n")
    model.enqueue(
        Response.tool("writeFile", {"path": "notes.txt", "content": "new\n"}),
        Response.tool("readFile", {"path": "notes.txt"}),
        Response(text="I rewrote notes.txt."),
    )
    conv = await new_conversation(jp_fetch)
    accepted = await post(jp_fetch, conv, "rewrite notes")
    message = await wait_message(jp_fetch, conv, accepted["messageId"], {"completed", "failed"})
    assert message["status"] == "completed", message
    assert (root / "notes.txt").read_text() == "new\n"
    names = [c["name"] for c in message["toolCalls"]]
    assert names == ["writeFile", "readFile"]
    write = message["toolCalls"][0]
    assert write["status"] == "succeeded" and "-old" in write["diff"] and "+new" in write["diff"]
    assert write["durationMs"] >= 0
    tool_messages = [m for m in model.requests[1].body["messages"] if m["role"] == "tool"]
    assert tool_messages and model.requests[1].body["messages"][-2]["content"] == ""  # assistant with tool_calls
    # The user edits the file after the run: a plain revert would discard that, so it is refused.
    (root / "notes.txt").write_text("new, and the user's line\n")
    status, refused = await call(jp_fetch, "runs", accepted["runId"], "revert", method="POST")
    assert status == 409 and "notes.txt changed after this run" in refused["message"]
    assert (root / "notes.txt").read_text() == "new, and the user's line\n"
    status, bad = await call(jp_fetch, "runs", accepted["runId"], "revert", method="POST", body={"force": "yes"})
    assert status == 400 and "force must be true or false" in bad["message"]
    status, listed = await call(jp_fetch, "conversations", conv, "messages")
    assert "revertedAt" not in listed["data"][-1]  # a refused revert leaves no mark
    ws = await jp_ws_fetch(*API, "events", params={"conversation": conv, "since": str(polaris.engine.bus.last_seq)})
    status, reverted = await call(jp_fetch, "runs", accepted["runId"], "revert", method="POST", body={"force": True})
    assert status == 200 and reverted["reverted"] == ["notes.txt"]
    assert (root / "notes.txt").read_text() == "old\n"
    # Every view learns of it: the answer carries revertedAt, and a run.reverted event went out.
    status, listed = await call(jp_fetch, "conversations", conv, "messages")
    answer = next(m for m in listed["data"] if m["id"] == accepted["messageId"])
    assert answer["revertedAt"].endswith("Z")
    assert "revertedAt" not in listed["data"][0]  # the user's message
    events = await read_events(ws, lambda e: e["type"] == "run.reverted")
    ws.close()
    assert events[-1]["data"] == {"runId": accepted["runId"], "paths": ["notes.txt"]}
    status, again = await call(jp_fetch, "runs", accepted["runId"], "revert", method="POST")
    assert status == 200 and again["reverted"] == ["notes.txt"]  # already as before: harmless


async def test_fallback_when_first_provider_is_rate_limited(jp_fetch: Any, polaris: Any, model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    second = ScriptedModelServer.start_in_thread()
    try:
        monkeypatch.setenv("POLARIS_LOCAL_BASE_URL", second.base_url)
        monkeypatch.setenv("POLARIS_LOCAL_MODEL", "local-1")
        model.enqueue(Response.error(429, "slow down"))
        second.enqueue(Response(text="from the second provider"))
        conv = await new_conversation(jp_fetch)
        accepted = await post(jp_fetch, conv, "hello")
        message = await wait_message(jp_fetch, conv, accepted["messageId"], {"completed", "failed"})
        assert message["status"] == "completed", message
        assert message["content"] == "from the second provider"
        assert message["provider"] == "local"
    finally:
        second.stop()


async def test_disconnect_fails_attempt_and_retry_does_not_duplicate(jp_fetch: Any, jp_ws_fetch: Any, polaris: Any, model: ScriptedModelServer) -> None:
    model.enqueue(Response(tokens=WORDS, disconnect_after_tokens=20), Response(tokens=WORDS))
    conv = await new_conversation(jp_fetch)
    ws = await jp_ws_fetch(*API, "events", params={"conversation": conv, "since": str(polaris.engine.bus.last_seq)})
    accepted = await post(jp_fetch, conv, "go")
    events = await read_events(ws, is_final_status, timeout_s=30)
    ws.close()
    message = await wait_message(jp_fetch, conv, accepted["messageId"], {"completed", "failed"})
    assert message["status"] == "completed"
    assert message["content"] == "".join(WORDS), "retry must replace the text, not append"
    resets = [e for e in events if e["type"] == "message.status" and e["data"].get("reset")]
    assert resets, "the second attempt must tell clients to start the text over"
    # A client applying deltas by offset after the reset ends with exactly the reply.
    text = ""
    for e in events:
        if e["type"] == "message.status" and e["data"].get("reset"):
            text = ""
        elif e["type"] == "message.delta":
            text = text[: e["data"]["offset"]] + e["data"]["delta"]
    assert text == "".join(WORDS)
    _, run = await call(jp_fetch, "runs", accepted["runId"])
    assert run["attemptCount"] == 2 and [a["status"] for a in run["attempts"]] == ["FAILED", "COMPLETED"]


async def test_cancel_during_streaming_closes_the_model_stream(jp_fetch: Any, polaris: Any, model: ScriptedModelServer) -> None:
    model.enqueue(Response(tokens=WORDS * 20, tokens_per_s=50))
    conv = await new_conversation(jp_fetch)
    accepted = await post(jp_fetch, conv, "long answer please")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        _, page = await call(jp_fetch, "conversations", conv, "messages")
        current = next(m for m in page["data"] if m["id"] == accepted["messageId"])
        if current["content"]:
            break
        assert loop.time() < deadline, "no text streamed"
        await asyncio.sleep(0.05)
    # A second post while processing is refused.
    status, body = await call(jp_fetch, "conversations", conv, "messages", method="POST", body={"content": "again"})
    assert status == 409 and "still being answered" in body["message"]
    status, cancelled = await call(jp_fetch, "messages", accepted["messageId"], "cancel", method="POST")
    assert status == 200 and cancelled["status"] == "cancelled"
    request = model.requests[-1]
    for _ in range(100):
        if request.client_disconnected:
            break
        await asyncio.sleep(0.05)
    assert request.client_disconnected, "the HTTP stream to the model must be closed on cancel"
    frozen = (await wait_message(jp_fetch, conv, accepted["messageId"], {"cancelled"}))["content"]
    await asyncio.sleep(0.3)
    after = await wait_message(jp_fetch, conv, accepted["messageId"], {"cancelled"})
    assert after["content"] == frozen, "no write after cancel"
    _, run = await call(jp_fetch, "runs", accepted["runId"])
    assert run["status"] == "CANCELED"
    # Retry of the cancelled message answers again in place.
    model.enqueue(Response(text="second try"))
    status, retried = await call(jp_fetch, "messages", accepted["messageId"], "retry", method="POST")
    assert status == 202 and retried["messageId"] == accepted["messageId"] and retried["runId"] != accepted["runId"]
    final = await wait_message(jp_fetch, conv, accepted["messageId"], {"completed"})
    assert final["content"] == "second try"


async def test_failed_message_has_user_text_and_error(jp_fetch: Any, polaris: Any, model: ScriptedModelServer) -> None:
    for _ in range(3):
        model.enqueue(Response(tokens=WORDS, disconnect_after_tokens=3))
    conv = await new_conversation(jp_fetch)
    accepted = await post(jp_fetch, conv, "fail please")
    message = await wait_message(jp_fetch, conv, accepted["messageId"], {"failed"}, timeout_s=40)
    assert message["error"]["message"] and message["error"]["detail"]
    status, _ = await call(jp_fetch, "messages", accepted["messageId"], "retry", method="POST")
    assert status == 202


async def test_chat_input_errors(jp_fetch: Any, polaris: Any, model: ScriptedModelServer) -> None:
    conv = await new_conversation(jp_fetch)
    cases = [
        (("conversations", "conv_missing", "messages"), {"content": "x"}, 404),
        (("conversations", conv, "messages"), {"content": ""}, 400),
        (("conversations", conv, "messages"), {"content": 5}, 400),
        (("conversations", conv, "messages"), {"content": "x" * 100_001}, 400),
        (("conversations", conv, "messages"), {"content": "x", "context": "nope"}, 400),
        (("messages", "msg_missing", "cancel"), {}, 404),
        (("messages", "msg_missing", "retry"), {}, 404),
        (("runs", "run_missing", "revert"), {}, 404),
    ]
    for path, body, code in cases:
        status, reply = await call(jp_fetch, *path, method="POST", body=body)
        assert status == code, (path, body, reply)
        assert reply["message"]
    status, reply = await call(jp_fetch, "conversations", conv, method="PATCH", body={"title": ""})
    assert status == 400
    status, renamed = await call(jp_fetch, "conversations", conv, method="PATCH", body={"title": "Renamed"})
    assert status == 200 and renamed["title"] == "Renamed"
    response = await jp_fetch(*API, "conversations", conv, method="DELETE")
    assert response.code == 204
    status, _ = await call(jp_fetch, "conversations", conv)
    assert status == 404
