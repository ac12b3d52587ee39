"""The notebook ChatPanel's context chips and @-mentions in a real JupyterLab + Chromium (issue 13
items 1-2): after a cell raised, the panel (``%polaris``) shows chips for the notebook, the last
error and the kernel's variables; a removed chip is not sent, the kept ones reach the model (the
scripted model's recorded request); typing ``@`` offers workspace files. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.testing import Response
from tests.ui.conftest import LabServer
from tests.ui.test_notebook_panel import make_notebook, wait_kernel_idle
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MARKER = "# saved-notebook-marker"


@pytest.fixture(scope="module")
def scripted_model() -> Iterator[Any]:
    """Overrides the conftest's: in this process, so the test reads the requests it recorded
    (unscripted, it echoes the user's turn)."""
    from polaris_jupyter.testing import ScriptedModelServer

    server = ScriptedModelServer.start_in_thread(model="scripted-model")
    yield server
    server.stop()


def user_turn(model: Any, count: int, timeout_s: float = 30) -> str:
    """The user turn of the model's ``count``-th chat request (the newest user message in it)."""
    deadline = time.monotonic() + timeout_s
    while len(model.chat_requests) < count:
        assert time.monotonic() < deadline, "the model got no request"
        time.sleep(0.1)
    messages = model.chat_requests[count - 1].messages
    return str(next(m["content"] for m in reversed(messages) if m["role"] == "user"))


def attachments(lab_server: LabServer) -> list[dict[str, Any]]:
    """What the user messages carried (a failure says why an item was not sent)."""
    _, conversations = lab_server.get("/polaris/api/v1/conversations")
    found = []
    for conversation in (conversations or {}).get("data", []):
        _, messages = lab_server.get(f"/polaris/api/v1/conversations/{conversation['id']}/messages")
        found += [a for m in (messages or {}).get("data", []) for a in (m.get("context") or {}).get("attachments", [])]
    return found


def run_cell(page: Any, index: int) -> None:
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def test_panel_chips_and_mentions(page: Any, lab_server: LabServer, scripted_model: Any, artifacts_dir: Path) -> None:
    (lab_server.root / "quarterly_report.md").write_text("# Q3\nRevenue grew.\n")
    url = make_notebook(lab_server.root, "sales.ipynb", f"{MARKER}\nmonthly_sales = [120, 80, 95]",
                        "count = 0\nmonthly_sales[0] / count", "%load_ext polaris_jupyter\n%polaris")
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(url), wait_until="domcontentloaded")
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    cells.nth(2).wait_for(timeout=60_000)
    wait_kernel_idle(lab_server, "sales.ipynb")
    run_cell(page, 0)
    cells.nth(0).locator(".jp-InputPrompt", has_text="[1]").wait_for(timeout=30_000)
    run_cell(page, 1)
    cells.nth(1).locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']").wait_for(timeout=30_000)
    run_cell(page, 2)

    panel = page.locator(".jp-OutputArea .pj-chat-widget")
    panel.locator(".pj-chat").wait_for(state="visible", timeout=90_000)
    chips = panel.locator(".pj-chat-composer").get_by_role("list", name="Attached context")  # not a sent message's
    for name in ("sales.ipynb", "Last error (ZeroDivisionError)", "Variables"):
        chips.get_by_role("button", name=f"Remove {name}").wait_for(timeout=30_000)
    assert chips.locator(".pj-chip-label").all_inner_texts() == ["sales.ipynb", "Last error (ZeroDivisionError)", "Variables"]
    panel.screenshot(path=str(artifacts_dir / "notebook-panel-context-chips.png"))

    # The notebook chip removed: the error and the variables are sent, the notebook is not.
    chips.get_by_role("button", name="Remove sales.ipynb").click()
    assert chips.get_by_role("listitem").count() == 2
    box = panel.get_by_role("textbox", name="Message")
    box.click()
    box.fill("Why does this fail?")
    panel.get_by_role("button", name="Send").click()
    panel.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=60_000)
    turn = user_turn(scripted_model, 1)
    assert "count = 0\nmonthly_sales[0] / count" in turn  # the failing cell's source
    assert "ZeroDivisionError" in turn and "division by zero" in turn  # its traceback
    assert "monthly_sales" in turn and "list" in turn, attachments(lab_server)  # the variables, inspected by the server
    assert MARKER not in turn, "the removed notebook chip was sent"
    assert "Why does this fail?" in turn
    roles = panel.locator(".pj-chat-messages > .pj-msg").evaluate_all(
        "els => els.map(el => el.classList.contains('pj-msg-user') ? 'user' : 'assistant')")
    assert roles[:2] == ["user", "assistant"], roles  # the question above its answer
    sent = panel.locator(".pj-msg-user .pj-msg-attachments .pj-chip-label")
    sent.first.wait_for(timeout=10_000)
    assert sent.all_inner_texts() == ["Last error (ZeroDivisionError)", "Variables"]
    # A removal holds while the item is offered (the next message too).
    assert chips.get_by_role("listitem").count() == 2
    panel.screenshot(path=str(artifacts_dir / "notebook-panel-context-sent.png"))

    # @ offers workspace files; Enter attaches one as a chip.
    box.click()
    box.press_sequentially("Summarise @quart")
    menu = panel.get_by_role("listbox", name="Mention a file")
    menu.get_by_role("option", name="quarterly_report.md").wait_for(timeout=15_000)
    page.screenshot(path=str(artifacts_dir / "notebook-panel-mention.png"))
    box.press("Enter")
    menu.wait_for(state="hidden", timeout=5_000)
    assert box.input_value() == "Summarise "
    chips.get_by_role("button", name="Remove quarterly_report.md").wait_for(timeout=5_000)
    panel.get_by_role("button", name="Send").click()
    turn = user_turn(scripted_model, 2)
    assert "Revenue grew." in turn and MARKER not in turn
    panel.locator(".pj-msg-assistant.pj-msg-status-completed").nth(1).wait_for(timeout=30_000)

    # A fix proposed in the panel shows its card as in the sidebar: the diff, Apply writes the cell.
    fixed = "count = 1\nmonthly_sales[0] / count"
    scripted_model.enqueue(
        Response.tool("proposeCellEdit", {"path": "sales.ipynb", "index": 1, "source": fixed, "explanation": "count must not be 0"}),
        Response(text="Set count to 1, then run the cell again."),
    )
    box.fill("Fix it")
    box.press("Enter")
    proposal = panel.locator(".pj-proposal")
    proposal.wait_for(timeout=30_000)
    assert "Proposed edit: cell 2 of sales.ipynb" in proposal.inner_text()
    assert "+count = 1" in proposal.locator(".pj-diff-add").all_inner_texts()
    assert "-count = 0" in proposal.locator(".pj-diff-del").all_inner_texts()
    proposal.get_by_role("button", name="Apply").click()
    panel.locator(".pj-proposal-applied").wait_for(timeout=15_000)
    saved = json.loads((lab_server.root / "sales.ipynb").read_text())
    assert "".join(saved["cells"][1]["source"]) == fixed
    panel.screenshot(path=str(artifacts_dir / "notebook-panel-proposal.png"))
    # The open notebook follows the applied proposal (proposal.updated, chat/followEdits.ts): it
    # reloads, or, with unsaved changes (the cells run here), a notice offers Reload / Keep mine.
    notice = page.locator(".jp-toast-container, .Toastify").get_by_role("button", name="Reload")
    shown = "() => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')[1]?.querySelector('.cm-content')?.innerText"
    deadline = time.monotonic() + 15
    while not page.evaluate(f"{shown}.includes('count = 1')"):
        assert time.monotonic() < deadline, "the open notebook did not follow the applied proposal"
        if notice.count():
            notice.first.click()
        page.wait_for_timeout(200)
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
