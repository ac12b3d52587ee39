"""Open documents follow the agent, unsaved case (issue 13 item 7 UI): when a tool writes a file
whose open editor has unsaved changes, a notice offers Reload / Keep mine; Keep mine keeps the
user's text and the file on disk has the tool's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_follow_edits import ask, editor_text
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL_SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "writeFile", "arguments": {"path": "notes.py", "content": "print('v3')\n"}}]},
    {"text": "Again."},
]


def test_unsaved_editor_offers_reload_or_keep_mine(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    (lab_server.root / "notes.py").write_text("print('v2')\n")
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url("lab/workspaces/dirty/tree/notes.py"), wait_until="domcontentloaded")
    page.wait_for_function("() => document.querySelector('.jp-FileEditor .cm-content')?.innerText.includes('v2')", timeout=60_000)
    sidebar = open_sidebar(page)
    # Unsaved changes: a notice; Keep mine keeps them.
    page.locator(".jp-FileEditor .cm-content").first.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("# mine")
    ask(sidebar, "Make it print v3", 1)
    keep = page.get_by_role("button", name="Keep mine")
    keep.wait_for(timeout=15_000)
    assert page.get_by_role("button", name="Reload").count() >= 1
    page.screenshot(path=str(artifacts_dir / "follow-edits-notice.png"))
    keep.click()
    assert "# mine" in editor_text(page) and "v2" in editor_text(page)
    assert (lab_server.root / "notes.py").read_text() == "print('v3')\n"

    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
