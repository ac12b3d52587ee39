"""Inline completions through the real ``openai`` client against the scripted model server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from polaris_jupyter.agent import AllProvidersFailed, NoProviderError, ProviderChain
from polaris_jupyter.agent.completions import (
    CancelReason,
    CompletionMode,
    CompletionRequest,
    CompletionService,
    CompletionSettings,
)
from polaris_jupyter.agent.completions_metrics import SuggestionCache
from polaris_jupyter.errors import InvalidInput, NotFound
from polaris_jupyter.jobs import RunStatus
from polaris_jupyter.testing import RecordedRequest, Response, ScriptedModelServer
from polaris_jupyter.testing._completion_handler import completion_requests

ADD_PREFIX = "def add(a, b):\n    result ="
ADD_SUFFIX = "\n    return result\n"


@pytest_asyncio.fixture
async def service(chain: ProviderChain) -> AsyncIterator[CompletionService]:
    svc = CompletionService(chain)
    yield svc
    await svc.stop()


async def collect(handle: AsyncIterator[str]) -> list[str]:
    return [piece async for piece in handle]


async def finished(rec: RecordedRequest, timeout_s: float = 10.0) -> RecordedRequest:
    """Wait until the scripted server is done with a request (sent it all, or saw the client go)."""
    async def poll() -> None:
        while not rec.finished:
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout_s)
    return rec


async def first_request(server: ScriptedModelServer, timeout_s: float = 10.0) -> RecordedRequest:
    async def poll() -> RecordedRequest:
        while not completion_requests(server):
            await asyncio.sleep(0.005)
        return completion_requests(server)[0]
    return await asyncio.wait_for(poll(), timeout_s)


@pytest.mark.asyncio
async def test_fim_request_sends_prefix_and_suffix_to_the_completions_endpoint(
        scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(Response(text=" a + b"))
    request = CompletionRequest(prefix=ADD_PREFIX, suffix=ADD_SUFFIX, editor_id="cell-1", max_tokens=24)
    handle = service.complete(request)
    assert "".join(await collect(handle)) == " a + b"
    assert handle.status is RunStatus.COMPLETED and handle.mode is CompletionMode.FIM
    assert (handle.provider, handle.model) == ("openai", "scripted-model")
    [rec] = completion_requests(scripted_model)
    assert rec.body is not None
    assert rec.body["prompt"] == ADD_PREFIX and rec.body["suffix"] == ADD_SUFFIX
    assert rec.body["stream"] is True and rec.body["max_tokens"] == 24 and rec.body["model"] == "scripted-model"
    assert rec.body["stop"] == ["\n\n"]  # the cursor ends its line: multi-line, ends at a blank line
    assert not scripted_model.chat_requests
    assert service.metrics()["fimSupport"] == [{"provider": "openai", "model": "scripted-model", "fim": True}]


@pytest.mark.asyncio
async def test_notebook_cells_above_go_into_the_prompt_within_the_budget(
        scripted_model: ScriptedModelServer, chain: ProviderChain) -> None:
    service = CompletionService(chain, CompletionSettings(context_chars=50))
    try:
        scripted_model.enqueue(Response(text="df.head()"))
        cells = ("import os\n" + "x = 1\n" * 20, "import pandas as pd", "df = pd.read_csv('a.csv')")
        await collect(service.complete(CompletionRequest(prefix="", cells=cells)))
        [rec] = completion_requests(scripted_model)
        assert rec.body is not None
        assert rec.body["prompt"] == "import pandas as pd\n\ndf = pd.read_csv('a.csv')\n\n"  # nearest cells that fit
    finally:
        await service.stop()


@pytest.mark.asyncio
async def test_mid_line_cursor_asks_for_one_line(scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(Response(tokens=["f(", "x", ")", ")", "\n", "print('more')"]))
    handle = service.complete(CompletionRequest(prefix="print(", suffix=")\nnext_line()\n"))
    assert "".join(await collect(handle)) == "f(x)"  # the repeated closer is dropped
    [rec] = completion_requests(scripted_model)
    assert rec.body is not None and rec.body["stop"] == ["\n"]


@pytest.mark.asyncio
async def test_chat_fallback_when_the_completions_endpoint_is_404(
        scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(
        Response.error(404, "This is a chat model and not supported in the v1/completions endpoint."),
        Response(text="```python\n    result = a + b\n```"),
        Response(text="return a - b"),
    )
    first = service.complete(CompletionRequest(prefix=ADD_PREFIX, suffix=ADD_SUFFIX, path="m.py"))
    assert "".join(await collect(first)) == " a + b"  # fence and the repeated cursor line removed
    assert first.mode is CompletionMode.CHAT and first.status is RunStatus.COMPLETED
    chat = scripted_model.chat_requests[0]
    prompt = chat.messages[-1]["content"]
    assert f"{ADD_PREFIX}<CURSOR>{ADD_SUFFIX}" in prompt and "m.py" in prompt
    assert chat.body is not None and chat.body["max_tokens"] == service.settings.max_tokens
    # Remembered per provider+model: the next completion goes to chat without asking /completions.
    second = service.complete(CompletionRequest(prefix="def sub(a, b):\n    ", editor_id="other"))
    assert "".join(await collect(second)) == "return a - b" and second.mode is CompletionMode.CHAT
    assert len(completion_requests(scripted_model)) == 1 and len(scripted_model.chat_requests) == 2
    assert service.metrics()["fimSupport"] == [{"provider": "openai", "model": "scripted-model", "fim": False}]


@pytest.mark.asyncio
async def test_suggestion_stops_at_the_end_of_the_block_and_closes_the_stream(
        scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    # No blank line for the server's stop sequence to catch: the dedent ends the suggestion.
    tokens = [" x", " + 1\n", "    return", " y\n", "print(f(2))\n", *[f"# filler {i}\n" for i in range(40)]]
    scripted_model.enqueue(Response(tokens=tokens, delay_s=0.05))
    handle = service.complete(CompletionRequest(prefix="def f(x):\n    y =", suffix=""))
    assert "".join(await collect(handle)) == " x + 1\n    return y"
    rec = await finished(completion_requests(scripted_model)[0])
    assert rec.client_disconnected and rec.tokens_sent < len(tokens)


@pytest.mark.asyncio
async def test_new_request_from_the_same_editor_cancels_the_streaming_one(
        scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(Response(tokens=["value", *[f" + {i}" for i in range(200)]], delay_s=0.05),
                           Response(text=" 2"))
    old = service.complete(CompletionRequest(prefix="x =", editor_id="cell-7"))
    pieces = old.__aiter__()
    assert await pieces.__anext__() == "value"  # the first suggestion piece is on screen
    new = service.complete(CompletionRequest(prefix="x = 1 +", editor_id="cell-7"))
    assert old.status is RunStatus.CANCELED and old.cancel_reason is CancelReason.SUPERSEDED
    assert [p async for p in pieces] == []  # the old iterator ends at once
    rec = await finished(completion_requests(scripted_model)[0])
    assert rec.client_disconnected and not rec.completed
    assert "".join(await collect(new)) == " 2" and new.status is RunStatus.COMPLETED
    await old.wait()
    assert service.metrics()["cancelReasons"] == {"superseded": 1}


@pytest.mark.asyncio
async def test_superseded_before_the_first_token_drops_the_waiting_request(
        scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(Response(text="late", ttft_s=30), Response(text="1"))
    old = service.complete(CompletionRequest(prefix="a =", editor_id="e"))
    rec = await first_request(scripted_model)
    new = service.complete(CompletionRequest(prefix="b =", editor_id="e"))
    assert await collect(old) == [] and old.cancel_reason is CancelReason.SUPERSEDED
    await finished(rec)
    assert rec.client_disconnected and rec.tokens_sent == 0
    assert "".join(await collect(new)) == "1"


@pytest.mark.asyncio
async def test_other_editors_are_not_cancelled(scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(Response(text="one", ttft_s=0.2), Response(text="two"))
    a = service.complete(CompletionRequest(prefix="a =", editor_id="left"))
    b = service.complete(CompletionRequest(prefix="b =", editor_id="right"))
    assert "".join(await collect(b)) in ("one", "two") and "".join(await collect(a)) in ("one", "two")
    assert a.status is b.status is RunStatus.COMPLETED


@pytest.mark.asyncio
async def test_identical_request_is_answered_from_the_cache_until_it_expires(
        scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    now = [1000.0]
    service.cache = SuggestionCache(size=4, ttl_s=30, clock=lambda: now[0])
    scripted_model.enqueue(Response(text=" a + b"), Response(text=" b + a"), Response(text=" a * b"))
    request = CompletionRequest(prefix=ADD_PREFIX, suffix=ADD_SUFFIX, editor_id="x")
    assert "".join(await collect(service.complete(request))) == " a + b"
    hit = service.complete(CompletionRequest(prefix=ADD_PREFIX, suffix=ADD_SUFFIX, editor_id="another"))
    assert hit.done and hit.cached and hit.status is RunStatus.COMPLETED  # answered before any await
    assert await collect(hit) == [" a + b"]
    assert len(completion_requests(scripted_model)) == 1
    # A different suffix is a different request.
    assert "".join(await collect(service.complete(CompletionRequest(prefix=ADD_PREFIX, suffix="")))) == " b + a"
    now[0] += 31  # past the window: asked again
    again = service.complete(request)
    assert "".join(await collect(again)) == " a * b" and not again.cached
    assert len(completion_requests(scripted_model)) == 3
    assert service.metrics()["cacheHits"] == 1


@pytest.mark.asyncio
async def test_metrics_count_outcomes_latency_and_the_accept_rate(
        scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(Response(text="one"), Response(text="two"), Response.error(500, "boom"),
                           Response.error(500, "boom"))
    first = service.complete(CompletionRequest(prefix="a =", editor_id="1"))
    await collect(first)
    second = service.complete(CompletionRequest(prefix="b =", editor_id="2"))
    await collect(second)
    failed = service.complete(CompletionRequest(prefix="c =", editor_id="3"))
    with pytest.raises(AllProvidersFailed):
        await collect(failed)
    assert failed.status is RunStatus.FAILED
    service.feedback(first.id, "accepted")
    service.feedback(first.id, "accepted")  # once per suggestion
    service.feedback(second.id, "shown")
    service.feedback(second.id, "dismissed")
    with pytest.raises(NotFound):
        service.feedback("cmp_unknown", "accepted")
    with pytest.raises(InvalidInput):
        service.feedback(first.id, "liked")
    m = service.metrics()
    assert m["taskId"] == "inline-completion" and m["persisted"] is False
    assert m["counts"] == {"COMPLETED": 2, "FAILED": 1} and m["total"] == 3
    assert m["successRate"] == pytest.approx(2 / 3)
    assert m["feedback"] == {"shown": 2, "accepted": 1, "dismissed": 1} and m["acceptRate"] == 0.5
    assert m["firstSuggestionP50Ms"] is not None and m["durationP95Ms"] >= m["durationP50Ms"]
    assert m["running"] == 0


@pytest.mark.asyncio
async def test_a_failed_completion_reports_the_reason_as_a_wire_line(
        scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(Response.error(500, "upstream on fire"), Response.error(500, "upstream on fire"))
    lines = [line async for line in service.complete(CompletionRequest(prefix="x =")).events()]
    assert [line["type"] for line in lines] == ["error"]
    assert lines[0]["status"] == 502 and "upstream on fire" in lines[0]["message"]


@pytest.mark.asyncio
async def test_wire_lines_of_a_streamed_suggestion(scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(Response(text="1 + 2"))
    lines = [line async for line in service.complete(CompletionRequest(prefix="x =", editor_id="w")).events()]
    assert lines[0] == {"type": "start", "id": lines[-1]["id"], "provider": "openai", "model": "scripted-model",
                        "mode": "fim", "cached": False}
    assert "".join(line["text"] for line in lines if line["type"] == "delta") == "1 + 2"
    assert lines[-1]["type"] == "end" and lines[-1]["status"] == "COMPLETED" and lines[-1]["text"] == "1 + 2"


@pytest.mark.asyncio
async def test_a_completion_over_its_time_limit_is_timed_out(scripted_model: ScriptedModelServer, chain: ProviderChain) -> None:
    service = CompletionService(chain, CompletionSettings(timeout_s=0.2))
    try:
        scripted_model.enqueue(Response(text="never", ttft_s=30))
        handle = service.complete(CompletionRequest(prefix="x ="))
        assert await collect(handle) == []
        assert handle.status is RunStatus.TIMED_OUT
        rec = await finished(await first_request(scripted_model))
        assert rec.client_disconnected
    finally:
        await service.stop()


@pytest.mark.asyncio
async def test_unknown_provider_override_is_refused_with_the_reason(service: CompletionService) -> None:
    handle = service.complete(CompletionRequest(prefix="x =", provider="nonesuch"))
    with pytest.raises(InvalidInput, match=r"nonesuch.*not configured"):
        await collect(handle)


@pytest.mark.asyncio
async def test_overrides_pick_the_chain_a_conversation_with_that_choice_would_use(
        scripted_model: ScriptedModelServer, chain: ProviderChain) -> None:
    asked: list[tuple[str | None, str | None]] = []

    async def chain_for(provider: str | None, model: str | None) -> ProviderChain:
        asked.append((provider, model))
        if provider == "cerebras":
            raise NoProviderError("POLARIS_PROVIDER=cerebras but that provider is not configured (CEREBRAS_API_KEY)")
        return chain

    service = CompletionService(chain_for)
    try:
        scripted_model.enqueue(Response(text="1"))
        await collect(service.complete(CompletionRequest(prefix="x =", provider="openai", model="m2")))
        with pytest.raises(InvalidInput, match="CEREBRAS_API_KEY"):
            await collect(service.complete(CompletionRequest(prefix="y =", provider="cerebras")))
        assert asked == [("openai", "m2"), ("cerebras", None)]
    finally:
        await service.stop()


@pytest.mark.asyncio
async def test_model_override_is_sent_to_the_provider(scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(Response(text="1"))
    handle = service.complete(CompletionRequest(prefix="x =", model="qwen2.5-coder"))
    await collect(handle)
    assert handle.model == "qwen2.5-coder"
    assert completion_requests(scripted_model)[0].body["model"] == "qwen2.5-coder"  # type: ignore[index]


@pytest.mark.parametrize(("body", "message"), [
    ({"prefix": 3}, "prefix must be a string"),
    ({"suffix": "x"}, "prefix must be a string"),
    ({"prefix": "", "maxTokens": 0}, "maxTokens must be an integer"),
    ({"prefix": "", "maxTokens": True}, "maxTokens must be an integer"),
    ({"prefix": "", "cells": ["a", 2]}, "cells must be a list of strings"),
    ({"prefix": "", "editorId": ""}, "editorId must not be empty"),
    ({"prefix": "", "provider": " "}, "provider must be a non-empty string"),
])
def test_bad_requests_are_refused_with_the_reason(body: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        CompletionRequest.from_wire(body)


def test_wire_request_maps_to_the_request() -> None:
    request = CompletionRequest.from_wire({"prefix": "a", "suffix": "b", "language": "typescript", "path": "x.ts",
                                           "editorId": "e", "cells": ["c"], "maxTokens": 9, "model": "m"})
    assert request == CompletionRequest("a", "b", "typescript", "x.ts", "e", ("c",), None, "m", 9)


@pytest.mark.asyncio
async def test_stop_cancels_running_completions(scripted_model: ScriptedModelServer, chain: ProviderChain) -> None:
    service = CompletionService(chain)
    scripted_model.enqueue(Response(text="slow", ttft_s=30))
    handle = service.complete(CompletionRequest(prefix="x ="))
    rec = await first_request(scripted_model)
    await service.stop()
    assert handle.cancel_reason is CancelReason.STOPPED
    assert (await finished(rec)).client_disconnected
    with pytest.raises(InvalidInput):
        service.complete(CompletionRequest(prefix="y ="))


@pytest.mark.asyncio
async def test_a_superseded_completion_ends_its_wire_lines_with_canceled(
        scripted_model: ScriptedModelServer, service: CompletionService) -> None:
    scripted_model.enqueue(Response(text="never shown", ttft_s=30), Response(text="2"))
    old = service.complete(CompletionRequest(prefix="x =", editor_id="same"))
    lines = old.events()
    await first_request(scripted_model)
    service.complete(CompletionRequest(prefix="x = 1 +", editor_id="same"))
    seen = [line async for line in lines]
    assert [line["type"] for line in seen] == ["start", "end"]
    assert seen[-1]["status"] == "CANCELED" and seen[-1]["cancelReason"] == "superseded" and seen[-1]["text"] == ""
