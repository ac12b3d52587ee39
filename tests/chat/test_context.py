"""Attached context, gathered on the server: files and notebooks read from the workspace by the
path rules, cells found by index or id, kernel variables from the notebook's own kernel; bad
items are 400s; what the model receives is read back from the scripted model's requests. Fix
with Polaris ends in a proposal that the API applies (revertible) or refuses (409)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import pytest_asyncio
from jupyter_client.manager import AsyncKernelManager
from nbformat import v4

from polaris_jupyter.chat.context import attach_context
from polaris_jupyter.chat.prompts import INTENT_INSTRUCTIONS
from polaris_jupyter.errors import Conflict, InvalidInput
from polaris_jupyter.testing import Response
from polaris_jupyter.tools.notebook_kernel import KernelHandle, MappedKernels, execute
from tests.chat.conftest import ChatEnv

TRACEBACK = [
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mKeyError\x1b[0m                                  Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[4], line 2\x1b[0m\n\x1b[1;32m      1\x1b[0m total \x1b[38;5;241m=\x1b[39m 0\n"
    "\x1b[0;32m----> 2\x1b[0m total \x1b[38;5;241m+\x1b[39m\x1b[38;5;241m=\x1b[39m prices[\x1b[38;5;124m'apple'\x1b[39m]",
    "\x1b[0;31mKeyError\x1b[0m: 'apple'",
]


def write_notebook(path: Path) -> list[str]:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    failing = v4.new_code_cell("total = 0\ntotal += prices['apple']", execution_count=4)
    failing.outputs = [v4.new_output("error", ename="KeyError", evalue="'apple'", traceback=TRACEBACK)]
    nb.cells = [v4.new_markdown_cell("# Shop"), v4.new_code_cell("prices = {'pear': 3}"), failing]
    path.write_text(nbformat.writes(nb))
    return [c.id for c in nb.cells]


def user_message_of(env: ChatEnv, request: int = 0) -> str:
    return str([m for m in env.model.chat_requests[request].messages if m["role"] == "user"][-1]["content"])


@pytest.mark.asyncio
async def test_gathering_reads_the_workspace_and_finds_cells_by_index_or_id(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "shop.py").write_text("PRICES_URL = 'https://example.invalid/prices'\n")
    ids = write_notebook(root / "nb.ipynb")
    context = {"currentFile": "nb.ipynb", "items": [
        {"kind": "file", "path": "src/shop.py"},
        {"kind": "cell", "path": "nb.ipynb", "cellId": ids[2]},
        {"kind": "outputs", "path": "nb.ipynb", "cellIndex": 2},
        {"kind": "selection", "path": "src/shop.py", "source": "PRICES_URL", "startLine": 1, "endLine": 1},
        {"kind": "file", "path": "src/missing.py"},
    ]}
    stored = await attach_context(context, None, root=root, budget_tokens=8000, kernels=None)
    assert stored is not None and stored["currentFile"] == "nb.ipynb" and "items" not in stored
    block = stored["block"]
    assert "PRICES_URL = 'https://example.invalid/prices'" in block  # read by the server
    assert "total += prices['apple']" in block and "error KeyError: 'apple'" in block
    assert "----> 2 total += prices['apple']" in block and "\x1b" not in block  # traceback tail, no colours
    chips = stored["attachments"]
    assert [c["kind"] for c in chips] == ["file", "cell", "outputs", "selection", "file"]
    assert chips[1]["cellIndex"] == 2 and chips[1]["cellId"] == ids[2] and chips[1]["label"] == "nb.ipynb cell 2"
    assert chips[3]["label"] == "selection in src/shop.py lines 1-1"
    assert chips[4]["omitted"] and "does not exist" in chips[4]["note"]
    assert await attach_context({"currentFile": "a.py"}, None, root=root, budget_tokens=8000, kernels=None) == {
        "currentFile": "a.py"}


@pytest.mark.asyncio
async def test_bad_items_are_refused_with_the_reason(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("TOP-SECRET")
    cases = [
        ({"items": [{"kind": "file", "path": "../secret.txt"}]}, None, "outside"),
        ({"items": [{"kind": "file"}]}, None, "needs its path"),
        ({"items": [{"kind": "selection", "path": "a.py"}]}, None, "needs its source"),
        ({"items": [{"kind": "cell", "path": "nb.ipynb"}]}, None, "cellIndex or cellId"),
        ({"items": [{"kind": "cell", "path": "a.py", "cellIndex": 0}]}, None, "not a notebook"),
        ({"items": [{"kind": "variables", "path": "nb.ipynb", "names": ["a b"]}]}, None, "not variable names"),
        ({"items": [{"kind": "video"}]}, None, "kind is one of"),
        ({"items": [{"kind": "file", "path": "a.py"}] * 21}, None, "at most 20"),
        ({"items": [{"kind": "file", "path": "a.py"}]}, "fix", "needs the cell"),
        ({}, "summarise", "intent must be one of"),
        ("src/app.py", None, "must be an object"),
    ]
    for context, intent, message in cases:
        with pytest.raises(InvalidInput, match=message):
            await attach_context(context, intent, root=root, budget_tokens=1000, kernels=None)


@pytest.mark.asyncio
async def test_the_model_request_carries_file_cell_source_and_traceback(chat_env: ChatEnv) -> None:
    root = chat_env.runtime.root_dir
    (root / "shop.py").write_text("def load_prices():\n    return {'pear': 3}\n")
    write_notebook(root / "nb.ipynb")
    chat_env.model.enqueue(Response(text="The key 'apple' is missing."))
    conv = await chat_env.chat.create_conversation()
    items = [{"kind": "file", "path": "shop.py"}, {"kind": "cell", "path": "nb.ipynb", "cellIndex": 2}]
    message, run_id = await chat_env.chat.post_message(conv.id, "Why does this fail?", {"items": items})
    await chat_env.settle(run_id)
    sent = user_message_of(chat_env)
    assert sent.startswith("<attached-context>") and sent.endswith("Why does this fail?")
    assert "def load_prices():" in sent  # the file's content
    assert "total += prices['apple']" in sent  # the cell's source
    assert "KeyError: 'apple'" in sent and "----> 2 total" in sent  # the traceback
    [user] = [m for m in await chat_env.chat.messages_json(conv.id) if m["role"] == "user"]
    assert [a["label"] for a in user["context"]["attachments"]] == ["shop.py", "nb.ipynb cell 2"]
    assert user["context"]["block"] in sent


@pytest.mark.asyncio
async def test_fix_with_polaris_proposes_then_the_api_applies_revertibly(chat_env: ChatEnv) -> None:
    root = chat_env.runtime.root_dir
    ids = write_notebook(root / "nb.ipynb")
    original = (root / "nb.ipynb").read_bytes()
    fixed = "total = 0\ntotal += prices.get('apple', 0)"
    chat_env.model.enqueue(
        Response.tool("proposeCellEdit", {"path": "nb.ipynb", "cellId": ids[2], "source": fixed,
                                          "explanation": "apple is not a key"}, call_id="call_fix"),
        Response(text="Use .get so a missing fruit counts as 0."),
    )
    conv = await chat_env.chat.create_conversation()
    cell = {"kind": "cell", "path": "nb.ipynb", "cellId": ids[2]}
    message, run_id = await chat_env.chat.post_message(conv.id, "Fix this cell", {"items": [cell]}, "fix")
    await chat_env.settle(run_id)
    system = chat_env.model.chat_requests[0].messages[0]["content"]
    assert INTENT_INSTRUCTIONS["fix"] in system and "proposeCellEdit" in system
    assert (root / "nb.ipynb").read_bytes() == original  # proposing writes nothing
    api = chat_env.runtime.api
    listed = (await api.dispatch("run_proposals", path={"runId": run_id})).body["proposals"]
    [proposal] = listed
    stored = await chat_env.chat.store.get_message(message.id)
    assert stored is not None and [c["id"] for c in stored.tool_calls] == [proposal["toolCallId"]] == ["call_fix"]
    assert "+total += prices.get('apple', 0)" in stored.tool_calls[0]["diff"]
    applied = await api.dispatch("apply_proposal", path={"proposalId": proposal["id"]})
    assert applied.body["status"] == "applied"
    assert nbformat.read(root / "nb.ipynb", as_version=4).cells[2].source == fixed
    with pytest.raises(Conflict, match="already applied"):
        await api.dispatch("apply_proposal", path={"proposalId": proposal["id"]})
    assert any(e["proposal"]["id"] == proposal["id"] for e in chat_env.of("proposal.updated"))
    await api.dispatch("revert_run", path={"runId": run_id}, body={})
    assert (root / "nb.ipynb").read_bytes() == original  # the applied fix is part of the run's edits


@pytest_asyncio.fixture
async def kernel(chat_env: ChatEnv) -> AsyncIterator[KernelHandle]:
    manager = AsyncKernelManager(kernel_name="python3")
    await manager.start_kernel(cwd=str(chat_env.runtime.root_dir))
    try:
        yield KernelHandle(manager.kernel_id or "k", manager)
    finally:
        await manager.shutdown_kernel(now=True)


@pytest.mark.asyncio
@pytest.mark.slow
async def test_explain_attaches_the_variables_the_cell_uses_from_its_kernel(chat_env: ChatEnv, kernel: KernelHandle) -> None:
    root = chat_env.runtime.root_dir
    write_notebook(root / "nb.ipynb")
    assert (await execute(kernel, "prices = {'pear': 3}\nunrelated = 'x' * 10", timeout_s=60)).status == "ok"
    chat_env.runtime.notebook_kernels = MappedKernels({"nb.ipynb": kernel})
    chat_env.model.enqueue(Response(text="prices has no 'apple'."))
    conv = await chat_env.chat.create_conversation()
    cell: dict[str, Any] = {"kind": "cell", "path": "nb.ipynb", "cellIndex": 2}
    _, run_id = await chat_env.chat.post_message(conv.id, "Explain this error", {"items": [cell]}, "explain")
    await chat_env.settle(run_id)
    sent = user_message_of(chat_env)
    assert "prices: dict length 1 = {'pear': 3}" in sent  # from the notebook's own kernel
    assert "unrelated" not in sent  # only what the cell uses
    assert "Not defined in the kernel: total" in sent
    assert INTENT_INSTRUCTIONS["explain"] in chat_env.model.chat_requests[0].messages[0]["content"]


@pytest.mark.asyncio
async def test_api_refuses_bad_context_items_with_400(chat_env: ChatEnv) -> None:
    conv = await chat_env.chat.create_conversation()
    api = chat_env.runtime.api
    for body, message in [
        ({"content": "hi", "context": {"items": [{"kind": "file", "path": "a.py", "colour": "red"}]}}, "unknown field"),
        ({"content": "hi", "intent": "poem"}, "intent"),
        ({"content": "hi", "context": {"items": [{"kind": "cell", "path": "nb.ipynb"}]}}, "cellIndex or cellId"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            await api.dispatch("post_message", path={"conversationId": conv.id}, body=body)
    assert await chat_env.chat.messages_json(conv.id) == []

