"""Approvals as durable wait points, on the real engine and chat service against the scripted
model: a held call suspends the run in WAITING (no slot held), a decision resumes it without
asking the model again, a denial or a timeout reaches the model as "the user denied this", and
the permission modes decide what asks and what is offered."""

from __future__ import annotations

import shutil
from pathlib import Path
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


def crash_image(db: Path, copy: Path) -> None:
    """The database files as a kill -9 would leave them now (WAL included)."""
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            shutil.copy(f"{db}{suffix}", f"{copy}{suffix}")


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


async def test_a_denial_stands_when_the_mode_changes_while_waiting(chat_env: ChatEnv) -> None:
    chat_env.model.enqueue(Response.tool("writeFile", WRITE), Response(text="Fine."))
    conv, _message_id, run_id = await ask(chat_env)
    [approval] = await waiting(chat_env, run_id)
    await chat_env.chat.set_permission_mode(conv, "auto")  # nothing would ask now
    await chat_env.chat.approvals.decide(approval.id, "deny")
    await chat_env.settle(run_id)
    assert not (chat_env.runtime.root_dir / "notes").exists()
    assert "the user denied this" in tool_results(chat_env.model.chat_requests[1])[0]


async def test_an_approved_call_interrupted_by_a_crash_is_not_applied_again(chat_env: ChatEnv, tmp_path: Path) -> None:
    """Once approved calls are under way the checkpoint names them: the attempt after a crash
    tells the model they may have been applied instead of running them a second time. The crash
    is the database as a kill -9 would leave it while the call runs (a copy of its files then)."""
    import asyncio

    from polaris_jupyter.config import PolarisConfig
    from polaris_jupyter.jobs import TaskRegistry
    from polaris_jupyter.runtime import PolarisRuntime
    from polaris_jupyter.tools import Tool, default_registry, load_all

    db = Path(chat_env.runtime.config.db_path)
    crashed = tmp_path / "crashed" / "polaris.db"
    crashed.parent.mkdir()
    calls: list[dict[str, Any]] = []
    forever = asyncio.Event()

    async def slow(args: dict[str, Any], ctx: Any) -> str:
        calls.append(args)
        crash_image(db, crashed)  # what is on disk while the approved call runs (no await: nothing moves meanwhile)
        await forever.wait()
        return "deployed"

    load_all()
    default_registry.register(Tool("slowDeploy", "Deploys, slowly.", {"type": "object", "properties": {}}, slow,
                                   path_params=(), access="execute"))
    try:
        chat_env.model.enqueue(Response.tool("slowDeploy", {}))
        _conv, message_id, run_id = await ask(chat_env, "deploy")
        [approval] = await waiting(chat_env, run_id)
        await chat_env.chat.approvals.decide(approval.id, "approve")
        await until(lambda: len(calls) == 1)

        chat_env.model.enqueue(Response(text="I will check whether it deployed."))
        config = PolarisConfig(db_path=str(crashed), stream_window_ms=20, max_steps=4)
        again = PolarisRuntime(config, root_dir=chat_env.runtime.root_dir, registry=TaskRegistry(), clock=chat_env.clock)
        await again.start()
        try:
            final = await again.engine.wait_for(run_id, timeout_s=20)
            assert final.status is RunStatus.COMPLETED and final.attempt_count == 2  # the crashed attempt counts
            assert len(calls) == 1  # not run twice
            [result] = tool_results(chat_env.model.chat_requests[-1])
            assert "may or may not have been applied" in result
            message = await again.chat.store.get_message(message_id)
            assert message is not None and message.content == "I will check whether it deployed."
            assert message.tool_calls[0]["status"] == "failed"
        finally:
            await again.stop()
    finally:
        forever.set()
        default_registry._tools.pop("slowDeploy", None)


async def test_a_decision_stored_before_a_restart_resumes_the_run_at_start(chat_env: ChatEnv) -> None:
    """The row says approved but the run had not been resumed (the server died in between):
    ApprovalService.recover resumes it when the next server starts."""
    from dataclasses import replace

    from polaris_jupyter.jobs import TaskRegistry
    from polaris_jupyter.runtime import PolarisRuntime

    chat_env.model.enqueue(Response.tool("writeFile", WRITE), Response(text="Written after the restart."))
    _conv, _message_id, run_id = await ask(chat_env)
    [approval] = await waiting(chat_env, run_id)
    chat_env.chat.approvals.store.put(replace(approval, status=ApprovalStatus.APPROVED))  # decided, not resumed
    await chat_env.runtime.engine.store.commit()
    await chat_env.runtime.stop()
    again = PolarisRuntime(chat_env.runtime.config, root_dir=chat_env.runtime.root_dir, registry=TaskRegistry(),
                           clock=chat_env.clock)
    await again.start()
    try:
        final = await again.engine.wait_for(run_id, timeout_s=20)
        assert final.status is RunStatus.COMPLETED
        assert (chat_env.runtime.root_dir / "notes" / "hello.txt").read_text() == "hello\n"
    finally:
        await again.stop()
