"""Keys over REST on a real Jupyter server: entered, used by the next answer without a restart,
and never in an answer, an event or the server's log (at DEBUG)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.helpers import rest

KEY = "sk-rest-entered-key-00112233445566"


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"polaris_jupyter": True}, "log_level": "DEBUG"},
        "PolarisConfig": {"db_path": str(tmp_path / "polaris.db")},
    }


@pytest.fixture
def locked(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer.start_in_thread(api_key=KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("POLARIS_LOCAL_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    yield server
    server.stop()


async def wait_final(jp_fetch: Any, conv: str, message_id: str) -> dict[str, Any]:
    for _ in range(400):
        _, page = await rest(jp_fetch, "conversations", conv, "messages")
        message = next(m for m in page["data"] if m["id"] == message_id)
        if message["status"] in ("completed", "failed", "cancelled"):
            return message  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError("the answer did not finish")


async def test_keys_over_rest_never_leak(
    jp_fetch: Any, polaris: Any, locked: ScriptedModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[Any] = []

    async def call(*path: str, **kw: Any) -> tuple[int, Any]:
        status, body = await rest(jp_fetch, *path, **kw)
        bodies.append(body)
        return status, body

    status, body = await call("keys", "openai", method="PUT", body={"apiKey": KEY})
    assert status == 200
    row = next(p for p in body["providers"] if p["provider"] == "openai")
    assert row["apiKey"] == {"set": True, "last4": "5566", "source": "stored"} and body["storage"] == "file"
    assert os.stat(polaris.config.keys_path).st_mode & 0o777 == 0o600

    _, conv = await call("conversations", method="POST", body={})
    locked.enqueue(Response(text="answered with the stored key"))
    _, accepted = await call("conversations", conv["id"], "messages", method="POST", body={"content": "hi"})
    message = await wait_final(jp_fetch, conv["id"], accepted["messageId"])
    assert message["content"] == "answered with the stored key", message
    assert locked.chat_requests[-1].headers["authorization"] == f"Bearer {KEY}"

    _, events = await call("runs", accepted["runId"], "events")
    await call("keys")
    await call("models")
    await call("config")
    await call("runs", accepted["runId"])
    assert (await call("keys", "acme", method="PUT", body={"apiKey": KEY}))[0] == 404
    status, refused = await call("keys", "openai", method="PUT", body={"apiToken": KEY})
    assert status == 400 and "unknown field 'apiToken'" in refused["message"]
    status, refused = await call("keys", "openai", method="PUT", body={"baseUrl": "file:///etc/passwd"})
    assert status == 400 and "http:// or https://" in refused["message"]
    status, body = await call("keys", "openai", method="DELETE")
    assert status == 200 and not next(p for p in body["providers"] if p["provider"] == "openai")["apiKey"]["set"]

    assert events["events"], "the run had events"
    assert KEY not in json.dumps(bodies), "a key in an API answer"
    server_log = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "/polaris/api/v1/keys/openai" in server_log  # the access log is there, and was searched
    assert KEY not in server_log, "a key in the server log"
