"""Open documents follow the agent (issue 13 items 7, 9 UI): a file a tool writes reloads in its
open editor when nothing is unsaved, and a tool card's path opens the file in JupyterLab (the
unsaved case: test_follow_edits_dirty.py, a server of its own: one message per scripted model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL_SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [
        {"name": "writeFile", "arguments": {"path": "notes.py", "content": "print('v2')\n"}},
        {"name": "writeFile", "arguments": {"path": "made.py", "content": "made = 1\n"}},
    ]},
    {"text": "Updated."},
]


def ask(sidebar: Any, text: str, answers: int) -> None:
    box = sidebar.locator("textarea.pj-chat-input")
    box.click()
    box.fill(text)
    box.press("Enter")
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").nth(answers - 1).wait_for(timeout=30_000)


def editor_text(page: Any) -> str:
    return str(page.locator(".jp-FileEditor .cm-content").first.inner_text())


def test_open_editor_follows_the_agent(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    (lab_server.root / "notes.py").write_text("print('v1')\n")
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url("lab/workspaces/follow/tree/notes.py"), wait_until="domcontentloaded")
    page.wait_for_function("() => document.querySelector('.jp-FileEditor .cm-content')?.innerText.includes('v1')", timeout=60_000)
    sidebar = open_sidebar(page)

    ask(sidebar, "Make it print v2", 1)  # nothing unsaved: the editor reloads by itself
    page.wait_for_function("() => document.querySelector('.jp-FileEditor .cm-content')?.innerText.includes(\"v2\")", timeout=15_000)

    # A tool card's path opens the file.
    link = sidebar.locator(".pj-msg-assistant").first.get_by_role("link", name="Open made.py")
    link.click()
    page.locator(".jp-MainAreaWidget .lm-TabBar-tab, .lm-DockPanel-tabBar .lm-TabBar-tab").filter(has_text="made.py").first.wait_for(timeout=15_000)
    page.wait_for_function("() => [...document.querySelectorAll('.jp-FileEditor .cm-content')].some(e => e.innerText.includes('made = 1'))", timeout=15_000)
    page.screenshot(path=str(artifacts_dir / "follow-edits-opened.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
