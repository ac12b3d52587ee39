"""Model failures seen from a chat turn (issue 11): the ``process-message`` run with its engine,
store and events, the real ``openai`` client against the scripted server. A wrong key fails
the message at once with the reason in the bubble; a rate limit waits the server's Retry-After;
unknown usage is null."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import FakeClock, RunStatus, TaskRegistry
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.agent._toy_model import install_toy_model

WRONG_KEY = "sk-wrong-0123456789abcdefXYZ"


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    """OpenAI configured at a scripted server that wants ``sk-right``; the bundled model is
    "installed" (served by a toy server that must never be asked); nothing else is configured."""
    server = ScriptedModelServer.start_in_thread(api_key="sk-right")
    toy = install_toy_model(monkeypatch)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-right")
    monkeypatch.setenv("OPENAI_MODEL", "scripted-1")
    server.toy = toy  # type: ignore[attr-defined]
    yield server
    server.stop()
    toy.stop()


@pytest_asyncio.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[PolarisRuntime]:
    clock = FakeClock()
    (tmp_path / "ws").mkdir()
    rt = PolarisRuntime(PolarisConfig(db_path=str(tmp_path / "p.db"), max_steps=2), root_dir=tmp_path / "ws",
                        registry=TaskRegistry(), clock=clock)
    await rt.start()
    yield rt
    await rt.stop()


async def ask(runtime: PolarisRuntime, text: str = "hello") -> tuple[Any, str]:
    chat = runtime.chat
    conv = await chat.create_conversation()
    message, run_id = await chat.post_message(conv.id, text)
    return message, run_id


async def until(predicate: Any, timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_a_wrong_key_fails_the_message_at_once_with_the_reason_and_no_toy_answer(
    model: ScriptedModelServer, runtime: PolarisRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", WRONG_KEY)
    message, run_id = await ask(runtime)
    run = await runtime.engine.wait_for(run_id, timeout_s=30)
    assert run.status is RunStatus.FAILED
    assert run.attempt_count == 1, "a rejected key cannot pass on a second try"
    stored = await runtime.chat.store.get_message(message.id)
    assert stored is not None and stored.status.value == "failed"
    host = model.base_url.removeprefix("http://")
    assert stored.error["message"] == (f"OPENAI_API_KEY was rejected by {host} (401 Incorrect API key provided.): "
                                       "set a valid key (env or settings)")
    assert WRONG_KEY not in str(stored.error) and WRONG_KEY not in str(run.error)
    assert [r.status for r in model.chat_requests] == [401]
    assert model.toy.chat_requests == []  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_rate_limit_waits_for_retry_after_then_answers(model: ScriptedModelServer,
                                                                runtime: PolarisRuntime) -> None:
    model.enqueue(Response.error(429, retry_after_s=45), Response(text="second attempt answers"))
    message, run_id = await ask(runtime)
    engine = runtime.engine

    async def reattempting() -> bool:
        return (await engine.get_run(run_id)).status is RunStatus.REATTEMPTING

    await until(reattempting)
    run = await engine.get_run(run_id)
    assert run.next_attempt_at is not None and run.next_attempt_at - engine.clock.now() == pytest.approx(45, abs=0.5)
    stored = await runtime.chat.store.get_message(message.id)
    assert stored is not None and stored.error and stored.error.get("retrying")
    assert "is rate limiting requests (429" in stored.error["message"] and "retrying in 45 s" in stored.error["message"]
    assert isinstance(engine.clock, FakeClock)
    engine.clock.advance(46)
    run = await engine.wait_for(run_id, timeout_s=30)
    assert run.status is RunStatus.COMPLETED and run.attempt_count == 2
    stored = await runtime.chat.store.get_message(message.id)
    assert stored is not None and stored.content == "second attempt answers"


@pytest.mark.asyncio
async def test_usage_the_server_did_not_send_is_null(model: ScriptedModelServer, runtime: PolarisRuntime) -> None:
    model.enqueue(Response(text="llama.cpp sends no usage", send_usage=False))
    message, run_id = await ask(runtime)
    run = await runtime.engine.wait_for(run_id, timeout_s=30)
    assert run.status is RunStatus.COMPLETED, run.error
    stored = await runtime.chat.store.get_message(message.id)
    assert stored is not None and stored.content == "llama.cpp sends no usage"
    assert stored.usage is None and stored.to_json()["usage"] is None
    assert run.output["usage"] is None


@pytest.mark.asyncio
async def test_the_bundled_fallback_setting_lets_the_bundled_model_answer_and_says_so(
    model: ScriptedModelServer, tmp_path: Path
) -> None:
    (tmp_path / "ws").mkdir()
    config = PolarisConfig(db_path=str(tmp_path / "p.db"), max_steps=2, bundled_fallback=True)
    rt = PolarisRuntime(config, root_dir=tmp_path / "ws", registry=TaskRegistry())
    await rt.start()
    try:
        model.enqueue(Response.proxy_error(503))
        message, run_id = await ask(rt)
        run = await rt.engine.wait_for(run_id, timeout_s=30)
        assert run.status is RunStatus.COMPLETED, run.error
        stored = await rt.chat.store.get_message(message.id)
        assert stored is not None and stored.content == "toy hallucination"
        assert (stored.provider, stored.model) == ("bundled", "smol"), "the header names who answered"
    finally:
        await rt.stop()
