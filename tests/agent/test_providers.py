"""Provider configuration from env, the fallback chain and degraded (non-streaming) tool calls."""

from __future__ import annotations

import json
import socket
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from polaris_jupyter.agent import (
    AllProvidersFailed,
    ModelStreamError,
    NoProviderError,
    ProviderChain,
    ProviderConfig,
    ProviderError,
    discover_providers,
    known_providers,
    providers,
    providers_from_env,
)
from polaris_jupyter.testing import Response, ScriptedModelServer

USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "readFile", "parameters": {"type": "object"}}}]


def cfg(name: str, server: ScriptedModelServer, **kw: Any) -> ProviderConfig:
    return ProviderConfig(name, server.base_url, f"{name}-model", **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def drain(stream: Any) -> str:
    async with stream:
        return "".join([d.content or "" async for d in stream])


# -- configuration ---------------------------------------------------------------------------------

def test_env_order_defaults_and_keyless_base_url() -> None:
    env = {"CEREBRAS_API_KEY": "sk-secret", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENROUTER_API_KEY": "r"}
    chain = providers_from_env(env)
    assert [p.name for p in chain] == ["cerebras", "openai", "openrouter"]
    assert chain[0].base_url == "https://api.cerebras.ai/v1" and chain[0].model and chain[0].api_key == "sk-secret"
    assert chain[1].keyless and chain[1].base_url == "http://127.0.0.1:9/v1"
    assert chain[2].headers["X-Title"] == "polaris-jupyter"
    assert "sk-secret" not in repr(chain[0]) and "sk-secret" not in str(chain[0].describe())
    described = {p.name: p.describe()["configured"] for p in known_providers(env)}
    assert described == {"cerebras": True, "openai": True, "openrouter": True, "local": False, "bundled": False}


def test_pin_provider_and_model_and_clear_errors() -> None:
    env = {"CEREBRAS_API_KEY": "c", "OPENAI_API_KEY": "o", "POLARIS_PROVIDER": "openai", "POLARIS_MODEL": "m1"}
    [only] = providers_from_env(env)
    assert (only.name, only.model, only.api_key) == ("openai", "m1", "o")
    assert providers_from_env({"OPENAI_API_KEY": "o"}, model="m2")[0].model == "m2"
    with pytest.raises(NoProviderError, match="not a provider"):
        providers_from_env({"POLARIS_PROVIDER": "nope"})
    with pytest.raises(NoProviderError, match="CEREBRAS_API_KEY"):
        providers_from_env({"POLARIS_PROVIDER": "cerebras"})
    local = providers_from_env({"POLARIS_LOCAL_BASE_URL": "http://127.0.0.1:8080/v1", "POLARIS_LOCAL_MODEL": "q"})
    assert [(p.name, p.model, p.keyless) for p in local] == [("local", "q", True)]


def test_overrides_from_config() -> None:
    over = {"openai": {"base_url": "http://h:1/v1", "model": "mm"}, "cerebras": {"enabled": False}}
    chain = providers_from_env({"CEREBRAS_API_KEY": "c"}, overrides=over)
    assert [(p.name, p.base_url, p.model) for p in chain] == [("openai", "http://h:1/v1", "mm")]


@pytest.mark.asyncio
async def test_discover_probes_local_server_and_asks_its_models(
    scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(providers, "DEFAULT_LOCAL_BASE_URL", scripted_model.base_url)
    found = await discover_providers({}, include_bundled=False)
    assert [(p.name, p.model) for p in found] == [("local", "scripted-model")]
    assert [r.path for r in scripted_model.requests] == ["/v1/models"]
    monkeypatch.setattr(providers, "DEFAULT_LOCAL_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(NoProviderError, match="No model provider is configured"):
        await discover_providers({}, include_bundled=False)


@pytest.mark.asyncio
async def test_bundled_model_as_enabled_fallback_is_last_and_started_on_first_use(
    scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []

    class FakeLocalServer:
        model_name = "smol"

        async def ensure_started(self) -> str:
            events.append("start")
            return scripted_model.base_url

        async def stop(self) -> None:
            events.append("stop")

    fake = types.ModuleType("polaris_jupyter.agent.local_model")
    fake.LocalModelServer = FakeLocalServer  # type: ignore[attr-defined]
    fake.bundled_model_available = lambda: True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "polaris_jupyter.agent.local_model", fake)
    found = await discover_providers({"OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
                                      "POLARIS_BUNDLED_FALLBACK": "1"}, probe_local=False)
    assert [p.name for p in found] == ["openai", "bundled"]
    scripted_model.enqueue(Response(text="local answer"))
    async with ProviderChain(found) as chain:
        stream = await chain.open_stream(messages=USER)
        assert (stream.provider.name, stream.model) == ("bundled", "smol")
        assert await drain(stream) == "local answer"
    assert events == ["start", "stop"]


# -- fallback --------------------------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("failure", [Response.error(429), Response.error(401), Response.error(503),
                                     Response(text="never", disconnect_after_tokens=0)])
async def test_failure_before_first_token_falls_back(scripted_model_factory: Callable[..., Any],
                                                     failure: Response) -> None:
    first = await scripted_model_factory([failure])
    second = await scripted_model_factory([Response(text="from the second")])
    async with ProviderChain([cfg("cerebras", first), cfg("openai", second)]) as chain:
        stream = await chain.open_stream(messages=USER)
        assert (stream.provider.name, stream.model) == ("openai", "openai-model")
        assert await drain(stream) == "from the second"
        assert chain.last_provider is not None and chain.last_provider.name == "openai"
    assert len(first.chat_requests) == 1 and len(second.chat_requests) == 1
    assert second.chat_requests[0].body["model"] == "openai-model"  # type: ignore[index]


@pytest.mark.asyncio
async def test_connection_refused_falls_back(scripted_model: ScriptedModelServer) -> None:
    dead = ProviderConfig("cerebras", f"http://127.0.0.1:{free_port()}/v1", "x", api_key="k")
    async with ProviderChain([dead, cfg("openai", scripted_model)]) as chain:
        stream = await chain.open_stream(messages=USER)
        assert stream.provider.name == "openai"
        assert await drain(stream) == "echo: hi"


@pytest.mark.asyncio
@pytest.mark.parametrize("broken", [Response(text="one two three", error_after_tokens=1),
                                    Response(text="one two three", disconnect_after_tokens=1)])
async def test_error_after_first_token_does_not_fall_back(scripted_model_factory: Callable[..., Any],
                                                          broken: Response) -> None:
    first = await scripted_model_factory([broken])
    second = await scripted_model_factory()
    async with ProviderChain([cfg("cerebras", first), cfg("openai", second)]) as chain:
        stream = await chain.open_stream(messages=USER)
        got: list[str] = []
        with pytest.raises(ModelStreamError, match="cerebras") as info:
            async with stream:
                async for d in stream:
                    got.append(d.content or "")
    assert "".join(got) == "one"
    assert info.value.provider == "cerebras"
    assert second.chat_requests == []


@pytest.mark.asyncio
async def test_bad_request_is_not_a_fallback_case(scripted_model_factory: Callable[..., Any]) -> None:
    first = await scripted_model_factory([Response.error(400, "messages[0] is malformed")])
    second = await scripted_model_factory()
    async with ProviderChain([cfg("cerebras", first), cfg("openai", second)]) as chain:
        with pytest.raises(ProviderError, match="malformed") as info:
            await chain.open_stream(messages=USER)
    assert (info.value.status, info.value.retryable, info.value.provider) == (400, False, "cerebras")
    assert second.chat_requests == []


@pytest.mark.asyncio
async def test_all_failing_lists_every_provider(scripted_model_factory: Callable[..., Any]) -> None:
    first = await scripted_model_factory([Response.error(429)])
    second = await scripted_model_factory([Response.error(500, "upstream exploded")])
    async with ProviderChain([cfg("cerebras", first), cfg("openai", second)]) as chain:
        with pytest.raises(AllProvidersFailed) as info:
            await chain.open_stream(messages=USER)
    message = str(info.value)
    assert "[cerebras]" in message and "429" in message and "[openai]" in message and "upstream exploded" in message
    assert [e.provider for e in info.value.errors] == ["cerebras", "openai"]
    assert info.value.retryable, "a rate limit and a 500 may pass: the run is retried"
    with pytest.raises(NoProviderError):
        ProviderChain([])


@pytest.mark.asyncio
async def test_keys_and_extra_headers_are_sent(scripted_model_factory: Callable[..., Any]) -> None:
    locked = await scripted_model_factory(api_key="sk-right")
    open_ = await scripted_model_factory()
    wrong = ProviderConfig("cerebras", locked.base_url, "m", api_key="sk-wrong")
    right = ProviderConfig("openrouter", locked.base_url, "m", api_key="sk-right", headers={"X-Title": "t"})
    keyless = ProviderConfig("local", open_.base_url, "m")
    async with ProviderChain([wrong, right]) as chain:
        stream = await chain.open_stream(messages=USER)
        assert stream.provider.name == "openrouter"
        await drain(stream)
    assert [r.status for r in locked.chat_requests] == [401, 200]
    assert locked.chat_requests[1].headers["x-title"] == "t"
    async with ProviderChain([keyless]) as chain:
        await drain(await chain.open_stream(messages=USER))
    assert open_.chat_requests[0].body["stream_options"] == {"include_usage": True}  # type: ignore[index]


# -- degrade ---------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_server_that_cannot_stream_tools_is_asked_without_streaming(
    scripted_model_factory: Callable[..., Any],
) -> None:
    server = await scripted_model_factory(reject_streaming_tools=True)
    server.enqueue(Response.tool("readFile", {"path": "a.py"}), Response.tool("readFile", {"path": "b.py"}))
    async with ProviderChain([cfg("local", server)]) as chain:
        for expected in ("a.py", "b.py"):
            stream = await chain.open_stream(messages=USER, tools=TOOLS)
            assert stream.degraded
            async with stream:
                deltas = [d async for d in stream]
            call = deltas[0].tool_calls[0]
            assert call.name == "readFile" and expected in (call.arguments or "")
            assert deltas[-1].finish_reason == "tool_calls"
        plain = await chain.open_stream(messages=USER)  # without tools it still streams
        assert not plain.degraded
        await drain(plain)
    # first step: streamed attempt refused (400), then non-streamed; later steps go straight to non-streamed
    assert [(r.stream, r.status) for r in server.chat_requests] == [(True, 400), (False, 200), (False, 200),
                                                                   (True, 200)]


@pytest.mark.asyncio
async def test_degrade_ladder_ends_without_tools_but_never_drops_a_forced_tool(
    scripted_model_factory: Callable[..., Any],
) -> None:
    refuse = Response.error(400, "tools are not supported by this chat template")
    server = await scripted_model_factory([refuse, refuse, Response(text="plain answer"),
                                           refuse])
    async with ProviderChain([cfg("local", server)]) as chain:
        stream = await chain.open_stream(messages=USER, tools=TOOLS, tool_choice="auto")
        assert stream.degraded and await drain(stream) == "plain answer"
        forced = {"type": "function", "function": {"name": "readFile"}}
        with pytest.raises(ProviderError, match="400"):  # a forced tool is never silently dropped
            await chain.open_stream(messages=USER, tools=TOOLS, tool_choice=forced)
    shapes = [(r.stream, bool(r.tools), r.tool_choice) for r in server.chat_requests]
    assert shapes == [(True, True, "auto"), (False, True, "auto"), (True, False, None), (False, True, forced)]


@pytest.mark.asyncio
async def test_bundled_capabilities_skip_the_failing_streamed_attempt(
    scripted_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Caps:
        stream_with_tools = False
        forced_tool_choice = True
        auto_tool_choice = True

    class Shared:
        model_name = "smol"
        capabilities = Caps()
        stopped = False

        async def ensure_started(self) -> str:
            return scripted_model.base_url

        async def stop(self) -> None:
            Shared.stopped = True

    shared = Shared()
    fake = types.ModuleType("polaris_jupyter.agent.local_model")
    fake.get_local_model_server = lambda: shared  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "polaris_jupyter.agent.local_model", fake)
    scripted_model.enqueue(Response.tool("readFile", {"path": "a"}))
    async with ProviderChain([ProviderConfig("bundled", "", "", bundled=True)]) as chain:
        stream = await chain.open_stream(messages=USER, tools=TOOLS)
        assert stream.degraded and stream.model == "smol"
        async with stream:
            assert [d.tool_calls[0].name async for d in stream] == ["readFile"]
    assert [r.stream for r in scripted_model.chat_requests] == [False]
    assert not Shared.stopped, "the shared local server belongs to local_model, not to the chain"


@pytest.mark.asyncio
async def test_server_refusing_stream_options_still_streams(scripted_model: ScriptedModelServer) -> None:
    def old_server(body: dict) -> Response:
        if "stream_options" in body:
            return Response.error(400, "Unrecognized request argument supplied: stream_options")
        return Response(text="no usage here")

    scripted_model.responder = old_server
    async with ProviderChain([cfg("local", scripted_model)]) as chain:
        for _ in range(2):
            assert await drain(await chain.open_stream(messages=USER)) == "no usage here"
    assert [("stream_options" in (r.body or {})) for r in scripted_model.chat_requests] == [True, False, False]


# -- stream parsing (our SSE reader, not the SDK's per-chunk pydantic objects) ---------------------

def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


@pytest.mark.asyncio
async def test_sse_comments_multiline_data_and_crlf(scripted_model: ScriptedModelServer) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    multi = _chunk({"content": "lo"}).replace('"delta"', '\ndata: "delta"', 1)  # one event, two data lines
    scripted_model.enqueue(Response(raw_events=[
        ": OPENROUTER PROCESSING\n\n",
        f"data: {_chunk({'role': 'assistant', 'content': ''})}\n\n",
        f"data: {_chunk({'content': 'Hel'})}\r\n\r\n",
        f"event: message\nid: 7\ndata: {multi}\n\n",
        f"data: {_chunk({}, 'stop', usage=usage)}\n\n",
        "data: [DONE]\n\n",
    ]))
    async with ProviderChain([cfg("openrouter", scripted_model)]) as chain:
        stream = await chain.open_stream(messages=USER)
        async with stream:
            deltas = [d async for d in stream]
    assert "".join(d.content or "" for d in deltas) == "Hello"
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is not None
    assert deltas[-1].usage.total_tokens == 5


@pytest.mark.asyncio
async def test_json_answer_to_a_stream_request(scripted_model: ScriptedModelServer) -> None:
    completion = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "readFile", "arguments": "{}"}}]}}]}
    scripted_model.enqueue(Response(raw_events=[json.dumps(completion)],
                                    headers={"Content-Type": "application/json"}))
    async with ProviderChain([cfg("local", scripted_model)]) as chain:
        stream = await chain.open_stream(messages=USER, tools=TOOLS)
        async with stream:
            [delta] = [d async for d in stream]
    assert (delta.tool_calls[0].id, delta.tool_calls[0].name, delta.finish_reason) == ("c9", "readFile",
                                                                                     "tool_calls")


@pytest.mark.asyncio
async def test_garbage_event_after_output_is_a_clear_stream_error(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response(raw_events=[f"data: {_chunk({'content': 'ok'})}\n\n", "data: <html>\n\n"]))
    async with ProviderChain([cfg("local", scripted_model)]) as chain:
        stream = await chain.open_stream(messages=USER)
        with pytest.raises(ModelStreamError, match=r"broke after output had started: .*not JSON"):
            async with stream:
                async for _ in stream:
                    pass
