"""The model picker's server side: every configured provider's models (GET /models, concurrent,
cached, a failing provider shown with its error), and the provider+model chosen per
conversation, which the turn really sends (read from the scripted servers' recorded requests)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.chat.store import CHAT_SCHEMA, ChatStore
from polaris_jupyter.errors import InvalidInput
from polaris_jupyter.jobs import SqliteStore
from polaris_jupyter.testing import Response, ScriptedModelServer
from polaris_jupyter.testing.pytest_plugin import scripted_model_factory  # noqa: F401  (fixture)
from tests.chat.conftest import ChatEnv

pytestmark = pytest.mark.asyncio


async def api(env: ChatEnv, op: str, **kwargs: Any) -> Any:
    return (await env.runtime.api.dispatch(op, **kwargs)).body


@pytest_asyncio.fixture
async def second(scripted_model_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> ScriptedModelServer:  # noqa: F811
    """OpenRouter, played by a second scripted server with models of its own."""
    server: ScriptedModelServer = await scripted_model_factory(model="router-small", api_key="sk-or-test-0000000000")
    server.extra_models = ["router-large", "router-medium"]
    monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test-0000000000")
    return server


def models_requests(server: ScriptedModelServer) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/models"))


async def test_models_of_every_provider_and_the_failing_one_shows_its_error(
    chat_env: ChatEnv, second: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat_env.model.extra_models = ["scripted-2"]
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-WRONG-key-123456789")  # the second server refuses it
    listing = await api(chat_env, "list_models")
    by_name = {p["name"]: p for p in listing["providers"]}
    assert set(by_name) == {"openai", "openrouter"}  # only configured providers; no 500 for the failing one
    assert [m["id"] for m in by_name["openai"]["models"]] == ["scripted-2", "scripted-model"]
    assert by_name["openai"]["error"] is None and by_name["openai"]["defaultModel"] == "scripted-1"
    failing = by_name["openrouter"]
    assert failing["models"] == [] and "401" in failing["error"] and "OPENROUTER_API_KEY" in failing["error"]
    assert "WRONG" not in json.dumps(listing)  # the rejected key is never in the answer
    assert listing["default"] == {"provider": "openai", "model": "scripted-1", "error": None}

    # cached: opening the picker again asks nobody; refresh asks every provider again
    asked = models_requests(chat_env.model)
    await api(chat_env, "list_models")
    assert models_requests(chat_env.model) == asked
    await api(chat_env, "list_models", query={"refresh": "true"})
    assert models_requests(chat_env.model) == asked + 1

    # a fixed key is a new cache entry: listed at once, without waiting for the cache to expire
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test-0000000000")
    fixed = {p["name"]: p for p in (await api(chat_env, "list_models"))["providers"]}
    assert [m["id"] for m in fixed["openrouter"]["models"]] == ["router-large", "router-medium", "router-small"]


async def test_a_provider_that_does_not_answer_is_an_error_not_a_hang(
    chat_env: ChatEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CEREBRAS_API_KEY", "csk-test-000000000000")
    monkeypatch.setenv("CEREBRAS_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    by_name = {p["name"]: p for p in (await api(chat_env, "list_models"))["providers"]}
    assert by_name["openai"]["models"] and by_name["openai"]["error"] is None
    assert by_name["cerebras"]["models"] == [] and "could not connect to http://127.0.0.1:9" in by_name["cerebras"]["error"]


async def test_each_conversation_is_answered_with_its_own_choice(chat_env: ChatEnv, second: ScriptedModelServer) -> None:
    picked = await chat_env.chat.create_conversation("picked")
    default = await chat_env.chat.create_conversation("default")
    body = await api(chat_env, "update_conversation", path={"conversationId": picked.id},
                     body={"provider": "openrouter", "model": "router-large"})
    assert (body["provider"], body["model"]) == ("openrouter", "router-large")
    assert (await api(chat_env, "get_conversation", path={"conversationId": picked.id}))["model"] == "router-large"

    second.enqueue(Response(text="from the router"))
    message, run_id = await chat_env.chat.post_message(picked.id, "hello router")
    await chat_env.settle(run_id)
    [request] = second.chat_requests
    assert request.body is not None and request.body["model"] == "router-large"
    assert request.headers["authorization"] == "Bearer sk-or-test-0000000000"
    stored = await chat_env.chat.store.get_message(message.id)
    assert stored is not None and (stored.provider, stored.model, stored.content) == ("openrouter", "router-large", "from the router")

    chat_env.model.enqueue(Response(text="from the default"))
    other, other_run = await chat_env.chat.post_message(default.id, "hello default")
    await chat_env.settle(other_run)
    assert chat_env.model.chat_requests[-1].body["model"] == "scripted-1"  # type: ignore[index]
    assert len(second.chat_requests) == 1

    # only a provider: that provider's own default model, not the model picked before
    await api(chat_env, "update_conversation", path={"conversationId": picked.id}, body={"provider": "openrouter"})
    second.enqueue(Response(text="default router model"))
    _, run2 = await chat_env.chat.post_message(picked.id, "again")
    await chat_env.settle(run2)
    assert second.chat_requests[-1].body["model"] == "openai/gpt-4o-mini"  # type: ignore[index]

    # null, null: back to the server's default
    back = await api(chat_env, "update_conversation", path={"conversationId": picked.id},
                     body={"provider": None, "model": None})
    assert (back["provider"], back["model"]) == (None, None)
    chat_env.model.enqueue(Response(text="default again"))
    _, run3 = await chat_env.chat.post_message(picked.id, "and now?")
    await chat_env.settle(run3)
    assert chat_env.model.chat_requests[-1].body["model"] == "scripted-1"  # type: ignore[index]


async def test_a_choice_that_cannot_answer_is_refused_and_changes_nothing(chat_env: ChatEnv) -> None:
    conv = await chat_env.chat.create_conversation()
    with pytest.raises(InvalidInput, match=r"cerebras.*not configured.*settings"):
        await api(chat_env, "update_conversation", path={"conversationId": conv.id}, body={"provider": "cerebras"})
    with pytest.raises(InvalidInput, match="not a provider"):
        await api(chat_env, "update_conversation", path={"conversationId": conv.id}, body={"provider": "acme"})
    with pytest.raises(InvalidInput, match="at least one of: model, permissionMode, provider, title"):
        await api(chat_env, "update_conversation", path={"conversationId": conv.id}, body={})
    with pytest.raises(InvalidInput, match="model must be"):
        await api(chat_env, "update_conversation", path={"conversationId": conv.id}, body={"model": ""})
    unchanged = await chat_env.chat.conversation(conv.id)
    assert (unchanged.provider, unchanged.model) == (None, None)
    renamed = await api(chat_env, "update_conversation", path={"conversationId": conv.id}, body={"title": "Renamed"})
    assert renamed["title"] == "Renamed" and renamed["provider"] is None


async def test_a_choice_that_stopped_working_fails_the_answer_with_the_fix(
    chat_env: ChatEnv, second: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = await chat_env.chat.create_conversation()
    await api(chat_env, "update_conversation", path={"conversationId": conv.id}, body={"provider": "openrouter"})
    monkeypatch.delenv("OPENROUTER_API_KEY")  # the key went away: the choice cannot answer now
    chat_env.runtime.models.keys.version += 1  # as a key change does: chains are rebuilt
    message, run_id = await chat_env.chat.post_message(conv.id, "hello?")
    await chat_env.settle(run_id)
    stored = await chat_env.chat.store.get_message(message.id)
    assert stored is not None and stored.status.value == "failed"
    assert stored.error is not None and "openrouter" in stored.error["message"] and "settings" in stored.error["message"]
    assert not second.chat_requests


async def test_conversations_of_an_older_database_get_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in CHAT_SCHEMA.migrations[0]:
        conn.execute(str(statement))
    conn.execute("INSERT INTO conversations VALUES ('conv_old', 'Old', '/ws', 1.0, 2.0)")
    conn.commit()
    conn.close()
    store = SqliteStore(str(path))
    chat = ChatStore(store)
    await store.open()
    try:
        old = await chat.get_conversation("conv_old")
        assert old is not None and (old.title, old.provider, old.model) == ("Old", None, None)
        chat.set_conversation_model("conv_old", "openai", "gpt-4o", 3.0)
        await store.commit()
        again = await chat.get_conversation("conv_old")
        assert again is not None and (again.provider, again.model) == ("openai", "gpt-4o")
    finally:
        await store.close()
