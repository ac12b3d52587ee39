"""The scripted OpenAI-compatible server, exercised with the real ``openai`` client over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from polaris_jupyter.testing import Response, ScriptedModelServer, ScriptedToolCall, load_script, lorem_tokens

USER = [{"role": "user", "content": "hello there"}]


def client(server: ScriptedModelServer, **kwargs: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_streams_text_as_sse_chunks_with_usage(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response(text="Hello there, world", delay_s=0.001))
    async with client(scripted_model) as c:
        stream = await c.chat.completions.create(model="m", messages=USER, stream=True,  # type: ignore[arg-type]
                                                 stream_options={"include_usage": True})
        chunks = [ch async for ch in stream]
    contents = [ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert contents == ["Hello", " there,", " world"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    rec = scripted_model.chat_requests[0]
    assert rec.stream and rec.completed and not rec.client_disconnected
    assert rec.tokens_sent == 3 and rec.token_offsets == [0, 5, 12]
    assert len(scripted_model.token_sent_times) == 3
    assert rec.body is not None and rec.body["messages"] == USER


@pytest.mark.asyncio
async def test_tool_call_deltas_are_split_across_chunks(scripted_model: ScriptedModelServer) -> None:
    args = {"path": "src/app.py", "content": "print('hi')\n" * 3}
    scripted_model.enqueue(Response(tool_calls=[ScriptedToolCall("writeFile", args, id="call_1"),
                                                ScriptedToolCall("readFile", {"path": "a"})]))
    tools = [{"type": "function", "function": {"name": "writeFile", "parameters": {"type": "object"}}}]
    async with client(scripted_model) as c:
        stream = await c.chat.completions.create(model="m", messages=USER, stream=True, tools=tools)  # type: ignore[arg-type]
        pieces: dict[int, list[str]] = {}
        firsts: dict[int, tuple[str | None, str | None]] = {}
        finish = None
        async for ch in stream:
            for tc in ch.choices[0].delta.tool_calls or []:
                assert tc.function is not None
                if tc.index not in firsts:
                    firsts[tc.index] = (tc.id, tc.function.name)
                else:
                    assert tc.id is None and tc.function.name is None
                pieces.setdefault(tc.index, []).append(tc.function.arguments or "")
            finish = ch.choices[0].finish_reason or finish
    assert firsts[0] == ("call_1", "writeFile") and firsts[1][1] == "readFile"
    assert firsts[1][0] and firsts[1][0].startswith("call_")
    assert len(pieces[0]) > 3, "arguments must arrive in several pieces"
    assert json.loads("".join(pieces[0])) == args
    assert finish == "tool_calls"


@pytest.mark.asyncio
async def test_non_streaming_completion_with_tool_calls(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response.tool("readFile", {"path": "x.py"}, text="Let me look."))
    tools = [{"type": "function", "function": {"name": "readFile", "parameters": {"type": "object"}}}]
    async with client(scripted_model) as c:
        done = await c.chat.completions.create(model="m", messages=USER, tools=tools)  # type: ignore[arg-type]
    msg = done.choices[0].message
    assert msg.content == "Let me look."
    assert msg.tool_calls and msg.tool_calls[0].function.name == "readFile"  # type: ignore[union-attr]
    assert json.loads(msg.tool_calls[0].function.arguments) == {"path": "x.py"}  # type: ignore[union-attr]
    assert done.choices[0].finish_reason == "tool_calls" and done.usage is not None


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "exc_type"), [(401, openai.AuthenticationError),
                                                  (429, openai.RateLimitError),
                                                  (500, openai.InternalServerError)])
async def test_http_errors_are_openai_shaped_and_not_retried(
    scripted_model: ScriptedModelServer, status: int, exc_type: type[Exception]
) -> None:
    scripted_model.enqueue(Response.error(status, f"scripted {status}"))
    # A default client retries 429/5xx; the server's x-should-retry: false keeps the script in step.
    async with openai.AsyncOpenAI(base_url=scripted_model.base_url, api_key="k", max_retries=2) as c:
        with pytest.raises(exc_type) as info:
            await c.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
    assert f"scripted {status}" in str(info.value)
    assert len(scripted_model.chat_requests) == 1


@pytest.mark.asyncio
async def test_proxy_page_retry_after_and_a_server_without_usage(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response.proxy_error(503, retry_after_s=5), Response(text="a b", send_usage=False),
                           Response(text="a b", send_usage=False))
    async with client(scripted_model) as c:
        with pytest.raises(openai.InternalServerError) as info:
            await c.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
        assert info.value.response.headers["retry-after"] == "5"
        assert info.value.response.headers["content-type"].startswith("text/plain")
        assert info.value.body == "upstream connect error or disconnect/reset before headers. reset reason: " \
                                  "connection failure"
        stream = await c.chat.completions.create(model="m", messages=USER, stream=True,  # type: ignore[arg-type]
                                                 stream_options={"include_usage": True})
        chunks = [ch async for ch in stream]
        full = await c.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    assert [ch.usage for ch in chunks] == [None] * len(chunks), "like llama.cpp: include_usage is ignored"
    assert full.usage is None and full.choices[0].message.content == "a b"


@pytest.mark.asyncio
async def test_disconnect_mid_stream_breaks_the_client_read(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response(text="one two three four five", disconnect_after_tokens=2))
    got: list[str] = []
    async with client(scripted_model) as c:
        stream = await c.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
        with pytest.raises(openai.APIConnectionError):
            async for ch in stream:
                got.append(ch.choices[0].delta.content or "")
    assert "".join(got) == "one two"
    rec = await scripted_model.wait_finished(0)
    assert rec.server_disconnected and rec.tokens_sent == 2 and not rec.completed


@pytest.mark.asyncio
async def test_in_stream_error_event(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response(text="a b c", error_after_tokens=1, error_message="overloaded"))
    async with client(scripted_model) as c:
        stream = await c.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
        with pytest.raises(openai.APIError, match="overloaded"):
            async for _ in stream:
                pass


@pytest.mark.asyncio
async def test_client_closing_the_stream_is_recorded(scripted_model: ScriptedModelServer) -> None:
    scripted_model.enqueue(Response(text="tok " * 500, delay_s=0.01))
    async with client(scripted_model) as c:
        stream = await c.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
        n = 0
        async for _ in stream:
            n += 1
            if n == 3:
                break
        await stream.close()
    rec = await scripted_model.wait_finished(0)
    assert rec.client_disconnected and not rec.completed
    assert rec.tokens_sent < 500


@pytest.mark.asyncio
async def test_responders_queue_first_then_content_then_echo() -> None:
    async def by_content(body: dict) -> Response | None:
        await asyncio.sleep(0)
        last = body["messages"][-1]["content"]
        return Response(text="42") if "answer" in last else None

    async with ScriptedModelServer([Response(text="scripted")], responder=by_content) as server, client(server) as c:
        replies = []
        for content in ("first", "the answer?", "plain"):
            done = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": content}])
            replies.append(done.choices[0].message.content)
    assert replies == ["scripted", "42", "echo: plain"]


@pytest.mark.asyncio
async def test_validation_like_real_servers(scripted_model: ScriptedModelServer) -> None:
    async with client(scripted_model) as c:
        with pytest.raises(openai.BadRequestError, match="tool_choice"):
            await c.chat.completions.create(model="m", messages=USER, tool_choice="auto")  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError, match="role 'tool'"):
            await c.chat.completions.create(model="m", messages=[  # type: ignore[arg-type]
                *USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}])
        models = await c.models.list()
    assert [m.id for m in models.data] == ["scripted-model"]
    assert scripted_model.pending == 0


@pytest.mark.asyncio
async def test_token_schedule_never_runs_ahead_of_the_rate(scripted_model: ScriptedModelServer) -> None:
    rate = 2000.0
    scripted_model.enqueue(Response(tokens=lorem_tokens(400), tokens_per_s=rate, ttft_s=0.02))
    async with client(scripted_model) as c:
        stream = await c.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream])
    assert text == "".join(lorem_tokens(400))
    rec = scripted_model.chat_requests[0]
    assert len(rec.token_times) == 400 and rec.token_times == sorted(rec.token_times)
    # Token i is never sent before received + ttft + i / rate (the schedule is absolute, not drifting).
    assert all(t - rec.received_at >= 0.02 + i / rate for i, t in enumerate(rec.token_times))


def test_thread_mode_with_the_sync_client() -> None:
    server = ScriptedModelServer.start_in_thread([Response(text="from a thread")])
    try:
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as c:
            stream = c.chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
            text = "".join(ch.choices[0].delta.content or "" for ch in stream)
        assert text == "from a thread"
        assert server.requests[0].completed
    finally:
        server.stop()
    with pytest.raises(RuntimeError):
        server.base_url  # noqa: B018 - stopped servers have no URL


def test_command_line_entry_serves_a_script_file(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"model": "cli-model", "responses": [{"text": "from the file"}]}))
    responses, options = load_script(script)
    assert responses[0].text == "from the file" and options == {"model": "cli-model"}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "polaris_jupyter.testing", "--port", "0", "--script",
                             str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base_url = line.split(" on ")[1].split(" ")[0]
        with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as c:
            done = c.chat.completions.create(model="x", messages=USER)  # type: ignore[arg-type]
        assert done.choices[0].message.content == "from the file" and done.model == "cli-model"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
