"""A real ipykernel (jupyter_client KernelManager), no server: ``%load_ext polaris_jupyter`` and
``%polaris ask`` host the engine in the kernel and stream the scripted model's answer into ONE
display that is updated in place (display_data, then update_display_data with the same id)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.kernel.conftest import FOREIGN_ENV

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def kernel(tmp_path: Path, model: ScriptedModelServer) -> Iterator[Any]:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "notes.md").write_text("# Notes\nPolaris runs every AI operation as a job.\n")
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env.update(
        POLARIS_LOCAL_BASE_URL=model.base_url,
        POLARIS_LOCAL_MODEL="scripted-1",
        POLARIS_PROVIDER="local",
        POLARIS_DB_PATH=str(tmp_path / "kernel.db"),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(workspace))
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def execute(client: Any, code: str, timeout_s: float = 60) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    messages: list[dict[str, Any]] = []
    reply = client.execute_interactive(code, timeout=timeout_s, output_hook=messages.append)
    return reply, messages


def test_ask_streams_into_one_display_in_a_real_kernel(kernel: Any, model: ScriptedModelServer) -> None:
    reply, messages = execute(kernel, "%load_ext polaris_jupyter")
    assert reply["content"]["status"] == "ok"
    model.enqueue(
        Response.tool("readFile", {"path": "notes.md"}),
        Response(text="Your notes say **every AI operation is a job**. " + "More words follow. " * 20, delay_s=0.01),
    )
    reply, messages = execute(kernel, "%polaris ask what do my notes say?")
    assert reply["content"]["status"] == "ok", messages
    parent = reply["parent_header"]["msg_id"]
    shown = [m for m in messages if m["msg_type"] == "display_data"]
    updates = [m for m in messages if m["msg_type"] == "update_display_data"]
    assert len(shown) == 1, "one display for the whole answer"
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert len(updates) >= 2 and all(u["content"]["transient"]["display_id"] == display_id for u in updates)
    assert all(m["parent_header"]["msg_id"] == parent for m in shown + updates)
    assert not [m for m in messages if m["msg_type"] in ("stream", "error")], "no printed lines, no traceback"
    final = updates[-1]["content"]["data"]
    assert "<strong>every AI operation is a job</strong>" in final["text/html"]
    assert "readFile" in final["text/html"] and "pj-cell-answer-completed" in final["text/html"]
    assert "More words follow." in final["text/plain"]
    # The text grew across updates (streamed), and the model really got the tool result.
    lengths = [len(u["content"]["data"]["text/plain"]) for u in updates]
    assert lengths[0] < lengths[-1]
    tool_results = [m for m in model.requests[1].messages if m.get("role") == "tool"]
    assert "Polaris runs every AI operation as a job." in tool_results[0]["content"]

    # The runs table in the same kernel shows the answer's run; bad input is one line, no traceback.
    reply, messages = execute(kernel, "%polaris runs --task process-message")
    table = next(m for m in messages if m["msg_type"] == "execute_result")["content"]["data"]
    assert "COMPLETED" in table["text/html"] and "process-message" in table["text/plain"]
    reply, messages = execute(kernel, "%polaris frobnicate")
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "UsageError"
    stderr = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
    assert stderr.startswith("UsageError: %polaris: unknown subcommand 'frobnicate'") and "Traceback" not in stderr
    assert not [m for m in messages if m["msg_type"] == "error"]
