"""The scripted server's ``/v1/completions``, exercised with the real ``openai`` client over HTTP."""

from __future__ import annotations

import asyncio

import openai
import pytest

from polaris_jupyter.testing import Response, ScriptedModelServer
from polaris_jupyter.testing._completion_handler import completion_requests


def client(server: ScriptedModelServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)


@pytest.mark.asyncio
async def test_streams_text_completion_chunks_and_records_the_suffix(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response(text=" a + b", delay_s=0.001))
    async with client(scripted_model) as c:
        stream = await c.completions.create(model="m", prompt="x =", suffix="\nreturn x", stream=True,
                                            stream_options={"include_usage": True})
        chunks = [ch async for ch in stream]
    texts = [ch.choices[0].text for ch in chunks if ch.choices]
    assert texts == [" a", " +", " b", ""]
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    [rec] = completion_requests(scripted_model)
    assert rec.body is not None and rec.body["suffix"] == "\nreturn x" and rec.body["prompt"] == "x ="
    assert rec.stream and rec.completed and not rec.client_disconnected
    assert rec.tokens_sent == 3 and rec.token_offsets == [0, 2, 4]


@pytest.mark.asyncio
async def test_honours_stop_and_max_tokens_like_a_real_server(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response(text="one two\nthree four"), Response(text="one two three four"))
    async with client(scripted_model) as c:
        stopped = await c.completions.create(model="m", prompt="p", stop=["\n"])
        limited = await c.completions.create(model="m", prompt="p", max_tokens=2)
    assert stopped.choices[0].text == "one two" and stopped.choices[0].finish_reason == "stop"
    assert limited.choices[0].text == "one two" and limited.choices[0].finish_reason == "length"
    assert limited.object == "text_completion" and limited.usage is not None


@pytest.mark.asyncio
async def test_waits_the_time_to_first_token_and_sees_the_client_leave(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response(tokens=["a"] * 100, ttft_s=0.05, delay_s=0.05))
    async with client(scripted_model) as c:
        stream = await c.completions.create(model="m", prompt="p", stream=True)
        async for chunk in stream:
            assert chunk.choices[0].text == "a"
            break
        await stream.close()
    [rec] = completion_requests(scripted_model)
    for _ in range(1000):
        if rec.finished:
            break
        await asyncio.sleep(0.01)
    assert rec.client_disconnected and not rec.completed and 0 < rec.tokens_sent < 100


@pytest.mark.asyncio
async def test_error_replies_and_validation(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response.error(404, "This is a chat model and not supported in the v1/completions endpoint."))
    async with client(scripted_model) as c:
        with pytest.raises(openai.NotFoundError, match="chat model"):
            await c.completions.create(model="m", prompt="p", stream=True)
        with pytest.raises(openai.BadRequestError, match="prompt"):
            await c.completions.create(model="m", prompt=None)
        with pytest.raises(openai.BadRequestError, match="suffix"):
            await c.completions.create(model="m", prompt="p", extra_body={"suffix": 3})
    assert [r.status for r in completion_requests(scripted_model)] == [404, 400, 400]


@pytest.mark.asyncio
async def test_a_responder_can_tell_completions_from_chat(scripted_model: ScriptedModelServer) -> None:
    scripted_model.responder = lambda body: Response(text="infill" if "prompt" in body else "chat")
    async with client(scripted_model) as c:
        completion = await c.completions.create(model="m", prompt="p", suffix="s")
        chat = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].text == "infill" and chat.choices[0].message.content == "chat"


@pytest.mark.asyncio
async def test_a_reply_kept_for_the_chat_route_is_passed_over_by_completions(scripted_model: ScriptedModelServer) -> None:
    """A UI test types in an editor (ghost text) while its chat turn is scripted: the completion
    must not take the turn's reply (the tool call), and the chat request still gets it."""
    scripted_model.enqueue(Response(text="chat reply", route="chat"), Response(text=" ghost"))
    async with client(scripted_model) as c:
        done = await c.completions.create(model="m", prompt="x =")
        assert done.choices[0].text == " ghost"
        chat = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert chat.choices[0].message.content == "chat reply"
    assert scripted_model.pending == 0
    with pytest.raises(ValueError, match="route must be"):
        Response.from_dict({"text": "x", "route": "embeddings"})
