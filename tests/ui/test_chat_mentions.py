"""@-mentions in the sidebar chat against a real ``jupyter lab`` (issue 13 item 2): typing `@`
opens "Mention a file" with the workspace files matching what follows (the server's fuzzy match,
without .gitignored files); Enter adds a file chip and removes the `@query` text; `@cell` adds
the active cell; what was mentioned reaches the model's context block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_chat_context import user_message, write_notebook
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL_SCRIPT: list[dict[str, Any]] = [{"text": "module.py defines ANSWER."}]


def test_at_mentions_attach_a_file_and_the_active_cell(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    (lab_server.root / "src").mkdir()
    (lab_server.root / "src" / "module.py").write_text("ANSWER = 42  # mentioned\n")
    (lab_server.root / "build").mkdir()
    (lab_server.root / "build" / "module_copy.py").write_text("ignored\n")
    (lab_server.root / ".gitignore").write_text("build/\n")
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(write_notebook(lab_server.root, "ctx.ipynb")), wait_until="domcontentloaded")
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    cells.nth(1).wait_for(timeout=60_000)
    cells.nth(1).locator(".jp-InputPrompt").click()
    sidebar = open_sidebar(page)
    chips = sidebar.locator(".pj-context-chips")
    chips.get_by_role("button", name="Remove Outputs of cell 2").wait_for(timeout=10_000)
    for name in ("ctx.ipynb", "Cell 2", "Outputs of cell 2"):  # start from no chips
        chips.get_by_role("button", name=f"Remove {name}").click()
    assert chips.locator(".pj-chip-label").count() == 0

    box = sidebar.locator("textarea.pj-chat-input")
    box.click()
    box.press_sequentially("What is in @mod")
    menu = sidebar.get_by_role("listbox", name="Mention a file")
    menu.get_by_role("option", name="src/module.py").wait_for(timeout=10_000)
    options = menu.get_by_role("option").all_inner_texts()
    assert options[0] == "src/module.py", options
    assert not any(o.startswith("build/") for o in options), options  # .gitignored
    page.screenshot(path=str(artifacts_dir / "chat-mention-menu.png"))
    box.press("Enter")  # chooses, does not send
    menu.wait_for(state="hidden", timeout=5_000)
    assert box.input_value() == "What is in "
    assert chips.locator(".pj-chip-label").all_inner_texts() == ["module.py"]
    assert sidebar.locator(".pj-msg-user").count() == 0

    box.press_sequentially("@ce")
    menu.get_by_role("option", name="@cell").click()
    assert chips.locator(".pj-chip-label").all_inner_texts() == ["Cell 2", "module.py"]
    assert box.input_value() == "What is in "

    box.press_sequentially("these?")
    box.press("Enter")
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    message = user_message(lab_server)
    assert message["content"] == "What is in these?"
    attachments = message["context"]["attachments"]
    assert sorted((a["kind"], a.get("path")) for a in attachments) == [("cell", "ctx.ipynb"), ("file", "src/module.py")]
    block = message["context"]["block"]
    assert "ANSWER = 42  # mentioned" in block and "total / count" in block, json.dumps(message["context"])[:2000]
    # a mentioned file goes with one message (the active cell, offered by the lab, stays offered)
    assert "module.py" not in chips.locator(".pj-chip-label").all_inner_texts()
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
