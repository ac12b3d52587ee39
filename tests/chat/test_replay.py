"""Replaying a ``process-message`` run (engine replay, ``POST /runs/{id}/replay``) answers its
message again in place, as Retry does, or is refused with a Conflict (409) saying why. It used
to be a green no-op: a new run that completed at once with ``{"skipped": ...}``."""

from __future__ import annotations

import pytest

from polaris_jupyter.chat.store import MessageStatus
from polaris_jupyter.errors import Conflict
from polaris_jupyter.jobs import RunStatus
from polaris_jupyter.testing import Response
from tests.chat.conftest import ChatEnv, until

WORDS = [f"word{i} " for i in range(40)]


async def run_count(env: ChatEnv) -> int:
    rows = await env.runtime.engine.store.query(
        "SELECT COUNT(*) AS n FROM runs WHERE task_id = 'process-message'"
    )
    return int(rows[0]["n"])


@pytest.mark.asyncio
async def test_replaying_a_cancelled_chat_run_answers_its_message_again(chat_env: ChatEnv) -> None:
    engine = chat_env.runtime.engine
    chat_env.model.enqueue(Response(tokens=WORDS * 20, tokens_per_s=40))
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "long answer")
    await until(lambda: bool(chat_env.of("message.delta", message.id)))
    cancelled = await chat_env.chat.cancel_message(message.id)
    assert cancelled.status is MessageStatus.CANCELLED and cancelled.content
    chat_env.model.enqueue(Response(text="the second answer"))
    handle = await engine.replay(run_id)
    assert handle.id != run_id
    await chat_env.settle(handle.id)
    replayed = await engine.get_run(handle.id)
    assert replayed.status is RunStatus.COMPLETED and replayed.replayed_from == run_id
    assert "skipped" not in replayed.output and replayed.output["chars"] == len("the second answer")
    stored = await chat_env.chat.store.get_message(message.id)
    assert stored is not None and stored.status is MessageStatus.COMPLETED
    assert stored.content == "the second answer", "the answer is replaced, never appended to"
    assert stored.run_id == handle.id and stored.error is None
    assert chat_env.final_statuses(message.id) == ["cancelled", "completed"]
    reset = [
        d for d in chat_env.of("message.status", message.id) if d.get("reset") and d["status"] == "pending"
    ]
    assert len(reset) == 1 and reset[0]["final"] is False


@pytest.mark.asyncio
async def test_replaying_a_completed_chat_run_replaces_the_answer(chat_env: ChatEnv) -> None:
    engine = chat_env.runtime.engine
    chat_env.model.enqueue(Response(text="first answer"), Response(text="better answer"))
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "question")
    await chat_env.settle(run_id)
    handle = await engine.replay(run_id, resume=True)  # resume changes nothing for a chat turn
    await chat_env.settle(handle.id)
    listed = await chat_env.chat.messages_json(conv.id)
    assert [(m["role"], m["content"]) for m in listed] == [
        ("user", "question"),
        ("assistant", "better answer"),
    ]
    assert listed[1]["id"] == message.id and listed[1]["runId"] == handle.id
    # The replayed turn was asked the same question, not shown its own earlier answer.
    assert chat_env.model.requests[-1].body["messages"][1:] == [{"role": "user", "content": "question"}]


@pytest.mark.asyncio
async def test_replay_is_refused_while_the_conversation_is_busy(chat_env: ChatEnv) -> None:
    engine = chat_env.runtime.engine
    chat_env.model.enqueue(Response(text="first answer"), Response(tokens=WORDS * 20, tokens_per_s=40))
    conv = await chat_env.chat.create_conversation()
    first, first_run = await chat_env.chat.post_message(conv.id, "one")
    await chat_env.settle(first_run)
    second, second_run = await chat_env.chat.post_message(conv.id, "two")
    await until(lambda: bool(chat_env.of("message.delta", second.id)))
    runs_before = await run_count(chat_env)
    with pytest.raises(
        Conflict, match=f"message {second.id} of this conversation is still being answered"
    ) as busy:
        await engine.replay(first_run)
    assert busy.value.http_status == 409
    with pytest.raises(Conflict, match=rf"message {second.id} is still being answered \(run {second_run}\)"):
        await engine.replay(second_run)
    assert await run_count(chat_env) == runs_before, "a refused replay triggers nothing"
    stored = await chat_env.chat.store.get_message(first.id)
    assert (
        stored is not None and stored.content == "first answer" and stored.status is MessageStatus.COMPLETED
    )
    await chat_env.chat.cancel_message(second.id)


@pytest.mark.asyncio
async def test_replay_of_a_run_whose_conversation_was_deleted_is_refused(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(Response(text="answer"))
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "question")
    await chat_env.settle(run_id)
    await chat_env.chat.delete(conv.id)
    with pytest.raises(Conflict, match=f"answered message {message.id}, which no longer exists"):
        await chat_env.runtime.engine.replay(run_id)


@pytest.mark.asyncio
async def test_other_tasks_replay_as_before(chat_env: ChatEnv) -> None:
    """The handler is per task: a run of any other task is replayed as a new run, same payload."""
    from polaris_jupyter.jobs import TaskDef

    async def echo(payload: object, ctx: object) -> object:
        return payload

    engine = chat_env.runtime.engine
    engine.register(TaskDef(id="echo", fn=echo))
    handle = await engine.trigger("echo", {"x": 1})
    await engine.wait_for(handle.id, timeout_s=10)
    again = await engine.replay(handle.id)
    run = await engine.wait_for(again.id, timeout_s=10)
    assert run.output == {"x": 1} and run.replayed_from == handle.id


@pytest.mark.asyncio
async def test_the_api_answers_a_replay_with_the_retried_message_or_409(chat_env: ChatEnv) -> None:
    """Through ``PolarisAPI.dispatch``, the one service layer the REST route and the kernel call."""
    api = chat_env.runtime.api
    chat_env.model.enqueue(Response(text="first"), Response(tokens=WORDS * 20, tokens_per_s=40))
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "question")
    await chat_env.settle(run_id)
    answer = await api.dispatch("replay_run", path={"runId": run_id}, body={})
    assert answer.status == 200 and answer.body["id"] != run_id
    await until(lambda: chat_env.chat.open_messages.turn(message.id) is not None)  # the replay is answering
    with pytest.raises(Conflict, match="is still being answered") as refused:
        await api.dispatch("replay_run", path={"runId": answer.body["id"]}, body={"resume": False})
    assert refused.value.http_status == 409
    await chat_env.chat.cancel_message(message.id)
