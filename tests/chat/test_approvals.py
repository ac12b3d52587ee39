"""Approvals as durable wait points, on the real engine and chat service against the scripted
model: a held call suspends the run in WAITING (no slot held), a decision resumes it without
asking the model again, a denial or a timeout reaches the model as "the user denied this", and
the permission modes decide what asks and what is offered."""

from __future__ import annotations

from typing import Any

import pytest

from polaris_jupyter.chat.approvals import ApprovalStatus
from polaris_jupyter.errors import Conflict, InvalidInput, NotFound
from polaris_jupyter.jobs import RunStatus
from polaris_jupyter.testing import Response, ScriptedToolCall
from tests.chat.conftest import ChatEnv, until

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def ask_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default permission mode: edits and commands wait for approval (tests/conftest.py pins auto)."""
    monkeypatch.setenv("POLARIS_PERMISSION_MODE", "ask")


WRITE = {"path": "notes/hello.txt", "content": "hello\n"}


async def ask(env: ChatEnv, text: str = "write the file", mode: str | None = None) -> tuple[str, str, str]:
    conv = await env.chat.create_conversation()
    if mode is not None:
        await env.chat.set_permission_mode(conv.id, mode)
    message, run_id = await env.chat.post_message(conv.id, text)
    return conv.id, message.id, run_id


async def waiting(env: ChatEnv, run_id: str) -> list[Any]:
    engine = env.runtime.engine
    await until(lambda: engine._active.get(run_id) is not None and engine._active[run_id].status is RunStatus.WAITING)
    return await env.chat.approvals.list("pending")


def tool_results(request: Any) -> list[str]:
    return [m["content"] for m in request.messages if m.get("role") == "tool"]


async def test_a_held_write_waits_without_a_slot_and_applies_once_approved(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(Response.tool("writeFile", WRITE, text="Writing it."), Response(text="Done."))
    _conv, message_id, run_id = await ask(chat_env)
    pending = await waiting(chat_env, run_id)
    target = chat_env.runtime.root_dir / "notes" / "hello.txt"
    assert not target.exists()
    assert chat_env.runtime.engine._executing == 0  # the waiting run holds no worker slot
    [approval] = pending
    assert (approval.tool_name, approval.arguments, approval.message_id) == ("writeFile", WRITE, message_id)
    assert "+hello" in (approval.diff or "") and "b/notes/hello.txt" in (approval.diff or "")
    requested = chat_env.of("approval.requested", message_id)
    assert requested and requested[0]["approval"]["id"] == approval.id and requested[0]["toolCall"]["status"] == "waiting"
    message = await chat_env.chat.store.get_message(message_id)
    assert message is not None and message.tool_calls[0]["approval"]["status"] == "pending"

    decided = await chat_env.chat.approvals.decide(approval.id, "approve", "once")
    assert decided.status is ApprovalStatus.APPROVED
    await chat_env.settle(run_id)
    assert target.read_text() == "hello\n"
    run = await chat_env.runtime.engine.get_run(run_id)
    assert run.status is RunStatus.COMPLETED and run.attempt_count == 1
    requests = chat_env.model.chat_requests
    assert len(requests) == 2  # the held step's model call was not made again
    assert tool_results(requests[1]) and tool_results(requests[1])[0].startswith("Created notes/hello.txt")
    final = await chat_env.chat.store.get_message(message_id)
    assert final is not None and final.content == "Writing it.\n\nDone."
    assert [c["status"] for c in final.tool_calls] == ["succeeded"]
    assert final.tool_calls[0]["approval"]["status"] == "approved"
    with pytest.raises(Conflict, match="already approved"):
        await chat_env.chat.approvals.decide(approval.id, "deny")


async def test_a_denied_write_leaves_the_file_and_tells_the_model(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(Response.tool("writeFile", WRITE), Response(text="Understood."))
    _conv, message_id, run_id = await ask(chat_env)
    [approval] = await waiting(chat_env, run_id)
    await chat_env.chat.approvals.decide(approval.id, "deny")
    await chat_env.settle(run_id)
    assert not (chat_env.runtime.root_dir / "notes").exists()
    [result] = tool_results(chat_env.model.chat_requests[1])
    assert "the user denied this" in result
    final = await chat_env.chat.store.get_message(message_id)
    assert final is not None and final.tool_calls[0]["status"] == "failed"
    assert "the user denied this" in final.tool_calls[0]["error"]


async def test_no_answer_within_the_timeout_denies(chat_env: ChatEnv) -> None:
    chat_env.runtime.config.approval_timeout_s = 120
    chat_env.model.enqueue(Response.tool("deleteFile", {"path": "keep.txt"}), Response(text="Left it."))
    (chat_env.runtime.root_dir / "keep.txt").write_text("precious\n")
    _conv, _message_id, run_id = await ask(chat_env, "delete keep.txt")
    [approval] = await waiting(chat_env, run_id)
    assert "-precious" in (approval.diff or "")
    chat_env.clock.advance(119)
    await until(lambda: True)
    assert chat_env.runtime.engine._active[run_id].status is RunStatus.WAITING
    chat_env.clock.advance(1)
    await chat_env.settle(run_id)
    assert (chat_env.runtime.root_dir / "keep.txt").read_text() == "precious\n"
    [result] = tool_results(chat_env.model.chat_requests[1])
    assert "the user denied this" in result and "2 minutes" in result
    [row] = await chat_env.chat.approvals.list()
    assert row.status is ApprovalStatus.EXPIRED and row.reason == "no answer within 2 minutes"


async def test_approve_for_the_run_lets_its_later_calls_through(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(
        Response(tool_calls=[ScriptedToolCall("writeFile", {"path": "a.txt", "content": "a\n"}),
                             ScriptedToolCall("writeFile", {"path": "b.txt", "content": "b\n"})]),
        Response.tool("writeFile", {"path": "c.txt", "content": "c\n"}),
        Response(text="All three."),
    )
    _conv, _message_id, run_id = await ask(chat_env)
    first, second = await waiting(chat_env, run_id)
    await chat_env.chat.approvals.decide(second.id, "approve", "run")  # both of this step, and what follows
    await chat_env.settle(run_id)
    root = chat_env.runtime.root_dir
    assert [(root / n).read_text() for n in ("a.txt", "b.txt", "c.txt")] == ["a\n", "b\n", "c\n"]
    statuses = {a.id: (a.status, a.scope) for a in await chat_env.chat.approvals.list()}
    assert len(statuses) == 2 and all(s == (ApprovalStatus.APPROVED, s[1]) and s[1] is not None for s in statuses.values())


async def test_auto_edit_applies_edits_but_asks_before_commands(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(
        Response.tool("writeFile", WRITE),
        Response.tool("executeCommand", {"command": "ls"}),
        Response(text="ok"),
    )
    conv, message_id, run_id = await ask(chat_env, mode="auto-edit")
    [approval] = await waiting(chat_env, run_id)
    assert approval.tool_name == "executeCommand" and approval.access == "execute"
    assert (chat_env.runtime.root_dir / "notes" / "hello.txt").read_text() == "hello\n"
    await chat_env.runtime.engine.cancel(run_id)  # a WAITING run can be cancelled (the runs dashboard)
    assert (await chat_env.runtime.engine.get_run(run_id)).status is RunStatus.CANCELED
    message = await chat_env.chat.store.get_message(message_id)
    assert message is not None and message.status.value == "cancelled"  # the conversation is free again
    [expired] = await chat_env.chat.approvals.list()
    assert expired.status is ApprovalStatus.EXPIRED and expired.reason == "the run was cancelled"
    with pytest.raises(Conflict, match="already expired"):
        await chat_env.chat.approvals.decide(approval.id, "approve")
    chat_env.model.enqueue(Response(text="Next question answered."))
    _next, run_id = await chat_env.chat.post_message(conv, "and now?")
    await chat_env.settle(run_id)


async def test_cancelling_a_waiting_message_expires_its_approval(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(Response.tool("writeFile", WRITE))
    _conv, message_id, run_id = await ask(chat_env)
    [approval] = await waiting(chat_env, run_id)
    cancelled = await chat_env.chat.cancel_message(message_id)
    assert cancelled.status.value == "cancelled"
    assert (await chat_env.runtime.engine.get_run(run_id)).status is RunStatus.CANCELED
    assert [a.status for a in await chat_env.chat.approvals.list()] == [ApprovalStatus.EXPIRED]
    with pytest.raises(Conflict):
        await chat_env.chat.approvals.decide(approval.id, "approve")
    assert not (chat_env.runtime.root_dir / "notes").exists()


async def test_plan_mode_offers_no_write_tools_and_auto_asks_nothing(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(Response(text="Here is the plan."))
    _conv, _message_id, run_id = await ask(chat_env, "plan it", mode="plan")
    await chat_env.settle(run_id)
    offered = {t["function"]["name"] for t in chat_env.model.chat_requests[0].tools or []}
    assert "readFile" in offered and "searchFiles" in offered
    assert not offered & {"writeFile", "deleteFile", "editNotebookCell", "insertNotebookCell", "executeCommand",
                          "runNotebookCell"}

    chat_env.model.enqueue(Response.tool("writeFile", WRITE), Response(text="Written."))
    _conv, _message_id, run_id = await ask(chat_env, mode="auto")
    await chat_env.settle(run_id)
    assert (chat_env.runtime.root_dir / "notes" / "hello.txt").exists()
    assert await chat_env.chat.approvals.list() == []


async def test_bad_decisions_and_modes_are_refused_with_the_reason(chat_env: ChatEnv) -> None:
    with pytest.raises(NotFound):
        await chat_env.chat.approvals.decide("appr_nope", "approve")
    with pytest.raises(InvalidInput, match="decision must be"):
        await chat_env.chat.approvals.decide("appr_nope", "maybe")
    with pytest.raises(InvalidInput, match="scope must be"):
        await chat_env.chat.approvals.decide("appr_nope", "approve", "forever")
    conv = await chat_env.chat.create_conversation()
    with pytest.raises(InvalidInput, match="use one of ask, auto-edit, auto, plan"):
        await chat_env.chat.set_permission_mode(conv.id, "yolo")
    assert (await chat_env.chat.conversation(conv.id)).permission_mode is None
    assert chat_env.chat.permission_mode(conv).value == "ask"


async def test_the_default_mode_is_ask_and_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    from polaris_jupyter.config import PolarisConfig

    monkeypatch.delenv("POLARIS_PERMISSION_MODE")
    assert PolarisConfig().permission_mode == "ask"
    assert PolarisConfig(permission_mode="auto-edit").permission_mode == "auto-edit"
    monkeypatch.setenv("POLARIS_PERMISSION_MODE", "plan")
    assert PolarisConfig().permission_mode == "plan"
    with pytest.raises(Exception, match="permission_mode must be one of ask, auto-edit, auto, plan"):
        PolarisConfig(permission_mode="yolo")
