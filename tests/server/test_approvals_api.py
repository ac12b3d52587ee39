"""Approvals end to end through REST on a real Jupyter server, the real openai client over HTTP
to the scripted model: request → WAITING → approve → file written; deny → untouched and the
model is told; a real ``jupyter server`` killed with SIGKILL while waiting, restarted, approved:
applied exactly once. Permission modes through PATCH."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.helpers import async_wait_until, clean_env, wait_until
from tests.helpers import rest as call
from tests.live_server import LiveServer
from tests.server.test_chat_api import model, new_conversation, post, wait_message

__all__ = ["model"]


@pytest.fixture(autouse=True)
def ask_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default permission mode: edits and commands wait for approval (tests/conftest.py pins auto)."""
    monkeypatch.setenv("POLARIS_PERMISSION_MODE", "ask")


WRITE = {"path": "out/result.txt", "content": "forty-two\n"}


async def pending_approval(jp_fetch: Any, run_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        _, page = await call(jp_fetch, "approvals", params={"status": "pending"})
        return next((a for a in page["data"] if a["runId"] == run_id), None)

    return await async_wait_until(found, 20, f"a pending approval of run {run_id}")


async def decide(jp_fetch: Any, approval_id: str, body: Any) -> tuple[int, Any]:
    return await call(jp_fetch, "approvals", approval_id, method="POST", body=body)


async def test_approve_writes_the_file_and_deny_leaves_it(
    jp_fetch: Any, polaris: Any, model: ScriptedModelServer, jp_root_dir: Path
) -> None:
    model.enqueue(Response.tool("writeFile", WRITE, text="I will write it."), Response(text="Written."))
    conv = await new_conversation(jp_fetch)
    accepted = await post(jp_fetch, conv, "write the answer")
    approval = await pending_approval(jp_fetch, accepted["runId"])
    _, run = await call(jp_fetch, "runs", accepted["runId"])
    assert run["status"] == "WAITING" and "writeFile" in run["waitingReason"]
    assert (approval["toolName"], approval["arguments"], approval["access"]) == ("writeFile", WRITE, "edit")
    assert "+forty-two" in approval["diff"] and not (jp_root_dir / "out").exists()
    _, events = await call(jp_fetch, "runs", accepted["runId"], "events")
    [requested] = [e["data"] for e in events["events"] if e["type"] == "approval.requested"]
    assert requested["approval"]["diff"] == approval["diff"] and requested["toolCall"]["name"] == "writeFile"

    status, body = await decide(jp_fetch, approval["id"], {"decision": "approve", "scope": "once"})
    assert status == 200 and body["status"] == "approved"
    message = await wait_message(jp_fetch, conv, accepted["messageId"], {"completed", "failed"})
    assert message["status"] == "completed" and message["toolCalls"][0]["approval"]["status"] == "approved"
    assert (jp_root_dir / "out" / "result.txt").read_text() == "forty-two\n"
    assert (await decide(jp_fetch, approval["id"], {"decision": "deny"}))[0] == 409

    model.enqueue(Response.tool("writeFile", {"path": "out/result.txt", "content": "wrong\n"}), Response(text="OK."))
    second = await post(jp_fetch, conv, "overwrite it")
    approval = await pending_approval(jp_fetch, second["runId"])
    status, body = await decide(jp_fetch, approval["id"], {"decision": "deny"})
    assert status == 200 and body["status"] == "denied"
    await wait_message(jp_fetch, conv, second["messageId"], {"completed"})
    assert (jp_root_dir / "out" / "result.txt").read_text() == "forty-two\n"
    told = [m["content"] for m in model.chat_requests[-1].messages if m.get("role") == "tool"]
    assert len(told) == 1 and "the user denied this" in told[0]


async def test_bad_requests_get_clear_errors(jp_fetch: Any, polaris: Any) -> None:
    assert (await decide(jp_fetch, "appr_unknown", {"decision": "approve"}))[0] == 404
    status, body = await decide(jp_fetch, "appr_unknown", {"decision": "perhaps"})
    assert status == 400 and "decision" in body["message"]
    assert (await decide(jp_fetch, "appr_unknown", {"decision": "approve", "scope": "always"}))[0] == 400
    status, _ = await call(jp_fetch, "approvals", params={"status": "maybe"})
    assert status == 400
    conv = await new_conversation(jp_fetch)
    status, body = await call(jp_fetch, "conversations", conv, method="PATCH",
                              body={"permissionMode": "plan"})
    assert status == 200 and body["permissionMode"] == "plan"
    status, body = await call(jp_fetch, "conversations", conv, method="PATCH",
                              body={"permissionMode": "anything-goes"})
    assert status == 400
    _, again = await call(jp_fetch, "conversations", conv)
    assert again["permissionMode"] == "plan"


@pytest.mark.slow
def test_a_pending_approval_survives_kill_9_and_applies_exactly_once(tmp_path: Path) -> None:
    root, db = tmp_path / "root", tmp_path / "polaris.db"
    root.mkdir()
    scripted = ScriptedModelServer.start_in_thread()
    env = clean_env({}, OPENAI_BASE_URL=scripted.base_url, OPENAI_API_KEY="sk-test", OPENAI_MODEL="scripted-1",
                    POLARIS_PROVIDER="openai", POLARIS_LOCAL_BASE_URL="http://127.0.0.1:9/v1")
    try:
        scripted.enqueue(Response.tool("writeFile", WRITE))
        server = LiveServer(root, db, env=env).start()
        try:
            _, conv = server.request("POST", "/polaris/api/v1/conversations", {})
            status, accepted = server.request("POST", f"/polaris/api/v1/conversations/{conv['id']}/messages",
                                              {"content": "write it"})
            assert status == 202
            run_id = accepted["runId"]
            server.wait_run(run_id, {"WAITING"})
            server.kill()
        finally:
            server.stop()

        scripted.enqueue(Response(text="Done after the restart."))
        restarted = LiveServer(root, db, env=env).start()
        try:
            _, run = restarted.request("GET", f"/polaris/api/v1/runs/{run_id}")
            assert run["status"] == "WAITING"
            _, page = restarted.request("GET", "/polaris/api/v1/approvals?status=pending")
            [approval] = [a for a in page["data"] if a["runId"] == run_id]
            assert not (root / "out").exists()
            status, _ = restarted.request("POST", f"/polaris/api/v1/approvals/{approval['id']}", {"decision": "approve"})
            assert status == 200
            done = restarted.wait_run(run_id, {"COMPLETED", "FAILED", "CRASHED"})
            assert done["status"] == "COMPLETED" and done["attemptCount"] == 1
            assert (root / "out" / "result.txt").read_text() == "forty-two\n"
            _, edits = restarted.request("GET", f"/polaris/api/v1/runs/{run_id}/edits")
            assert [e["path"] for e in edits["edits"]] == ["out", "out/result.txt"]  # the folder, the file: once
            assert len(scripted.chat_requests) == 2  # the held step was not asked again
            _, page = restarted.request("GET", f"/polaris/api/v1/conversations/{conv['id']}/messages")
            answer = page["data"][-1]
            wait_until(lambda: answer["status"] == "completed", 1, "answer completed")
            assert answer["content"] == "Done after the restart."
            log = restarted.log_path.read_text()
            assert "Traceback" not in log, log[-3000:]
        finally:
            restarted.stop()
    finally:
        scripted.stop()
    json.dumps(approval)  # the approval row as the API listed it is plain JSON
