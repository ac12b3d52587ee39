"""Explain error and Fix with Polaris in the lab (issue 13 item 5, UI): a cell whose saved run
raised shows both buttons under its error output; Explain starts a chat whose message has the
intent explain and the cell and traceback attached; Fix gets the reply's proposed edit as a diff
with Apply / Discard, and Apply writes the cell into the notebook (then shown in the open one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_chat_context import user_message, write_notebook
from tests.ui.test_notebook_panel import wait_kernel_idle
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIXED = "count = 1\ntotal / count"
MODEL_SCRIPT: list[dict[str, Any]] = [
    # Explain error: a plain answer.
    {"text": "`count` is 0, so `total / count` divides by zero."},
    # Fix with Polaris: the proposal, then the answer.
    {"tool_calls": [{"name": "proposeCellEdit", "arguments": {"path": "fix.ipynb", "index": 1, "source": FIXED, "explanation": "count must not be 0"}}]},
    {"text": "I proposed setting `count` to 1."},
]


def messages_with_intent(lab_server: LabServer, intent: str, timeout_s: float = 30) -> dict[str, Any]:
    return user_message(lab_server, timeout_s, where=lambda context: context.get("intent") == intent,
                        what=f"intent {intent}")


def test_explain_and_fix_a_failed_cell(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(write_notebook(lab_server.root, "fix.ipynb")), wait_until="domcontentloaded")
    failed = page.locator(".jp-NotebookPanel .jp-CodeCell").nth(1)
    failed.get_by_role("button", name="Explain error").wait_for(timeout=60_000)
    # The variables come from the notebook's kernel: a kernel still starting has none to give.
    wait_kernel_idle(lab_server, "fix.ipynb")
    # Only the cell that raised has them.
    assert page.locator(".jp-NotebookPanel .jp-CodeCell").nth(0).get_by_role("button", name="Explain error").count() == 0
    page.screenshot(path=str(artifacts_dir / "explain-fix-buttons.png"))

    failed.get_by_role("button", name="Explain error").click()
    sidebar = page.locator("#polaris-sidebar")
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    assert "divides by zero" in sidebar.locator(".pj-msg-assistant .pj-msg-body").inner_text()
    explain = messages_with_intent(lab_server, "explain")
    # The cell and its outputs as sent, and the variables the server adds for an explanation.
    assert [a["kind"] for a in explain["context"]["attachments"]] == ["cell", "outputs", "variables"]
    assert "ZeroDivisionError" in explain["context"]["block"] and "total / count" in explain["context"]["block"]

    # Under the error output (the cell, now active, has the same button in its cell toolbar).
    failed.locator(".pj-error-actions").get_by_role("button", name="Fix with Polaris").click()
    proposal = sidebar.locator(".pj-proposal")
    proposal.wait_for(timeout=30_000)
    assert messages_with_intent(lab_server, "fix")["content"].startswith("Fix the error in cell 2")
    assert "+count = 1" in proposal.locator(".pj-diff-add").all_inner_texts()
    assert "-count = 0" in proposal.locator(".pj-diff-del").all_inner_texts()
    page.screenshot(path=str(artifacts_dir / "explain-fix-proposal.png"))
    proposal.get_by_role("button", name="Apply").click()
    sidebar.locator(".pj-proposal-applied").wait_for(timeout=10_000)
    saved = json.loads((lab_server.root / "fix.ipynb").read_text())
    assert "".join(saved["cells"][1]["source"]) == FIXED
    # The open notebook has unsaved changes (the kernel's metadata): a notice offers Reload / Keep mine.
    notice = page.locator(".jp-toast-container, .Toastify").get_by_role("button", name="Reload")
    notice.wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts_dir / "explain-fix-reload-notice.png"))
    notice.click()
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')[1]?.querySelector('.cm-content')?.innerText.includes('count = 1')",
        timeout=15_000,
    )
    assert sidebar.get_by_role("button", name="Apply").count() == 0
    page.screenshot(path=str(artifacts_dir / "explain-fix-applied.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
