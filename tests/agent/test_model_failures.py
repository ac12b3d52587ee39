"""Model failures tell the truth (issue 11, items 1-5), through the real ``openai`` client against
the scripted server: no silent bundled-model answers, no retries of what cannot succeed, errors
that say who failed and how to fix it, degrade only on real refusals (and not forever), and
unknown usage as None."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from polaris_jupyter.agent import (
    AllProvidersFailed,
    NoProviderError,
    ProviderChain,
    ProviderConfig,
    ProviderError,
    ProviderSelected,
    StepFinished,
    discover_providers,
    providers,
    providers_from_env,
    retry_after_s,
    run_agent_loop,
)
from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import is_retryable
from polaris_jupyter.testing import Response, ScriptedModelServer
from polaris_jupyter.tools.base import Tool, ToolContext, ToolRegistry
from tests.agent._tools import OBJ
from tests.agent._toy_model import free_port, install_toy_model

USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "readFile", "parameters": {"type": "object"}}}]
WRONG_KEY = "sk-wrong-0123456789abcdefXYZ"


def where(server: ScriptedModelServer) -> str:
    return server.base_url.removeprefix("http://")


def echo_registry() -> ToolRegistry:
    async def echo(args: dict[str, Any], ctx: ToolContext) -> str:
        return f"echo:{args.get('text', '')}"

    return ToolRegistry([Tool(name="echo", description="echo", parameters=OBJ, fn=echo, path_params=())])


async def drain(stream: Any) -> str:
    async with stream:
        return "".join([d.content or "" async for d in stream])


@pytest.fixture
def toy_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    """The bundled model, installed, served by a scripted server: any request it gets is a bug
    unless the bundled model was pinned, alone, or enabled as a fallback."""
    toy = install_toy_model(monkeypatch)
    yield toy
    toy.stop()


# -- 1. the bundled model is no silent fallback ------------------------------------------------------

@pytest.mark.asyncio
async def test_a_failing_configured_provider_is_never_answered_by_the_bundled_model(
    scripted_model_factory: Callable[..., Any], toy_model: ScriptedModelServer
) -> None:
    locked = await scripted_model_factory(api_key="sk-right")
    env = {"OPENAI_BASE_URL": locked.base_url, "OPENAI_API_KEY": WRONG_KEY}
    found = await discover_providers(env, probe_local=False)
    assert [p.name for p in found] == ["openai"]
    async with ProviderChain(found) as chain:
        with pytest.raises(AllProvidersFailed, match="OPENAI_API_KEY was rejected"):
            await chain.open_stream(messages=USER)
    assert [r.status for r in locked.chat_requests] == [401]
    assert toy_model.chat_requests == [], "the bundled model must not answer for a configured provider"


@pytest.mark.asyncio
@pytest.mark.parametrize(("env", "kwargs", "names"), [
    ({}, {}, ["bundled"]),  # nothing else configured: the bundled model is the provider
    ({"OPENAI_API_KEY": "k", "POLARIS_PROVIDER": "bundled"}, {}, ["bundled"]),  # pinned
    ({"OPENAI_API_KEY": "k", "POLARIS_BUNDLED_FALLBACK": "1"}, {}, ["openai", "bundled"]),  # enabled by env
    ({"OPENAI_API_KEY": "k"}, {"bundled_fallback": True}, ["openai", "bundled"]),  # enabled by config
    ({"OPENAI_API_KEY": "k"}, {"overrides": {"bundled": {"enabled": True}}}, ["openai", "bundled"]),
    ({"OPENAI_API_KEY": "k", "POLARIS_BUNDLED_FALLBACK": "1"}, {"bundled_fallback": False}, ["openai"]),
    ({"OPENAI_API_KEY": "k", "POLARIS_BUNDLED_FALLBACK": "0"}, {}, ["openai"]),
])
async def test_the_bundled_model_joins_when_alone_pinned_or_enabled(
    toy_model: ScriptedModelServer, env: dict[str, str], kwargs: dict[str, Any], names: list[str]
) -> None:
    found = await discover_providers(env, probe_local=False, **kwargs)
    assert [p.name for p in found] == names
    assert [p.name for p in providers_from_env(env, **kwargs)] == names  # the sync path, same rule


@pytest.mark.asyncio
async def test_an_enabled_bundled_fallback_answers_after_the_configured_provider_failed(
    scripted_model_factory: Callable[..., Any], toy_model: ScriptedModelServer
) -> None:
    down = await scripted_model_factory([Response.proxy_error(503)])
    found = await discover_providers({"OPENAI_BASE_URL": down.base_url}, probe_local=False, bundled_fallback=True)
    async with ProviderChain(found) as chain:
        stream = await chain.open_stream(messages=USER)
        assert (stream.provider.name, stream.model) == ("bundled", "smol")  # the header tells the truth
        assert await drain(stream) == "toy hallucination"


def test_bundled_fallback_setting_is_off_by_default_and_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLARIS_BUNDLED_FALLBACK", raising=False)
    assert PolarisConfig().bundled_fallback is False
    monkeypatch.setenv("POLARIS_BUNDLED_FALLBACK", "true")
    assert PolarisConfig().bundled_fallback is True
    assert "off by default" in PolarisConfig.class_traits()["bundled_fallback"].help.lower()


@pytest.mark.asyncio
async def test_nothing_usable_is_a_no_provider_error_that_is_not_retried(toy_model: ScriptedModelServer) -> None:
    with pytest.raises(NoProviderError) as info:
        await discover_providers({}, probe_local=False, overrides={"bundled": {"enabled": False}})
    assert not is_retryable(info.value)


# -- 2. what may be retried, and when -------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize(("failure", "retryable", "after_s"), [
    (Response.error(401), False, None),
    (Response.error(403), False, None),
    (Response.error(404), False, None),
    (Response.error(429, retry_after_s=7), True, 7.0),
    (Response.error(429, headers={"retry-after-ms": "1500"}), True, 1.5),
    (Response.error(429), True, None),
    (Response.proxy_error(503, retry_after_s=3), True, 3.0),
    (Response.error(500, "upstream overloaded"), True, None),
])
async def test_auth_and_not_found_fail_at_once_rate_limits_and_5xx_retry_after_retry_after(
    scripted_model: ScriptedModelServer, failure: Response, retryable: bool, after_s: float | None
) -> None:
    scripted_model.enqueue(failure)
    async with ProviderChain([ProviderConfig("openai", scripted_model.base_url, "m", api_key="k")]) as chain:
        with pytest.raises(AllProvidersFailed) as info:
            await chain.open_stream(messages=USER)
    exc = info.value
    assert (exc.status, exc.retryable, exc.retry_after_s) == (failure.status, retryable, after_s)
    assert is_retryable(exc) is retryable  # what the job engine decides with


@pytest.mark.asyncio
async def test_connection_refused_is_retried(scripted_model: ScriptedModelServer) -> None:
    dead = ProviderConfig("openai", f"http://127.0.0.1:{free_port()}/v1", "m", api_key="k")
    async with ProviderChain([dead]) as chain:
        with pytest.raises(AllProvidersFailed) as info:
            await chain.open_stream(messages=USER)
    assert info.value.retryable and info.value.status is None


@pytest.mark.asyncio
async def test_several_failures_retry_when_one_may_pass_after_the_shortest_wait(
    scripted_model_factory: Callable[..., Any],
) -> None:
    rejected = await scripted_model_factory([Response.error(401)])
    limited = await scripted_model_factory([Response.error(429, retry_after_s=9)])
    busy = await scripted_model_factory([Response.error(503, retry_after_s=4)])
    chain = ProviderChain([ProviderConfig("cerebras", rejected.base_url, "a", api_key="k"),
                           ProviderConfig("openai", limited.base_url, "b", api_key="k"),
                           ProviderConfig("openrouter", busy.base_url, "c", api_key="k")])
    async with chain:
        with pytest.raises(AllProvidersFailed) as info:
            await chain.open_stream(messages=USER)
    assert info.value.retryable and info.value.retry_after_s == 4
    assert [e.retryable for e in info.value.errors] == [False, True, True]


def test_retry_after_header_forms() -> None:
    assert retry_after_s({"retry-after": "12"}) == 12
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "12"}) == 0.25
    future = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 100 < (retry_after_s({"retry-after": future}) or 0) <= 120
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None
    assert retry_after_s({"retry-after": "999999"}) == 3600  # a bad header cannot park a run for days


# -- 3. the error says who failed, why, and what to do -------------------------------------------------------

@pytest.mark.asyncio
async def test_error_messages_name_the_provider_the_status_the_server_words_and_the_fix(
    scripted_model: ScriptedModelServer,
) -> None:
    host = where(scripted_model)
    cases = [
        (Response.error(401), "openai", "k",
         f"OPENAI_API_KEY was rejected by {host} (401 Incorrect API key provided.): set a valid key (env or settings)"),
        (Response.error(401), "local", None,
         f"{host} wants an API key (401 Incorrect API key provided.): set POLARIS_LOCAL_API_KEY (env or settings)"),
        (Response.error(403), "cerebras", "k",
         f"{host} refused access with the key in CEREBRAS_API_KEY (403 You are not allowed to use this model.)"),
        (Response.error(404), "openai", "k", f"{host} does not know model 'm' or this route (404 The model does not "
                                             "exist.): set a model it has (OPENAI_MODEL or POLARIS_MODEL)"),
        (Response.error(429, retry_after_s=7), "openrouter", "k",
         f"{host} is rate limiting requests (429 Rate limit reached for requests. Please try again later.): "
         "retrying in 7 s"),
        (Response.proxy_error(503), "openai", "k",
         f"{host} failed with 503 upstream connect error or disconnect/reset before headers. reset reason: "
         "connection failure: the server or a proxy in front of it is in trouble; retrying with backoff"),
    ]
    for failure, name, key, expected in cases:
        scripted_model.enqueue(failure)
        async with ProviderChain([ProviderConfig(name, scripted_model.base_url, "m", api_key=key)]) as chain:
            with pytest.raises(AllProvidersFailed) as info:
                await chain.open_stream(messages=USER)
        assert str(info.value).startswith(expected), str(info.value)
        assert info.value.message == str(info.value) and info.value.provider == name


@pytest.mark.asyncio
async def test_connection_refused_says_where_and_asks_whether_ollama_runs(toy_model: ScriptedModelServer) -> None:
    [local] = [p for p in await discover_providers({"POLARIS_LOCAL_BASE_URL": providers.DEFAULT_LOCAL_BASE_URL},
                                                   probe_local=False) if p.name == "local"]
    local.model = "llama3.2"
    origin = providers.DEFAULT_LOCAL_BASE_URL.removesuffix("/v1")
    async with ProviderChain([local]) as chain:
        with pytest.raises(AllProvidersFailed) as info:
            await chain.open_stream(messages=USER)
    assert str(info.value) == f"could not connect to {origin}: is Ollama running? (ollama serve)"


@pytest.mark.asyncio
async def test_keys_never_appear_in_error_messages(scripted_model: ScriptedModelServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "or-env-secret-987654")
    echo = f"Incorrect API key provided: {WRONG_KEY}; also tried or-env-secret-987654 and sk-proj-AAAABBBBCCCCDDDDEEEE"
    scripted_model.enqueue(Response.error(401, echo))
    async with ProviderChain([ProviderConfig("openai", scripted_model.base_url, "m", api_key=WRONG_KEY)]) as chain:
        with pytest.raises(AllProvidersFailed) as info:
            await chain.open_stream(messages=USER)
    text = str(info.value)
    assert "[masked]" in text and WRONG_KEY not in text and "or-env-secret" not in text and "sk-proj-AAAA" not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no raw body in the run's stack


# -- 4. degrade only on a real refusal, remembered for a while, shown, and the prompt follows --------------

@pytest.mark.asyncio
@pytest.mark.parametrize("failure", [
    Response.proxy_error(503),  # Envoy: "upstream connect error or disconnect/reset before headers"
    Response.error(500, "upstream overloaded"),
    Response.error(502, "Cannot use tools with stream"),  # never on a 5xx, whatever it says
    Response.error(400, "upstream stream reset while reading tools"),  # never on "upstream"
    Response.error(400, "messages[1]: the stream of function results is malformed"),  # words, not a refusal
])
async def test_proxy_and_server_errors_never_lower_the_tool_mode(scripted_model: ScriptedModelServer,
                                                                 failure: Response) -> None:
    scripted_model.enqueue(failure, Response.tool("readFile", {"path": "a.py"}))
    async with ProviderChain([ProviderConfig("local", scripted_model.base_url, "m")]) as chain:
        with pytest.raises((AllProvidersFailed, ProviderError)):
            await chain.open_stream(messages=USER, tools=TOOLS)
        stream = await chain.open_stream(messages=USER, tools=TOOLS)
        assert not stream.degraded and stream.notice is None
        await drain(stream)
        assert chain.degraded() == []
    shapes = [(r.stream, bool(r.tools)) for r in scripted_model.chat_requests]
    assert shapes == [(True, True), (True, True)], "one failed request, then tools streamed as before"


@pytest.mark.asyncio
async def test_a_real_refusal_degrades_per_provider_and_model_until_it_expires(
    scripted_model_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    server = await scripted_model_factory(reject_streaming_tools=True)
    now = [1000.0]
    chain = ProviderChain([ProviderConfig("local", server.base_url, "qwen")], degrade_ttl_s=120,
                          clock=lambda: now[0])
    async with chain:
        with caplog.at_level(logging.WARNING, logger="polaris_jupyter.agent"):
            first = await chain.open_stream(messages=USER, tools=TOOLS)
        await drain(first)
        assert first.degraded and first.notice is not None
        assert "local (qwen) refused tool calls (400 Cannot use tools with stream)" in first.notice
        assert "tools go without streaming for the next 2 min" in first.notice
        assert any("Cannot use tools with stream" in r.getMessage() for r in caplog.records)
        assert chain.degraded() == [{"provider": "local", "model": "qwen", "mode": "complete",
                                     "notice": first.notice, "expiresInS": 120.0}]
        now[0] += 119
        await drain(await chain.open_stream(messages=USER, tools=TOOLS))  # still known: no streamed try
        now[0] += 2  # expired: streamed tools are tried again
        again = await chain.open_stream(messages=USER, tools=TOOLS)
        await drain(again)
    shapes = [(r.stream, r.status) for r in server.chat_requests]
    assert shapes == [(True, 400), (False, 200), (False, 200), (True, 400), (False, 200)]


@pytest.mark.asyncio
async def test_the_system_prompt_lists_only_the_tools_sent_and_the_notice_is_an_event(
    scripted_model: ScriptedModelServer, tmp_path: Any
) -> None:
    def no_tools_server(body: dict[str, Any]) -> Response:
        if body.get("tools"):
            return Response.error(400, "registry.ollama.ai/library/gemma:2b does not support tools")
        return Response(text="plain answer")

    scripted_model.responder = no_tools_server
    registry = echo_registry()
    events: list[Any] = []

    async def on_event(event: Any) -> None:
        events.append(event)

    async with ProviderChain([ProviderConfig("local", scripted_model.base_url, "gemma:2b")]) as chain:
        result = await run_agent_loop(
            chain=chain, messages=USER, registry=registry, ctx=ToolContext(root=tmp_path), on_event=on_event,
            system_prompt=lambda names: f"Available tools: {', '.join(names) or 'none'}.",
        )
    assert result.text == "plain answer"
    systems = [(bool(r.tools), r.messages[0]) for r in scripted_model.chat_requests]
    assert systems[-1] == (False, {"role": "system", "content": "Available tools: none."})
    assert all(m == {"role": "system", "content": "Available tools: echo."} for sent, m in systems if sent)
    [selected] = [e for e in events if isinstance(e, ProviderSelected)]
    assert selected.degraded and selected.notice and "does not support tools" in selected.notice
    assert result.notices == [selected.notice]
    assert result.messages[0] == {"role": "system", "content": "Available tools: echo."}


# -- 5. usage the server did not send is unknown, not 0 ------------------------------------------------------

@pytest.mark.asyncio
async def test_usage_is_none_when_the_server_sends_none(scripted_model: ScriptedModelServer, tmp_path: Any) -> None:
    scripted_model.enqueue(Response(text="no usage from llama.cpp", send_usage=False))
    events: list[Any] = []

    async def on_event(event: Any) -> None:
        events.append(event)

    async with ProviderChain([ProviderConfig("local", scripted_model.base_url, "m")]) as chain:
        result = await run_agent_loop(chain=chain, messages=USER, registry=ToolRegistry(),
                                      ctx=ToolContext(root=tmp_path), on_event=on_event)
    assert result.text == "no usage from llama.cpp"
    assert result.usage is None
    assert [e.usage for e in events if isinstance(e, StepFinished)] == [None]
    assert scripted_model.chat_requests[0].body["stream_options"] == {"include_usage": True}  # type: ignore[index]


@pytest.mark.asyncio
async def test_usage_of_a_turn_is_unknown_when_one_step_reported_none(
    scripted_model: ScriptedModelServer, tmp_path: Any
) -> None:
    scripted_model.enqueue(Response.tool("echo", {"text": "x"}), Response(text="done", send_usage=False))
    registry = echo_registry()
    async with ProviderChain([ProviderConfig("local", scripted_model.base_url, "m")]) as chain:
        result = await run_agent_loop(chain=chain, messages=USER, registry=registry, ctx=ToolContext(root=tmp_path))
    assert result.text == "done" and result.steps == 2
    assert result.usage is None, "a partial sum would be a made-up figure"
