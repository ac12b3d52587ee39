"""The tool loop against the scripted server with the real openai client over HTTP."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.agent import (
    FinishReason,
    LoopEvent,
    ModelStreamError,
    ProviderChain,
    ProviderConfig,
    ProviderSelected,
    StepFinished,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    run_agent_loop,
)
from polaris_jupyter.testing import Response, ScriptedModelServer, ScriptedToolCall
from polaris_jupyter.tools.base import ToolRegistry

from ._tools import Journal, make_ctx, make_registry

USER = [{"role": "system", "content": "You are a test."}, {"role": "user", "content": "do it"}]


class Recorder:
    def __init__(self) -> None:
        self.events: list[LoopEvent] = []

    async def __call__(self, event: LoopEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def run(chain: ProviderChain, tmp_path: Path, registry: ToolRegistry | None = None,
              journal: Journal | None = None, **kwargs: Any) -> tuple[Any, Recorder]:
    rec = Recorder()
    registry = registry if registry is not None else make_registry(journal or Journal())
    result = await run_agent_loop(chain=chain, messages=list(USER), registry=registry, ctx=make_ctx(tmp_path),
                                  on_event=rec, **kwargs)
    return result, rec


@pytest.mark.asyncio
async def test_plain_reply_streams_as_deltas(scripted_model: ScriptedModelServer, chain: ProviderChain,
                                             tmp_path: Path) -> None:
    scripted_model.enqueue(Response(text="Hello from the scripted model.", delay_s=0.001))
    result, rec = await run(chain, tmp_path, registry=ToolRegistry(), first_tool_choice="auto")
    deltas = [e.text for e in rec.of(TextDelta)]
    assert len(deltas) == 5 and "".join(deltas) == result.text == "Hello from the scripted model."
    assert (result.finish_reason, result.steps) == (FinishReason.STOP, 1)
    assert result.finish_reason == "stop"
    assert (result.provider, result.model) == ("openai", "scripted-model")
    assert result.usage is not None and result.usage.completion_tokens == 5 and result.usage.total_tokens > 5
    assert rec.of(ProviderSelected) == [ProviderSelected("openai", "scripted-model", False)]
    assert result.messages[-1] == {"role": "assistant", "content": "Hello from the scripted model."}
    body = scripted_model.chat_requests[0].body
    assert body is not None and "tools" not in body and "tool_choice" not in body  # never tool_choice w/o tools


@pytest.mark.asyncio
async def test_multi_step_tool_loop(scripted_model: ScriptedModelServer, chain: ProviderChain,
                                    tmp_path: Path) -> None:
    scripted_model.reject_null_content = True  # like servers that refuse content: null
    scripted_model.enqueue(
        Response.tool("write", {"path": "a.py"}, call_id="call_a"),
        Response.tool("echo", {"text": "ping"}, text="Now echo.", call_id="call_b"),
        Response(text="All done."),
    )
    result, rec = await run(chain, tmp_path)
    assert (result.steps, result.finish_reason) == (3, FinishReason.STOP)
    assert result.text == "Now echo.\n\nAll done."
    assert "".join(e.text for e in rec.of(TextDelta)) == result.text
    assert [(t.name, t.ok, t.summary) for t in result.tool_calls] == [("write", True, "Wrote a.py"),
                                                                      ("echo", True, "echo:ping")]
    assert result.tool_calls[0].diff == "+x"
    kinds = [type(e).__name__ for e in rec.events if not isinstance(e, TextDelta)]
    assert kinds == ["ProviderSelected", "StepFinished", "ToolCallStarted", "ToolCallFinished",
                     "StepFinished", "ToolCallStarted", "ToolCallFinished", "StepFinished"]
    assert [s.finish_reason for s in rec.of(StepFinished)] == ["tool_calls", "tool_calls", "stop"]
    # What the model saw on the third call: the whole transcript, tool-call messages with content "".
    sent = scripted_model.chat_requests[2].messages
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert sent[2]["content"] == "" and sent[2]["tool_calls"][0]["id"] == "call_a"
    assert json.loads(sent[2]["tool_calls"][0]["function"]["arguments"]) == {"path": "a.py"}
    assert sent[3] == {"role": "tool", "tool_call_id": "call_a", "content": "wrote a.py"}
    assert sent[4]["content"] == "Now echo."
    assert result.messages[: len(sent)] == sent and result.messages[-1]["content"] == "All done."
    assert all(r.body and r.body["tools"] and "tool_choice" not in r.body for r in scripted_model.chat_requests)


@pytest.mark.asyncio
async def test_independent_calls_run_concurrently_same_path_in_order(
    scripted_model: ScriptedModelServer, chain: ProviderChain, tmp_path: Path
) -> None:
    journal = Journal()
    scripted_model.enqueue(
        Response(tool_calls=[ScriptedToolCall("rendezvous", {"path": "x.py"}),
                             ScriptedToolCall("rendezvous", {"path": "y.py"})]),
        Response(tool_calls=[ScriptedToolCall("write", {"path": "same.py"}),
                             ScriptedToolCall("write", {"path": "./same.py"}),
                             ScriptedToolCall("write", {"path": "other.py"}),
                             ScriptedToolCall("write", {"path": "same.py"})]),
        Response(text="ok"),
    )
    result, _rec = await run(chain, tmp_path, journal=journal)
    # Each rendezvous call only succeeds if the other one runs at the same time.
    assert [t.ok for t in result.tool_calls[:2]] == [True, True], result.tool_calls[:2]
    spans = [s for s in journal.spans if s[1].endswith("same.py")]
    assert len(spans) == 3
    for earlier, later in itertools.pairwise(spans):
        assert earlier[3] <= later[2], "same-path calls overlapped"
    other = next(s for s in journal.spans if s[1] == "other.py")
    assert other[2] < spans[0][3], "a call on another path waited for the same-path chain"
    # results go back to the model in the model's order, whatever the finishing order
    tool_msgs = [m for m in result.messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_msgs[2:]] == ["wrote same.py", "wrote ./same.py", "wrote other.py",
                                                     "wrote same.py"]


@pytest.mark.asyncio
async def test_max_steps_reached(scripted_model: ScriptedModelServer, chain: ProviderChain,
                                 tmp_path: Path) -> None:
    scripted_model.responder = lambda body: Response.tool("echo", {"text": "again"}, text="Looping.")
    result, _rec = await run(chain, tmp_path, max_steps=3)
    assert (result.finish_reason, result.steps) == (FinishReason.MAX_STEPS, 3)
    assert len(scripted_model.chat_requests) == 3 and len(result.tool_calls) == 3
    assert result.text == "Looping.\n\nLooping.\n\nLooping."
    assert result.messages[-1]["role"] == "tool"
    with pytest.raises(ValueError, match="max_steps"):
        await run(chain, tmp_path, max_steps=0)


@pytest.mark.asyncio
async def test_bad_json_unknown_tool_and_tool_errors_go_back_as_text(
    scripted_model: ScriptedModelServer, chain: ProviderChain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scripted_model.reject_null_content = True
    scripted_model.enqueue(
        Response(tool_calls=[ScriptedToolCall("echo", '{"text": "unterminated', id="c1"),
                             ScriptedToolCall("nosuchtool", {"path": "a"}, id="c2"),
                             ScriptedToolCall("fail", {"path": "secret"}, id="c3"),
                             ScriptedToolCall("boom", {"path": "b"}, id="c4"),
                             ScriptedToolCall("echo", "[1, 2]", id="c5")]),
        Response(text="Sorry."),
    )
    with caplog.at_level(logging.ERROR):
        result, rec = await run(chain, tmp_path)
    assert result.finish_reason == FinishReason.STOP and result.text == "Sorry."
    by_id = {t.call_id: t for t in result.tool_calls}
    assert not any(t.ok for t in result.tool_calls)
    assert "not valid JSON" in by_id["c1"].result_text and "unterminated" in by_id["c1"].result_text
    assert "unknown tool 'nosuchtool'" in by_id["c2"].result_text and "echo" in by_id["c2"].result_text
    assert by_id["c3"].result_text == "Error: cannot do that with 'secret': not allowed"
    assert "RuntimeError: kaboom" in by_id["c4"].result_text and by_id["c4"].error
    assert "must be a JSON object" in by_id["c5"].result_text
    assert any("boom" in r.getMessage() for r in caplog.records), "unexpected tool exceptions are logged"
    finished = {e.call_id: e for e in rec.of(ToolCallFinished)}
    assert set(finished) == {"c1", "c2", "c3", "c4", "c5"} and not finished["c3"].ok
    assert finished["c3"].error == "cannot do that with 'secret': not allowed"
    started = {e.call_id: e.arguments for e in rec.of(ToolCallStarted)}
    assert started["c3"] == {"path": "secret"} and started["c1"] == {}
    sent = scripted_model.chat_requests[1].messages
    assert sent[2]["content"] == ""
    assert sent[2]["tool_calls"][0]["function"]["arguments"] == "{}"  # broken JSON is not echoed back
    assert [m["tool_call_id"] for m in sent[3:]] == ["c1", "c2", "c3", "c4", "c5"]


@pytest.mark.asyncio
async def test_tool_output_is_capped(scripted_model: ScriptedModelServer, chain: ProviderChain,
                                     tmp_path: Path) -> None:
    scripted_model.enqueue(Response.tool("big", {"path": "p"}), Response(text="ok"))
    result, _rec = await run(chain, tmp_path, max_tool_output_chars=1_000)
    record = result.tool_calls[0]
    assert record.ok and record.truncated
    assert record.result_text.startswith("x" * 1_000) and "truncated" in record.result_text
    assert len(record.result_text) < 1_100
    sent_tool_msg = scripted_model.chat_requests[1].messages[-1]
    assert sent_tool_msg["content"] == record.result_text


@pytest.mark.asyncio
async def test_forced_first_tool_then_per_step_choice(scripted_model: ScriptedModelServer, chain: ProviderChain,
                                                      tmp_path: Path) -> None:
    scripted_model.enqueue(Response.tool("write", {"path": "f.py"}), Response.tool("echo", {"text": "t"}),
                           Response(text="done"))
    result, _ = await run(chain, tmp_path, first_tool_choice="write",
                          tool_choice_per_step=lambda step: "required" if step == 1 else None)
    choices = [r.tool_choice for r in scripted_model.chat_requests]
    assert choices == [{"type": "function", "function": {"name": "write"}}, "required", None]
    assert result.steps == 3
    with pytest.raises(ValueError, match="neither auto/none/required nor a registered tool"):
        await run(chain, tmp_path, first_tool_choice="notATool")


@pytest.mark.asyncio
async def test_mid_stream_disconnect_raises_a_clear_error(scripted_model: ScriptedModelServer,
                                                          chain: ProviderChain, tmp_path: Path) -> None:
    scripted_model.enqueue(Response(text="partial text that never ends", disconnect_after_tokens=2))
    rec = Recorder()
    with pytest.raises(ModelStreamError, match=r"broke after output had started") as info:
        await run_agent_loop(chain=chain, messages=USER, registry=ToolRegistry(), ctx=make_ctx(tmp_path),
                             on_event=rec)
    assert info.value.provider == "openai"
    assert "".join(e.text for e in rec.of(TextDelta)) == "partial text"


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["reading the stream", "inside the event callback"])
async def test_cancel_during_streaming_closes_the_http_stream(scripted_model: ScriptedModelServer,
                                                              chain: ProviderChain, tmp_path: Path,
                                                              where: str) -> None:
    scripted_model.enqueue(Response(text="word " * 2_000, delay_s=0.01))
    got_text = asyncio.Event()

    async def on_event(event: LoopEvent) -> None:
        if isinstance(event, TextDelta):
            got_text.set()
            if where == "inside the event callback":
                await asyncio.sleep(3600)  # e.g. a slow store write: the stream is idle, not awaited

    task = asyncio.create_task(run_agent_loop(chain=chain, messages=USER, registry=ToolRegistry(),
                                              ctx=make_ctx(tmp_path), on_event=on_event))
    await asyncio.wait_for(got_text.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rec = await scripted_model.wait_finished(0)
    assert rec.client_disconnected and not rec.completed and rec.tokens_sent < 2_000


@pytest.mark.asyncio
async def test_cancel_during_tools_cancels_running_tool_tasks(scripted_model: ScriptedModelServer,
                                                              chain: ProviderChain, tmp_path: Path) -> None:
    journal = Journal()
    scripted_model.enqueue(Response(tool_calls=[ScriptedToolCall("hang", {"path": "a"}),
                                                ScriptedToolCall("hang", {"path": "b"})]))
    task = asyncio.create_task(run(chain, tmp_path, journal=journal))
    await asyncio.wait_for(journal.started.wait(), 10)
    await asyncio.sleep(0)  # let the second call start too
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(journal.cancelled) == ["a", "b"]


@pytest.mark.asyncio
async def test_length_finish_stops_without_running_partial_calls(
    scripted_model: ScriptedModelServer, chain: ProviderChain, tmp_path: Path
) -> None:
    scripted_model.enqueue(Response(text="cut", tool_calls=[ScriptedToolCall("echo", '{"text": "x')],
                                    finish_reason="length"))
    result, rec = await run(chain, tmp_path)
    assert (result.finish_reason, result.text, result.tool_calls) == (FinishReason.LENGTH, "cut", [])
    assert rec.of(ToolCallStarted) == []


@pytest.mark.asyncio
async def test_degraded_steps_are_recorded(scripted_model_factory: Callable[..., Any], tmp_path: Path) -> None:
    server = await scripted_model_factory(reject_streaming_tools=True)
    server.enqueue(Response.tool("echo", {"text": "a"}), Response(text="fine"))
    async with ProviderChain([ProviderConfig("bundled", server.base_url, "smol")]) as chain:
        result, rec = await run(chain, tmp_path)
    assert result.text == "fine" and result.degraded_steps == [0, 1]
    assert result.tool_calls[0].result_text == "echo:a"
    assert [s.degraded for s in rec.of(StepFinished)] == [True, True]
