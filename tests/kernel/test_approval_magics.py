"""``%polaris mode`` / ``approvals`` / ``approve`` / ``deny`` through IPython's test shell, on the
engine hosted in the test process and the scripted model: an answer that needs approval stops
in its cell (the kernel stays free) with the command to approve it; the approve cell streams the
rest of the answer; bad input is one UsageError line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import capture_output

from polaris_jupyter.kernel import Polaris
from polaris_jupyter.kernel.approval_magics import ApprovalsTable
from polaris_jupyter.kernel.widgets import ChatPanel
from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.kernel.test_magics import answer_outputs, ip, run, usage_error
from tests.kernel.test_widgets import Browser, browser, final_status

__all__ = ["browser", "ip"]

NOTES = {"path": "notes.txt", "content": "remember the milk\n"}


@pytest.fixture(autouse=True)
def ask_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLARIS_PERMISSION_MODE", "ask")  # tests/conftest.py pins auto


def pending_id(ip: Any) -> str:
    table = ip.run_line_magic("polaris", "approvals")
    assert isinstance(table, ApprovalsTable) and len(table.approvals) == 1, table
    return str(table.approvals[0]["id"])


def test_an_answer_waits_in_its_cell_and_approve_streams_the_rest(
    ip: Any, model: ScriptedModelServer, workspace: Path, local_client: Polaris
) -> None:
    model.enqueue(Response.tool("writeFile", NOTES, text="Noting it."), Response(text="Saved your note."))
    result, io = run(ip, "%polaris ask --new note that I need milk")
    assert result.error_in_exec is None, io.stderr
    held = answer_outputs(io)[1][-1].data["text/plain"]
    approval_id = pending_id(ip)
    assert f"%polaris approve {approval_id}" in held and not (workspace / "notes.txt").exists()
    assert "notes.txt" in repr(ip.run_line_magic("polaris", "approvals"))

    result, io = run(ip, f"%polaris approve {approval_id}")
    assert result.error_in_exec is None, io.stderr
    assert f"Approved {approval_id}" in io.stdout
    final = answer_outputs(io)[1][-1].data
    assert "Saved your note." in final["text/plain"] and "pj-cell-answer-completed" in final["text/html"]
    assert (workspace / "notes.txt").read_text() == "remember the milk\n"
    assert ip.run_line_magic("polaris", "approvals").approvals == []
    assert "already approved" in usage_error(ip, f"%polaris deny {approval_id}")


def test_deny_leaves_the_file_and_the_model_hears_it(
    ip: Any, model: ScriptedModelServer, workspace: Path, local_client: Polaris
) -> None:
    model.enqueue(Response.tool("deleteFile", {"path": "app.py"}), Response(text="Kept app.py."))
    run(ip, "%polaris ask --new delete app.py")
    approval_id = pending_id(ip)
    result, io = run(ip, f"%polaris deny {approval_id}")
    assert result.error_in_exec is None, io.stderr
    assert "Kept app.py." in answer_outputs(io)[1][-1].data["text/plain"]
    assert (workspace / "app.py").exists()
    told = [m["content"] for m in model.chat_requests[-1].messages if m.get("role") == "tool"]
    assert told and "the user denied this" in told[-1]


def test_mode_shows_and_sets_the_conversation_mode(
    ip: Any, model: ScriptedModelServer, workspace: Path, local_client: Polaris
) -> None:
    with capture_output() as io:
        ip.run_line_magic("polaris", "mode")
    assert "the server's default" in io.stdout
    with capture_output() as io:
        ip.run_line_magic("polaris", "mode auto-edit")
    assert "auto-edit" in io.stdout
    conversation = local_client.call(local_client.backend.conversation(local_client.current_conversation()))
    assert conversation["permissionMode"] == "auto-edit"
    model.enqueue(Response.tool("writeFile", NOTES), Response(text="Done."))
    result, io = run(ip, "%polaris ask write the note")
    assert result.error_in_exec is None and (workspace / "notes.txt").exists()  # edits apply in auto-edit
    assert 'must be one of ask, auto-edit, auto, plan, got "yolo"' in usage_error(ip, "%polaris mode yolo")
    assert "no approval with id" in usage_error(ip, "%polaris approve appr_missing")
    assert "the following arguments are required" in usage_error(ip, "%polaris deny")


def test_the_chat_panel_decides_and_sets_the_mode_over_its_comm(
    local_client: Polaris, model: ScriptedModelServer, workspace: Path, browser: Browser
) -> None:
    """The anywidget panel's comm actions behind the card's buttons and the header's mode."""
    panel = ChatPanel(local_client)
    try:
        model.enqueue(Response.tool("writeFile", NOTES), Response(text="Noted."))
        sent = browser.request(panel, "send", text="note it")["data"]
        browser.wait_for(lambda: any(e["type"] == "toolcall.started" and e["data"]["toolCall"].get("approval")
                                     for e in browser.events()))
        card = next(e["data"]["toolCall"] for e in browser.events() if e["type"] == "toolcall.started")
        assert card["status"] == "waiting" and "+remember the milk" in card["diff"]
        decided = browser.request(panel, "decide", approvalId=card["approval"]["id"], decision="approve", scope="run")
        assert decided["ok"] is True and decided["data"]["status"] == "approved" and decided["data"]["scope"] == "run"
        browser.wait_for(lambda: final_status(browser, sent["messageId"]) == "completed")
        assert (workspace / "notes.txt").exists()
        assert any(e["type"] == "approval.decided" for e in browser.events())  # the card's buttons go away
        again = browser.request(panel, "decide", approvalId=card["approval"]["id"], decision="deny")
        assert again["ok"] is False and again["status"] == 409

        mode = browser.request(panel, "set_mode", mode="plan")
        assert mode["ok"] is True and mode["data"]["permissionMode"] == "plan"
        assert "must be one of" in browser.request(panel, "set_mode", mode="nope")["error"]
    finally:
        panel.close()
