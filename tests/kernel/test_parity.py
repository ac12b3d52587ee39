"""Local and remote modes answer alike: the same calls, good and bad, through both backends.

Both go through ``PolarisAPI.dispatch`` (the remote one over HTTP to a real ``jupyter server``),
so a refusal has the same status and message, and an answer the same shape, in either mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.kernel import Polaris, PolarisError, connect, disconnect
from polaris_jupyter.testing import ScriptedModelServer
from tests.helpers import wait_until
from tests.kernel.conftest import FOREIGN_ENV
from tests.kernel.test_client import live, remote_model, server_env  # noqa: F401  (fixtures)
from tests.live_server import LiveServer

Call = tuple[str, dict[str, Any]]

#: (operation, keyword arguments of Backend.call); "{conv}" is replaced by a conversation id.
CALLS: list[Call] = [
    ("list_tasks", {}),
    ("trigger", {"path": {"taskId": "cleanup"}, "body": {"payload": {"retentionDays": 30}, "options": {"tags": ["parity"]}}}),
    ("trigger", {"path": {"taskId": "no-such-task"}, "body": {}}),
    ("trigger", {"path": {"taskId": "cleanup"}, "body": {"options": {"bogus": 1}}}),
    ("trigger", {"path": {"taskId": "cleanup"}, "body": {"options": {"tags": [1]}}}),
    ("trigger", {"path": {"taskId": "cleanup"}, "body": {"options": {"delay": "soon"}}}),
    ("batch_trigger", {"path": {"taskId": "cleanup"}, "body": {"items": []}}),
    ("batch_trigger", {"path": {"taskId": "cleanup"}, "body": {"items": [{}] * 1001}}),
    ("batch_trigger", {"path": {"taskId": "cleanup"}, "body": {"items": [{"options": {"ttl": 0}}]}}),
    ("list_runs", {"query": {"limit": 5, "tag": "parity"}}),
    ("list_runs", {"query": {"limit": 0}}),
    ("list_runs", {"query": {"limit": 501}}),
    ("list_runs", {"query": {"status": "SLEEPING"}}),
    ("list_runs", {"query": {"cursor": "abc"}}),
    ("get_run", {"path": {"runId": "run_missing"}}),
    ("cancel_run", {"path": {"runId": "run_missing"}}),
    ("replay_run", {"path": {"runId": "run_missing"}, "body": {"resume": "yes"}}),
    ("revert_run", {"path": {"runId": "run_missing"}, "body": {"force": "x"}}),
    ("run_events", {"path": {"runId": "run_missing"}}),
    ("metrics", {"query": {"hours": -1}}),
    ("metrics", {"query": {"hours": 24}}),
    ("list_schedules", {}),
    ("create_schedule", {"body": {"task": "cleanup", "cron": "bad"}}),
    ("create_schedule", {"body": {"task": "cleanup"}}),
    ("delete_schedule", {"path": {"scheduleId": "sched_missing"}}),
    ("create_conversation", {"body": {"title": 5}}),
    ("create_conversation", {"body": {"title": "Parity"}}),
    ("get_conversation", {"path": {"conversationId": "conv_missing"}}),
    ("post_message", {"path": {"conversationId": "conv_missing"}, "body": {"content": "hi"}}),
    ("post_message", {"path": {"conversationId": "{conv}"}, "body": {"content": ""}}),
    ("post_message", {"path": {"conversationId": "{conv}"}, "body": {"content": "x" * 100_001}}),
    ("post_message", {"path": {"conversationId": "{conv}"}, "body": {"text": "hi"}}),
    ("update_conversation", {"path": {"conversationId": "{conv}"}, "body": {}}),
    ("cancel_message", {"path": {"messageId": "msg_missing"}}),
    ("set_model", {"body": {}}),
    ("set_model", {"body": {"model": ""}}),
    ("list_project_kinds", {}),
    ("get_project_kind", {"path": {"kindId": "react-vite"}}),
    ("get_project_kind", {"path": {"kindId": "cobol"}}),
    ("generate", {"body": {"description": "x", "kind": "cobol", "path": "a"}}),
    ("generate", {"body": {"description": "x", "kind": "react-vite", "path": "../up"}}),
    ("generate", {"body": {"kind": "react-vite", "path": "a"}}),
]


def _fill(value: Any, conversation_id: str) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, conversation_id) for k, v in value.items()}
    return conversation_id if value == "{conv}" else value


def _shape(value: Any) -> Any:
    """What must agree between modes for a good answer: keys (recursively for dicts), not values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items()) if k not in ("id", "createdAt", "updatedAt")}
    if isinstance(value, list):  # items of the built-in cleanup task are in both hosts
        same = [v for v in value if isinstance(v, dict) and v.get("taskId", "cleanup") == "cleanup"]
        return [_shape(same[0])] if same else []
    return type(value).__name__


def wait_finished(client: Polaris, run_id: str) -> None:
    wait_until(lambda: client.call(client.backend.call("get_run", path={"runId": run_id}))["finishedAt"],
               30, f"run {run_id} finished")


def answers(client: Polaris) -> list[Any]:
    conversation_id = client.new_conversation("parity")["id"]
    out: list[Any] = []
    for op, kwargs in CALLS:
        try:
            result = client.call(client.backend.call(op, **_fill(kwargs, conversation_id)))
        except PolarisError as exc:
            # the registered tasks differ between the two hosts (the server imports sample tasks)
            message = exc.message.replace(conversation_id, "{conv}").split("; known tasks:")[0]
            out.append(("error", exc.status, message))
        else:
            out.append(("ok", _shape(result)))
            if op == "trigger":  # the listing that follows must see it finished in both modes
                wait_finished(client, result["id"])
    return out


def test_local_and_remote_answer_alike(
    live: LiveServer,  # noqa: F811
    remote_model: ScriptedModelServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in server_env(remote_model).items():
        monkeypatch.setenv(name, value)
    root = tmp_path / "ws"
    root.mkdir()
    try:
        local_answers = answers(connect("local", root_dir=str(root), db_path=str(tmp_path / "kernel.db")))
        remote_answers = answers(connect("remote", url=live.url, token=live.token, scheme="token"))
    finally:
        disconnect()
    for (op, kwargs), mine, theirs in zip(CALLS, local_answers, remote_answers):
        assert mine == theirs, (op, kwargs.get("body", kwargs.get("query")), mine, theirs)
    refused = [a for a in local_answers if a[0] == "error"]
    assert len(refused) >= 25 and all(message for _, _, message in refused)
    assert {status for _, status, _ in refused} == {400, 404}
