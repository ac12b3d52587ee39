"""Code blocks of replies in the lab (issue 13 item 2): highlighted, with `Insert below` (a new
cell under the active cell of the active notebook), `Run` (insert below and execute it in the
notebook's kernel) and `Replace cell` (a diff of the active cell first, then replaced), next to
`Copy code`; driven by their accessible names against a real ``jupyter lab`` and kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_notebook_panel import make_notebook, wait_kernel_idle
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CODE = "print(6 * 7)  # the answer"
MODEL_SCRIPT: list[dict[str, Any]] = [{"text": f"Try this:\n\n```python\n{CODE}\n```\n"}]


def cell_sources(page: Any) -> list[str]:
    return [s.replace("\u200b", "") for s in page.locator(".jp-NotebookPanel .jp-Cell .jp-InputArea-editor .cm-content").all_inner_texts()]


def test_code_block_buttons_act_on_the_active_notebook(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(make_notebook(lab_server.root, "code.ipynb", "x = 1")), wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for(timeout=60_000)
    wait_kernel_idle(lab_server, "code.ipynb")
    page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").first.click()
    sidebar = open_sidebar(page)
    box = sidebar.locator("textarea.pj-chat-input")
    box.click()
    box.fill("How do I print the answer?")
    box.press("Enter")
    reply = sidebar.locator(".pj-msg-assistant.pj-msg-status-completed")
    reply.wait_for(timeout=30_000)
    block = reply.locator(".pj-code-block")
    assert block.get_by_role("button", name="Copy code").count() == 1
    # Highlighted: the builtin, the number and the comment are tokens of their own.
    assert block.locator(".pj-tok-builtin").first.inner_text() == "print"
    assert block.locator(".pj-tok-comment").inner_text() == "# the answer"
    assert block.locator("code").inner_text().strip() == CODE

    block.get_by_role("button", name="Insert below").click()
    page.wait_for_function("() => document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length === 2")
    assert cell_sources(page) == ["x = 1", CODE]

    block.get_by_role("button", name="Run").click()
    page.wait_for_function("() => document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length === 3")
    assert cell_sources(page) == ["x = 1", CODE, CODE]
    output = page.locator(".jp-NotebookPanel .jp-Cell").nth(2).locator(".jp-OutputArea-output")
    output.wait_for(timeout=30_000)
    assert output.inner_text().strip() == "42"

    # Replace cell: the first cell is made active, the diff is shown first, then it is replaced.
    page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").first.click()
    block.get_by_role("button", name="Replace cell").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=10_000)
    assert dialog.locator(".pj-diff-del").inner_text() == "-x = 1"
    assert dialog.locator(".pj-diff-add").inner_text() == f"+{CODE}"
    page.screenshot(path=str(artifacts_dir / "chat-code-replace-diff.png"))
    dialog.get_by_role("button", name="Replace").click()
    dialog.wait_for(state="detached", timeout=10_000)
    assert cell_sources(page) == [CODE, CODE, CODE]
    page.screenshot(path=str(artifacts_dir / "chat-code-actions.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
