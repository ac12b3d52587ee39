"""The notebook ChatPanel's context chips and @-mentions, in a real ipykernel (issue 13 items 1-2).

The kernel offers its notebook (from the session name the Jupyter server gives it), the last cell
that raised (source + traceback inline) and, where the server started the kernel, its variables;
the offer is a synced traitlet, re-sent after each cell. A send carries the items to the model
(the scripted model's recorded request). The panel's ``files`` action lists workspace files; its proposal actions serve a Fix's cards.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from polaris_jupyter.kernel import Polaris
from polaris_jupyter.kernel._context import notebook_path
from polaris_jupyter.kernel.widgets import ChatPanel
from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.kernel.conftest import FOREIGN_ENV
from tests.kernel.test_widgets import Browser, browser, final_status  # noqa: F401  (fixture)
from tests.live_server import LiveServer

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
_ids = itertools.count(1)
NOTEBOOK_MARKER = "# saved-notebook-marker"


def write_notebook(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cell: dict[str, Any] = {"cell_type": "code", "execution_count": None, "id": "c0", "metadata": {}, "outputs": [],
            "source": f"{NOTEBOOK_MARKER}\ntotal = 10"}
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


class Kernel:
    """A kernel client that keeps every iopub message and plays the widget's browser side."""

    def __init__(self, client: BlockingKernelClient) -> None:
        self.client = client
        self.iopub: list[dict[str, Any]] = []
        self.comm_id = ""

    def _pump(self, timeout_s: float) -> None:
        try:
            self.iopub.append(self.client.get_iopub_msg(timeout=timeout_s))
        except queue.Empty:
            pass

    def wait(self, predicate: Callable[[], Any], timeout_s: float = 60) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            self._pump(0.1)
        raise AssertionError("the kernel did not get there")

    def run(self, code: str, cell_id: str | None = None) -> list[dict[str, Any]]:
        """Execute like JupyterLab does (the cell id in the request's metadata); its iopub messages."""
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": False}
        msg = self.client.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
        self.client.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        mine = lambda: [m for m in self.iopub if m["parent_header"].get("msg_id") == msg_id]  # noqa: E731
        self.wait(lambda: any(m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" for m in mine()))
        return mine()

    def show_panel(self) -> dict[str, Any]:
        """Display a ChatPanel; its initial state (what the view renders from)."""
        messages = self.run("from polaris_jupyter.kernel import get_client\npanel = get_client().chat_panel()\npanel")
        opened = [m for m in messages if m["msg_type"] == "comm_open"
                  and "context_items" in m["content"]["data"].get("state", {})]
        assert opened, [m["msg_type"] for m in messages]
        self.comm_id = opened[-1]["content"]["comm_id"]
        return dict(opened[-1]["content"]["data"]["state"])

    def offers(self, messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """The context_items updates among ``messages``."""
        return [m["content"]["data"]["state"]["context_items"] for m in messages
                if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == self.comm_id
                and "context_items" in m["content"]["data"].get("state", {})]

    def request(self, action: str, **args: Any) -> dict[str, Any]:
        """A request of the browser over the comm; the kernel's response."""
        request_id = f"test-{next(_ids)}"
        data = {"method": "custom", "content": {"kind": "request", "id": request_id, "action": action, "args": args}}
        self.client.shell_channel.send(self.client.session.msg("comm_msg", {"comm_id": self.comm_id, "data": data}))

        def response() -> dict[str, Any] | None:
            for m in self.iopub:
                content = m["content"].get("data", {}).get("content") if m["msg_type"] == "comm_msg" else None
                if isinstance(content, dict) and content.get("kind") == "response" and content.get("id") == request_id:
                    return content
            return None

        return dict(self.wait(response))


def user_turn(model: ScriptedModelServer) -> str:
    """The newest user message of the newest chat request the model received."""
    messages = model.chat_requests[-1].messages
    return str(next(m["content"] for m in reversed(messages) if m["role"] == "user"))


def wait_requests(model: ScriptedModelServer, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(model.chat_requests) < count:
        assert time.monotonic() < deadline, "the model got no request"
        time.sleep(0.05)


# ---- an in-kernel engine (no server): notebook and last error ---------------------------------


@pytest.fixture
def local_kernel(tmp_path: Path, model: ScriptedModelServer) -> Iterator[Kernel]:
    workspace = tmp_path / "ws"
    write_notebook(workspace / "analysis.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV and k not in ("POLARIS_URL", "POLARIS_TOKEN")}
    env.update(
        POLARIS_LOCAL_BASE_URL=model.base_url, POLARIS_LOCAL_MODEL="scripted-1", POLARIS_PROVIDER="local",
        POLARIS_DB_PATH=str(tmp_path / "kernel.db"), POLARIS_PERMISSION_MODE="auto",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        # what jupyter_server sets for a notebook's kernel: the session's path (absolute with a name)
        JPY_SESSION_NAME=str(workspace / "analysis.ipynb"),
    )
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(workspace))
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    yield Kernel(client)
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def test_panel_offers_the_notebook_and_the_last_error_and_sends_them(local_kernel: Kernel, model: ScriptedModelServer) -> None:
    kernel = local_kernel
    kernel.run("total = 10", cell_id="c0")
    state = kernel.show_panel()
    assert state["context_items"] == [{"kind": "notebook", "path": "analysis.ipynb", "label": "analysis.ipynb"}]

    # A failing cell: the offer is pushed at once (in that execution), with the source and traceback.
    messages = kernel.run("count = 0\ntotal / count", cell_id="cell-2")
    assert [m for m in messages if m["msg_type"] == "error"], "the cell raised"
    offered = kernel.offers(messages)[-1]
    notebook, error = offered
    assert notebook["kind"] == "notebook"
    assert {k: error[k] for k in ("kind", "path", "cellId", "label", "source")} == {
        "kind": "cell", "path": "analysis.ipynb", "cellId": "cell-2", "label": "Last error (ZeroDivisionError)",
        "source": "count = 0\ntotal / count"}
    [output] = error["outputs"]
    assert output["output_type"] == "error" and output["ename"] == "ZeroDivisionError"
    assert output["evalue"] == "division by zero" and "ZeroDivisionError" in "".join(output["traceback"])
    assert not [o for o in offered if o["kind"] == "variables"], "an in-kernel engine cannot inspect its own kernel"
    assert kernel.request("context")["data"]["items"] == offered  # what a rendering view asks for

    # Send with what the chips show: the model gets the cell, its traceback and the saved notebook.
    model.enqueue(Response(text="You divide by zero."))
    sent = kernel.request("send", text="Why does this fail?", context={"currentFile": "analysis.ipynb", "items": offered})
    assert sent["ok"] is True, sent
    wait_requests(model, 1)
    turn = user_turn(model)
    assert "count = 0\ntotal / count" in turn and "ZeroDivisionError" in turn and "division by zero" in turn
    assert NOTEBOOK_MARKER in turn  # the notebook item: read from the workspace by the server
    assert "Why does this fail?" in turn

    # Only what the chips kept is sent (the notebook removed).
    kernel.wait(lambda: kernel.request("send", text="And now?", context={"items": [error]}).get("ok"))
    wait_requests(model, 2)
    turn = user_turn(model)
    assert "total / count" in turn and NOTEBOOK_MARKER not in turn

    # Another cell runs fine: still the latest error. The failing cell runs fine: withdrawn.
    assert kernel.offers(kernel.run("x = 1", cell_id="cell-3")) == []  # unchanged: nothing re-sent
    assert kernel.offers(kernel.run("count = 2\ntotal / count", cell_id="cell-2"))[-1] == [notebook]


def test_panel_lists_workspace_files_for_an_at_mention(local_kernel: Kernel) -> None:
    kernel = local_kernel
    kernel.show_panel()
    found = kernel.request("files", query="analy", limit=5)
    assert found["ok"] is True and found["data"]["paths"][0] == "analysis.ipynb"
    assert kernel.request("files", query="no-such-file-anywhere")["data"]["paths"] == []


def test_an_error_before_the_panel_is_offered_from_history(local_kernel: Kernel) -> None:
    kernel = local_kernel
    kernel.run("values = []")
    kernel.run("values[3]")
    error = kernel.show_panel()["context_items"][-1]
    assert error["kind"] == "selection" and error["label"] == "Last error (IndexError)"  # no cell id known
    assert error["source"].startswith("values[3]\n\n# raised:\n") and "IndexError" in error["source"]
    assert "\x1b[" not in error["source"]  # plain text, no terminal colours


def test_notebook_path_is_workspace_relative(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_notebook(root / "sub" / "nb.ipynb")
    assert notebook_path(str(root / "sub" / "nb.ipynb"), str(root), str(root / "sub")) == "sub/nb.ipynb"
    assert notebook_path("sub/nb.ipynb", str(root), str(root / "sub")) == "sub/nb.ipynb"  # the URL path
    assert notebook_path("nb.ipynb", str(root), str(root / "sub")) == "sub/nb.ipynb"  # a name in the kernel's folder
    assert notebook_path(str(tmp_path / "elsewhere.ipynb"), str(root), str(root)) is None
    assert notebook_path("../x.ipynb", str(root), str(root)) is None
    assert notebook_path("console-1", str(root), str(root)) is None and notebook_path(None, str(root), str(root)) is None


# ---- a kernel the Jupyter server started: its variables, by kernel id --------------------------


@pytest.fixture
def server_kernel(tmp_path: Path, model: ScriptedModelServer) -> Iterator[tuple[Kernel, str]]:
    root = tmp_path / "root"
    write_notebook(root / "sub" / "analysis.ipynb")
    runtime = tmp_path / "runtime"
    env = {"POLARIS_LOCAL_BASE_URL": model.base_url, "POLARIS_LOCAL_MODEL": "scripted-1", "POLARIS_PROVIDER": "local",
           "POLARIS_PERMISSION_MODE": "auto", "JUPYTER_RUNTIME_DIR": str(runtime)}
    server = LiveServer(root, tmp_path / "polaris.db", env=env,
                        extra_args=["--ServerApp.jpserver_extensions={'polaris_jupyter': True}"]).start()
    client: BlockingKernelClient | None = None
    try:
        status, session = server.request("POST", "/api/sessions", {
            "path": "sub/analysis.ipynb", "name": "analysis.ipynb", "type": "notebook", "kernel": {"name": "python3"}})
        assert status == 201, session
        kernel_id = session["kernel"]["id"]
        client = BlockingKernelClient(connection_file=str(runtime / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        yield Kernel(client), kernel_id
    finally:
        if client is not None:
            client.stop_channels()
        server.stop()


def test_server_kernel_offers_its_variables_and_the_model_gets_them(server_kernel: tuple[Kernel, str],
                                                                     model: ScriptedModelServer) -> None:
    kernel, kernel_id = server_kernel
    kernel.run("monthly_sales = [120, 80, 95]")
    offered = kernel.show_panel()["context_items"]
    assert offered == [
        {"kind": "notebook", "path": "sub/analysis.ipynb", "label": "analysis.ipynb"},
        {"kind": "variables", "kernelId": kernel_id, "label": "Variables"},
    ]
    model.enqueue(Response(text="You have monthly sales."))
    variables = offered[1]
    sent = kernel.request("send", text="What is in my kernel?", context={"items": [variables]})
    assert sent["ok"] is True, sent
    wait_requests(model, 1)
    turn = user_turn(model)
    assert "monthly_sales" in turn and "list" in turn
    assert NOTEBOOK_MARKER not in turn


# ---- proposal cards in the panel (in-process engine, the browser played by the test) ---------


def test_panel_lists_proposals_and_forwards_their_updates(local_client: Polaris, model: ScriptedModelServer,
                                                          browser: Browser, workspace: Path) -> None:  # noqa: F811
    write_notebook(workspace / "fix.ipynb")
    model.enqueue(Response.tool("proposeCellEdit", {"path": "fix.ipynb", "index": 0, "source": "total = 11"}),
                  Response(text="Proposed."))
    panel = ChatPanel(local_client)
    try:
        sent = browser.request(panel, "send", text="Fix it")["data"]
        browser.wait_for(lambda: final_status(browser, sent["messageId"]) == "completed")
        listed = browser.request(panel, "proposals", runId=sent["runId"])
        [proposal] = listed["data"]["proposals"]
        assert proposal["status"] == "pending" and proposal["source"] == "total = 11"

        # Discarded elsewhere (the sidebar, another panel): the panel hears of it and redraws the card.
        local_client.call(local_client.backend.call("discard_proposal", path={"proposalId": proposal["id"]}))
        browser.wait_for(lambda: [e["data"]["proposal"]["status"] for e in browser.events()
                                  if e["type"] == "proposal.updated"] == ["discarded"])
        refused = browser.request(panel, "apply_proposal", proposalId=proposal["id"])
        assert refused["ok"] is False and refused["status"] == 409 and "discarded" in refused["error"]
        assert NOTEBOOK_MARKER in (workspace / "fix.ipynb").read_text()  # nothing written
        missing = browser.request(panel, "proposals", runId="run_missing")
        assert missing["ok"] is False and missing["status"] == 404
    finally:
        panel.close()
