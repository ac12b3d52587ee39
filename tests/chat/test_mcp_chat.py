"""MCP tools in a whole chat turn: the runtime connects the demo MCP server (a real process)
from <jupyter config dir>/polaris/mcp.json, the scripted model calls its tools, and what the
tools answered reaches the model (read back from the recorded requests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.testing import Response, ScriptedToolCall
from polaris_jupyter.tools.mcp import McpStatus
from tests.chat.conftest import ChatEnv, until
from tests.tools.mcp_servers import stdio_entry

pytestmark = pytest.mark.asyncio


@pytest.fixture
def mcp_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's mcp.json with the demo server (requested before chat_env builds the runtime)."""
    config_dir = tmp_path / "jupyter-config"
    path = config_dir / "polaris" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"mcpServers": {"demo": stdio_entry()}}))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(config_dir))
    return path


async def demo_ready(env: ChatEnv) -> None:
    connection = env.runtime.mcp.connections["demo"]
    await until(lambda: connection.status is McpStatus.READY, timeout_s=60)


def tool_messages(env: ChatEnv, request: int) -> list[dict[str, Any]]:
    return [m for m in env.model.requests[request].messages if m.get("role") == "tool"]


async def test_the_model_calls_an_mcp_tool_and_reads_its_result(mcp_json: Path, chat_env: ChatEnv) -> None:
    await demo_ready(chat_env)
    chat_env.model.enqueue(
        Response(tool_calls=[ScriptedToolCall("demo__add", {"a": 2, "b": 40}, id="call_add")]),
        Response(text="2 + 40 is 42."),
    )
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "What is 2 + 40? Use the demo server.")
    await chat_env.settle(run_id)
    assert chat_env.final_statuses(message.id) == ["completed"]
    first = chat_env.model.requests[0]
    offered = {t["function"]["name"]: t["function"] for t in first.tools or []}
    assert "readFile" in offered and offered["demo__add"]["parameters"]["required"] == ["a", "b"]
    assert "demo__add" in first.messages[0]["content"], "the system prompt names the tools it carries"
    [result] = tool_messages(chat_env, 1)
    assert result == {"role": "tool", "tool_call_id": "call_add", "content": "42"}
    stored = await chat_env.chat.store.get_message(message.id)
    assert stored is not None and stored.content == "2 + 40 is 42."
    [card] = stored.tool_calls
    assert card["name"] == "demo__add" and card["status"] == "succeeded"


async def test_a_failing_mcp_tool_and_bad_arguments_return_their_error_to_the_model(mcp_json: Path, chat_env: ChatEnv) -> None:
    await demo_ready(chat_env)
    chat_env.model.enqueue(
        Response(tool_calls=[ScriptedToolCall("demo__fail", {"reason": "quota exceeded"}, id="call_fail"),
                             ScriptedToolCall("demo__add", {"a": "two"}, id="call_bad")]),
        Response(text="The demo server failed."),
    )
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "try it")
    await chat_env.settle(run_id)
    assert chat_env.final_statuses(message.id) == ["completed"], "a tool error is text for the model, not a failed run"
    fail, bad = tool_messages(chat_env, 1)
    assert fail["tool_call_id"] == "call_fail"
    assert fail["content"] == "Error: demo__fail failed: Error executing tool fail: demo failure: quota exceeded"
    assert bad["content"] == ("Error: demo__add: 'b' is a required property; argument 'a': 'two' is not of type "
                              "'integer' (parameters: a, b)")
    stored = await chat_env.chat.store.get_message(message.id)
    assert stored is not None and [c["status"] for c in stored.tool_calls] == ["failed", "failed"]


async def test_cancelling_the_message_cancels_the_mcp_call(mcp_json: Path, chat_env: ChatEnv, tmp_path: Path) -> None:
    await demo_ready(chat_env)
    marker = tmp_path / "slow-call"
    chat_env.model.enqueue(Response(tool_calls=[ScriptedToolCall("demo__slow", {"seconds": 120, "marker": str(marker)})]))
    conv = await chat_env.chat.create_conversation()
    message, run_id = await chat_env.chat.post_message(conv.id, "wait a long time")
    await until(Path(f"{marker}.started").exists, timeout_s=60)
    cancelled = await chat_env.chat.cancel_message(message.id)
    assert cancelled.status.value == "cancelled"
    await until(marker.exists, timeout_s=30)
    assert marker.read_text() == "cancelled", "the server's handler was cancelled, not left running"


@pytest.fixture
def broken_mcp_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config_dir = tmp_path / "jupyter-config"
    path = config_dir / "polaris" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {"demo": ')
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(config_dir))
    return path


async def test_a_bad_mcp_json_is_reported_and_chat_still_works(broken_mcp_json: Path, chat_env: ChatEnv) -> None:
    status = chat_env.runtime.mcp.to_json()
    assert status["servers"] == []
    assert status["problems"] == [{"path": str(broken_mcp_json), "server": None,
                                   "error": "not valid JSON: Expecting value at line 1, column 25"}]
    chat_env.model.enqueue(Response(text="no tools from MCP"))
    conv = await chat_env.chat.create_conversation()
    _, run_id = await chat_env.chat.post_message(conv.id, "hello")
    await chat_env.settle(run_id)
    names = {t["function"]["name"] for t in chat_env.model.requests[0].tools or []}
    assert names and not any("__" in name for name in names)


async def test_an_mcp_tool_that_acts_waits_for_approval_and_read_only_ones_never_ask(
    mcp_json: Path, chat_env: ChatEnv
) -> None:
    from polaris_jupyter.jobs import RunStatus

    await demo_ready(chat_env)
    chat_env.model.enqueue(
        Response(tool_calls=[ScriptedToolCall("demo__add", {"a": 1, "b": 2}, id="call_add"),
                             ScriptedToolCall("demo__remember", {"text": "the meeting is at 3"}, id="call_rem")]),
        Response(text="Noted."),
    )
    conv = await chat_env.chat.create_conversation()
    await chat_env.chat.set_permission_mode(conv.id, "ask")
    message, run_id = await chat_env.chat.post_message(conv.id, "remember the meeting")
    engine = chat_env.runtime.engine
    await until(lambda: (run := engine._active.get(run_id)) is not None and run.status is RunStatus.WAITING)
    [approval] = await chat_env.chat.approvals.list("pending")  # the read-only demo__add does not ask
    assert (approval.tool_name, approval.arguments, approval.access) == (
        "demo__remember", {"text": "the meeting is at 3"}, "execute")
    await chat_env.chat.approvals.decide(approval.id, "approve", "once")
    await chat_env.settle(run_id)
    assert chat_env.final_statuses(message.id) == ["completed"]
    added, remembered = tool_messages(chat_env, -1)
    assert (added["content"], remembered["content"]) == ("3", "remembered: the meeting is at 3")

    await chat_env.chat.set_permission_mode(conv.id, "plan")
    chat_env.model.enqueue(Response(text="Only reading."))
    _, plan_run = await chat_env.chat.post_message(conv.id, "plan something")
    await chat_env.settle(plan_run)
    offered = {t["function"]["name"] for t in chat_env.model.requests[-1].tools or []}
    assert "demo__add" in offered and "demo__remember" not in offered and "demo__crash" not in offered
