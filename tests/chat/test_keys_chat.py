"""Keys entered through the API, end to end on the chat runtime: the next answer uses the new key
without a restart (a scripted server that requires it), the environment wins, and the key is in
no API answer, event, log line or error."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.testing import Response, ScriptedModelServer
from polaris_jupyter.testing.pytest_plugin import scripted_model_factory  # noqa: F401  (fixture)
from tests.chat.conftest import ChatEnv

pytestmark = pytest.mark.asyncio

KEY = "sk-ui-entered-key-0123456789ABCD"
NEW_KEY = "sk-ui-replaced-key-9876543210WXYZ"


async def api(env: ChatEnv, op: str, **kwargs: Any) -> Any:
    return (await env.runtime.api.dispatch(op, **kwargs)).body


@pytest_asyncio.fixture
async def locked(scripted_model_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> ScriptedModelServer:  # noqa: F811
    """An OpenAI-compatible server that answers only with KEY; the environment names its URL, no key."""
    server: ScriptedModelServer = await scripted_model_factory(api_key=KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return server


async def answer(env: ChatEnv, conversation_id: str, text: str) -> dict[str, Any]:
    message, run_id = await env.chat.post_message(conversation_id, text)
    await env.settle(run_id)
    stored = await env.chat.store.get_message(message.id)
    assert stored is not None
    return stored.to_json()


async def test_a_key_set_through_the_api_is_used_by_the_next_answer(
    chat_env: ChatEnv, locked: ScriptedModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    conv = await chat_env.chat.create_conversation()
    refused = await answer(chat_env, conv.id, "hello?")
    assert refused["status"] == "failed" and "wants an API key" in refused["error"]["message"]

    answers: list[Any] = [await api(chat_env, "put_key", path={"provider": "openai"}, body={"apiKey": KEY})]
    locked.enqueue(Response(text="now with a key"))
    ok = await answer(chat_env, conv.id, "and now?")
    assert ok["status"] == "completed" and ok["content"] == "now with a key"
    assert locked.chat_requests[-1].headers["authorization"] == f"Bearer {KEY}"

    locked.api_key = NEW_KEY  # the key is rotated: replace it in the settings
    answers.append(await api(chat_env, "put_key", path={"provider": "openai"}, body={"apiKey": NEW_KEY}))
    locked.enqueue(Response(text="rotated"))
    assert (await answer(chat_env, conv.id, "still there?"))["content"] == "rotated"
    assert locked.chat_requests[-1].headers["authorization"] == f"Bearer {NEW_KEY}"

    assert os.stat(chat_env.runtime.config.keys_path).st_mode & 0o777 == 0o600
    answers += [
        await api(chat_env, "list_keys"),
        await api(chat_env, "get_config"),
        await api(chat_env, "list_models"),
        await api(chat_env, "list_messages", path={"conversationId": conv.id}),
        await api(chat_env, "list_runs", query={"limit": 50}),
        await api(chat_env, "metrics"),
    ]
    openai = next(p for p in answers[-6]["providers"] if p["provider"] == "openai")
    assert openai["apiKey"] == {"set": True, "last4": "WXYZ", "source": "stored"}
    events = json.dumps([e.data for e in chat_env.events])
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in (KEY, NEW_KEY):
        assert secret not in json.dumps(answers), "a key in an API answer"
        assert secret not in events, "a key in an event"
        assert secret not in logged, "a key in a log line"


async def test_an_error_that_quotes_the_key_is_masked(
    chat_env: ChatEnv, locked: ScriptedModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await api(chat_env, "put_key", path={"provider": "openai"}, body={"apiKey": KEY})
    locked.enqueue(Response.error(400, f"the key {KEY} may not use this model"))
    conv = await chat_env.chat.create_conversation()
    failed = await answer(chat_env, conv.id, "hello")
    assert failed["status"] == "failed" and "[masked]" in failed["error"]["message"]
    assert KEY not in json.dumps(failed)
    assert KEY not in json.dumps([e.data for e in chat_env.events])
    assert KEY not in caplog.text


async def test_the_environment_wins_over_a_stored_key(
    chat_env: ChatEnv, locked: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the server answers KEY: the environment's key
    status = await api(chat_env, "put_key", path={"provider": "openai"}, body={"apiKey": NEW_KEY})
    openai = next(p for p in status["providers"] if p["provider"] == "openai")
    assert openai["apiKey"]["source"] == "env" and openai["envWins"] == ["OPENAI_API_KEY"]
    assert openai["stored"]["apiKey"] is True
    locked.enqueue(Response(text="env key used"))
    conv = await chat_env.chat.create_conversation()
    assert (await answer(chat_env, conv.id, "which key?"))["content"] == "env key used"
    assert locked.chat_requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_a_stored_base_url_and_key_configure_a_provider(
    chat_env: ChatEnv, scripted_model_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    router: ScriptedModelServer = await scripted_model_factory(model="router-1", api_key=KEY)
    monkeypatch.delenv("POLARIS_PROVIDER")
    with pytest.raises(Exception, match="not configured"):
        await api(chat_env, "update_conversation", path={"conversationId": (await chat_env.chat.create_conversation()).id},
                  body={"provider": "openrouter"})
    await api(chat_env, "put_key", path={"provider": "openrouter"}, body={"apiKey": KEY, "baseUrl": router.base_url})
    listing = {p["name"]: p for p in (await api(chat_env, "list_models"))["providers"]}
    assert [m["id"] for m in listing["openrouter"]["models"]] == ["router-1"]
    conv = await chat_env.chat.create_conversation()
    await api(chat_env, "update_conversation", path={"conversationId": conv.id},
              body={"provider": "openrouter", "model": "router-1"})
    router.enqueue(Response(text="routed"))
    assert (await answer(chat_env, conv.id, "hi"))["content"] == "routed"

    deleted = await api(chat_env, "delete_key", path={"provider": "openrouter"})
    row = next(p for p in deleted["providers"] if p["provider"] == "openrouter")
    assert row["apiKey"]["set"] is False and row["baseUrlSource"] == "default"
    gone = await answer(chat_env, conv.id, "and now?")
    assert gone["status"] == "failed" and "openrouter" in gone["error"]["message"]
