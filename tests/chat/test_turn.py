"""The chat turn: its state machine on its own (a fake run context and store, a fake clock),
then whole turns through the engine against the scripted model server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from polaris_jupyter.chat.store import Message, MessageStatus
from polaris_jupyter.chat.turn import ChatTurn, OpenMessages
from polaris_jupyter.jobs import Conflict, FakeClock, RunStatus
from polaris_jupyter.testing import Response, ScriptedToolCall
from tests.chat.conftest import ChatEnv, until

WORDS = [f"word{i} " for i in range(40)]


# -- the state machine alone ----------------------------------------------------------------------
@dataclass
class FakeRun:
    max_attempts: int = 3


@dataclass
class FakeMetadata:
    values: dict[str, Any] = field(default_factory=dict)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


@dataclass
class FakeContext:
    """The part of a run context a turn uses: identity, ``emit`` and ``metadata``."""

    run_id: str = "run_1"
    attempt: int = 1
    run: FakeRun = field(default_factory=FakeRun)
    metadata: FakeMetadata = field(default_factory=FakeMetadata)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def emit(self, type: str, data: dict[str, Any]) -> None:
        self.events.append((type, data))


@dataclass
class FakeStore:
    rows: list[tuple[str, str, float]] = field(default_factory=list)  # (status, content, updated_at)

    def put_message(self, message: Message) -> None:
        self.rows.append((message.status.value, message.content, message.updated_at))


def placeholder() -> Message:
    return Message("msg_a", "conv_1", "assistant", "", MessageStatus.PENDING, 1.0, 1.0)


def make_turn(
    ctx: FakeContext | None = None, finals: list[Message] | None = None
) -> tuple[ChatTurn, FakeContext, FakeStore, FakeClock]:
    ctx = ctx or FakeContext()
    store, clock = FakeStore(), FakeClock(start=100.0)
    turn = ChatTurn(placeholder(), ctx, store, clock, on_final=None if finals is None else finals.append)  # type: ignore[arg-type]
    return turn, ctx, store, clock


def statuses(ctx: FakeContext) -> list[tuple[str, bool]]:
    return [(d["status"], d["final"]) for t, d in ctx.events if t == "message.status"]


def test_start_stream_complete_writes_rows_and_events_with_final_flags() -> None:
    finals: list[Message] = []
    turn, ctx, store, clock = make_turn(finals=finals)
    turn.start()
    clock.advance(2)
    turn.add_text("Hello ", 0)
    turn.add_text("world", 6)
    assert turn.snapshot().content == "Hello world"
    assert store.rows == [("processing", "", 100.0)]  # text reaches the row at state changes only
    clock.advance(3)
    turn.complete("Hello world", usage={"totalTokens": 5}, provider="openai", model="m")
    assert store.rows[-1] == ("completed", "Hello world", 105.0)
    assert statuses(ctx) == [("processing", False), ("completed", True)]
    deltas = [d for t, d in ctx.events if t == "message.delta"]
    assert [(d["delta"], d["offset"]) for d in deltas] == [("Hello ", 0), ("world", 6)]
    final = ctx.events[-1][1]
    assert final["usage"] == {"totalTokens": 5} and final["provider"] == "openai"
    assert [m.status for m in finals] == [MessageStatus.COMPLETED]
    assert turn.snapshot().run_id == "run_1"


def test_cancel_wins_over_everything_that_arrives_later() -> None:
    finals: list[Message] = []
    turn, ctx, store, _ = make_turn(finals=finals)
    turn.start()
    turn.add_text("partial", 0)
    assert turn.cancel("cancelled by the user") is True
    written, emitted = len(store.rows), len(ctx.events)
    turn.add_text(" more", 7)
    turn.tool_started("call_1", "readFile", {"path": "a.py"})
    turn.provider_selected("openai", "m")
    turn.complete("partial more", usage=None, provider="openai", model="m")
    turn.fail(RuntimeError("late"), final=True)
    assert turn.cancel("again") is False
    assert (len(store.rows), len(ctx.events)) == (written, emitted), "nothing is written after cancel"
    assert turn.status is MessageStatus.CANCELLED and turn.snapshot().content == "partial"
    assert store.rows[-1] == ("cancelled", "partial", 100.0)
    assert (
        ctx.events[-1][1]["error"] == {"message": "cancelled by the user"}
        and ctx.events[-1][1]["final"] is True
    )
    assert len(finals) == 1


def test_a_failed_attempt_stays_processing_and_the_next_attempt_starts_over() -> None:
    turn, ctx, store, _ = make_turn()
    turn.start()
    turn.add_text("half an ans", 0)
    turn.fail(ConnectionError("stream cut"), final=False)
    assert turn.status is MessageStatus.PROCESSING and not turn.is_final
    retrying = ctx.events[-1][1]
    assert retrying["retrying"] is True and retrying["final"] is False and retrying["error"]["attempt"] == 1
    # The next attempt is a new turn over the row as the first one left it.
    second_ctx = FakeContext(attempt=2, events=[])
    second = ChatTurn(turn.snapshot(), second_ctx, store, FakeClock(), on_final=None)  # type: ignore[arg-type]
    second.start()
    assert second.snapshot().content == "" and second.snapshot().error is None
    assert second_ctx.events[0][1]["reset"] is True and second_ctx.events[0][1]["attempt"] == 2
    second.fail(ConnectionError("again"), final=True)
    assert statuses(second_ctx) == [("processing", False), ("failed", True)]
    assert second.snapshot().error is not None and second.snapshot().error["detail"].startswith(
        "ConnectionError"
    )


def test_tool_cards_are_recorded_as_they_start_and_finish() -> None:
    turn, ctx, _, _ = make_turn()
    turn.start()
    turn.tool_started("c1", "writeFile", {"path": "a.txt"})
    turn.tool_finished("c1", "writeFile", ok=True, summary="wrote a.txt", duration_ms=1.234, diff="+x")
    turn.tool_finished("c2", "readFile", ok=False, summary="", duration_ms=0.5, error="no such file")
    calls = turn.snapshot().tool_calls
    assert [(c["id"], c["status"]) for c in calls] == [("c1", "succeeded"), ("c2", "failed")]
    assert calls[0]["durationMs"] == 1.2 and calls[0]["diff"] == "+x"
    assert [t for t, _ in ctx.events] == [
        "message.status",
        "toolcall.started",
        "toolcall.finished",
        "toolcall.finished",
    ]


def test_snapshots_are_copies_not_the_turns_own_message() -> None:
    turn, _, _, _ = make_turn()
    turn.start()
    seen = turn.snapshot()
    seen.status = MessageStatus.CANCELLED
    seen.tool_calls.append({"id": "x"})
    assert turn.status is MessageStatus.PROCESSING and turn.snapshot().tool_calls == []


def test_open_messages_one_per_conversation() -> None:
    open_messages = OpenMessages()
    first, second = placeholder(), placeholder()
    second.id = "msg_b"
    open_messages.claim(first)
    open_messages.claim(first)  # the same message again is fine
    with pytest.raises(Conflict, match="msg_a of this conversation is still being answered"):
        open_messages.claim(second)
    turn, _, _, _ = make_turn()
    open_messages.attach(turn)
    assert open_messages.turn("msg_a") is turn
    turn.start()
    turn.add_text("live", 0)
    assert open_messages.current(first).content == "live"
    open_messages.detach(turn)  # not final: the run may retry, the conversation stays busy
    assert open_messages.busy("conv_1") == "msg_a" and open_messages.turn("msg_a") is None
    open_messages.release(first)
    open_messages.claim(second)
    assert open_messages.busy("conv_1") == "msg_b"


# -- whole turns through the engine and the scripted model ------------------------------------------
@pytest.mark.asyncio
async def test_a_turn_streams_deltas_and_completes(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(Response(tokens=WORDS, tokens_per_s=2000))
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "Say forty words", {"currentFile": "app.py"})
    await chat_env.settle(run_id)
    deltas = chat_env.of("message.delta", message.id)
    assert "".join(d["delta"] for d in deltas) == "".join(WORDS)
    assert chat_env.final_statuses(message.id) == ["completed"]
    assert all(
        d["final"] is (d["status"] in ("completed", "failed", "cancelled"))
        for d in chat_env.of("message.status", message.id)
    )
    [stored] = [m for m in await chat_env.chat.messages_json(conv.id) if m["id"] == message.id]
    assert (
        stored["content"] == "".join(WORDS) and stored["status"] == "completed" and stored["runId"] == run_id
    )
    run = await chat_env.runtime.engine.get_run(run_id)
    assert run.status is RunStatus.COMPLETED and run.output["messageId"] == message.id
    request = chat_env.model.requests[-1].body["messages"]
    assert request[0]["role"] == "system" and "'app.py' open" in request[0]["content"]
    assert request[1:] == [{"role": "user", "content": "Say forty words"}]
    assert chat_env.chat.open_messages.busy(conv.id) is None


@pytest.mark.asyncio
async def test_cancel_is_a_call_on_the_running_turn(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(Response(tokens=WORDS * 20, tokens_per_s=40))
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "long answer")
    await until(lambda: bool(chat_env.of("message.delta", message.id)))
    turn = chat_env.chat.open_messages.turn(message.id)
    assert turn is not None and turn.status is MessageStatus.PROCESSING
    listed = next(m for m in await chat_env.chat.messages_json(conv.id) if m["id"] == message.id)
    assert listed["content"], "a listing shows the text streamed so far"
    with pytest.raises(Conflict, match="still being answered"):
        await chat_env.chat.post_message(conv.id, "again")
    cancelled = await chat_env.chat.cancel_message(message.id)
    assert cancelled.status is MessageStatus.CANCELLED and turn.status is MessageStatus.CANCELLED
    run = await chat_env.runtime.engine.get_run(run_id)
    assert run.status is RunStatus.CANCELED
    assert chat_env.final_statuses(message.id) == ["cancelled"]
    assert (
        chat_env.chat.open_messages.turn(message.id) is None
        and chat_env.chat.open_messages.busy(conv.id) is None
    )
    frozen = await chat_env.chat.store.get_message(message.id)
    assert (
        frozen is not None
        and frozen.status is MessageStatus.CANCELLED
        and frozen.content == cancelled.content
    )
    # The conversation is free at once.
    chat_env.model.enqueue(Response(text="next answer"))
    second, second_run = await chat_env.chat.post_message(conv.id, "short one")
    await chat_env.settle(second_run)
    assert chat_env.final_statuses(second.id) == ["completed"]


@pytest.mark.asyncio
async def test_a_retried_attempt_replaces_the_text(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(Response(tokens=WORDS, disconnect_after_tokens=10), Response(tokens=WORDS))
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "go")
    engine = chat_env.runtime.engine
    await until(lambda: any(d.get("retrying") for d in chat_env.of("message.status", message.id)))
    assert (await engine.get_run(run_id)).status is RunStatus.REATTEMPTING
    assert chat_env.chat.open_messages.busy(conv.id) == message.id, "busy between attempts"
    chat_env.clock.advance(60)  # the retry delay passes on the fake clock
    await chat_env.settle(run_id)
    stored = await chat_env.chat.store.get_message(message.id)
    assert (
        stored is not None and stored.status is MessageStatus.COMPLETED and stored.content == "".join(WORDS)
    )
    text = ""
    for event in chat_env.events:
        data = event.data
        if event.type == "message.status" and data.get("messageId") == message.id and data.get("reset"):
            text = ""
        elif event.type == "message.delta" and data["messageId"] == message.id:
            text = text[: data["offset"]] + data["delta"]
    assert text == "".join(WORDS)
    assert chat_env.final_statuses(message.id) == ["completed"]


@pytest.mark.asyncio
async def test_a_run_cancelled_from_the_dashboard_cancels_its_message(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(Response(tokens=WORDS * 20, tokens_per_s=40))
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "long answer")
    await until(lambda: bool(chat_env.of("message.delta", message.id)))
    await chat_env.runtime.engine.cancel(run_id)
    stored = await chat_env.chat.store.get_message(message.id)
    assert stored is not None and stored.status is MessageStatus.CANCELLED
    assert stored.error == {"message": "the run was cancelled"}
    assert chat_env.chat.open_messages.busy(conv.id) is None


@pytest.mark.asyncio
async def test_engine_emit_uses_the_run_stream_only_while_the_run_is_unfinished(chat_env: ChatEnv) -> None:
    engine = chat_env.runtime.engine
    chat_env.model.enqueue(Response(tokens=WORDS * 20, tokens_per_s=40))
    conv = await chat_env.chat.create_conversation()
    _, run_id = await chat_env.chat.post_message(conv.id, "long")
    engine.emit("test.note", {"n": 1}, run_id=run_id, conversation_id=conv.id)
    await engine.cancel(run_id)
    engine.emit("test.note", {"n": 2}, run_id=run_id, conversation_id=conv.id)
    await engine.store.flush()
    await until(lambda: len([e for e in chat_env.events if e.type == "test.note"]) == 2)
    first, second = [e for e in chat_env.events if e.type == "test.note"]
    assert (first.run_id, first.conversation_id) == (run_id, conv.id) and first.run_seq is not None
    assert (second.run_id, second.conversation_id) == (None, conv.id)


def test_the_bubble_shows_a_model_errors_own_words_and_hides_other_internals() -> None:
    from polaris_jupyter.agent import ModelError

    turn, ctx, _, _ = make_turn()
    turn.start()
    turn.fail(ModelError("OPENAI_API_KEY was rejected by api.example/v1 (401): set a valid key"), final=True)
    error = turn.snapshot().error
    assert (
        error is not None
        and error["message"] == "OPENAI_API_KEY was rejected by api.example/v1 (401): set a valid key"
    )
    other, _, _, _ = make_turn()
    other.start()
    other.fail(KeyError("internal"), final=True)
    assert other.snapshot().error == {
        "message": "Something went wrong while answering.",
        "detail": "KeyError: 'internal'",
        "attempt": 1,
    }


@pytest.mark.asyncio
async def test_tool_cards_record_where_in_the_text_the_model_called_them(chat_env: ChatEnv) -> None:
    """Text, a tool call, more text: the card's ``offset`` is the text's length in code points when
    the call started (so the renderer puts the card between the two texts)."""
    before = "Let me look 🌍 first. "  # an astral character: offsets count code points, like deltas
    (chat_env.runtime.root_dir / "notes.txt").write_text("hello\n")
    chat_env.model.enqueue(
        Response(text=before, tool_calls=[ScriptedToolCall("readFile", {"path": "notes.txt"}, id="call_read")]),
        Response(text="It says hello."),
    )
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "What is in notes.txt?")
    await chat_env.settle(run_id)
    [stored] = [m for m in await chat_env.chat.messages_json(conv.id) if m["id"] == message.id]
    assert stored["content"].startswith(before) and stored["content"].endswith("It says hello.")
    [card] = stored["toolCalls"]
    assert card["id"] == "call_read" and card["status"] == "succeeded"
    assert card["offset"] == len(before) == 21
    [started] = chat_env.of("toolcall.started", message.id)
    assert started["toolCall"]["offset"] == len(before)
