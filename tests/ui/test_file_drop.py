"""Files dragged from JupyterLab's file browser onto the chat attach as chips (issue 13 item 2): a
real lumino drag (pointer down on the file browser's item, moves, release over the chat), the
chat highlights while a file is over it, the dropped file becomes a chip, and the message sent
with it carries the file's content to the model (its recorded request). A dragged folder attaches
nothing and says so. The Polaris sidebar is moved to the right so both panels are visible, as a
user would (right-click its tab: Switch Sidebar Side)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MARKER = "DROPPED-FILE-MARKER-7f3a"


@pytest.fixture(scope="module")
def scripted_model() -> Iterator[Any]:
    """Overrides the conftest's: in-process, so the test reads the requests the model received."""
    from polaris_jupyter.testing import Response, ScriptedModelServer

    server = ScriptedModelServer.start_in_thread(responder=lambda request: Response(text="Read it."), model="scripted-model")
    yield server
    server.stop()


def drag(page: Any, source: Any, target: Any, *, release: bool = True) -> None:
    """A lumino drag as a user makes it: press on the source, move in steps (past the file
    browser's 5 px threshold), release over the target. Playwright's drag_to sends native drag
    events, which lumino does not use."""
    start, end = source.bounding_box(), target.bounding_box()
    x0, y0 = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    x1, y1 = end["x"] + end["width"] / 2, end["y"] + end["height"] / 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 12, y0 + 4, steps=4)
    page.mouse.move(x1, y1, steps=12)
    if release:
        page.mouse.up()


def model_saw(scripted_model: Any, needle: str, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for request in scripted_model.chat_requests:
            text = json.dumps((request.body or {}).get("messages", []))
            if needle in text:
                return text
        time.sleep(0.25)
    raise AssertionError(f"no model request contained {needle!r}")


def test_a_file_dragged_from_the_file_browser_attaches(page: Any, lab_server: LabServer, scripted_model: Any,
                                                        artifacts_dir: Path) -> None:
    (lab_server.root / "dropped.txt").write_text(f"notes for the model: {MARKER}\n")
    (lab_server.root / "reports").mkdir(exist_ok=True)
    (lab_server.root / "reports" / "q1.txt").write_text("quarter one\n")
    open_lab(page, lab_server)

    # The Polaris sidebar to the right, the file browser on the left.
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="polaris-sidebar"]')
    tab.wait_for(timeout=30_000)
    tab.click(button="right")
    page.locator('.lm-Menu-itemLabel:text-is("Switch Sidebar Side")').click()
    right_tab = page.locator('#jp-right-stack .lm-TabBar-tab[data-id="polaris-sidebar"], .jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="polaris-sidebar"]')
    right_tab.first.wait_for(timeout=10_000)
    sidebar = page.locator("#polaris-sidebar")
    if not sidebar.locator(".pj-chat").is_visible():
        right_tab.first.click()
    sidebar.locator(".pj-chat").wait_for(state="visible", timeout=10_000)
    browser_tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]')
    if not page.locator(".jp-FileBrowser .jp-DirListing").is_visible():
        browser_tab.click()
    listing = page.locator(".jp-FileBrowser .jp-DirListing-content")
    item = listing.locator(".jp-DirListing-item", has_text="dropped.txt")
    item.wait_for(timeout=15_000)
    box = sidebar.locator("textarea.pj-chat-input")

    # Over the chat: the drop highlight; released: the file is a chip.
    drag(page, item, box, release=False)
    page.wait_for_selector("#polaris-sidebar .pj-chat.pj-drop-active", timeout=5_000)
    page.screenshot(path=str(artifacts_dir / "file-drop-over-chat.png"))
    page.mouse.up()
    chips = sidebar.locator(".pj-context-chips")
    chips.get_by_role("button", name="Remove dropped.txt").wait_for(timeout=5_000)
    assert chips.locator(".pj-chip-label").all_inner_texts() == ["dropped.txt"]
    assert sidebar.locator(".pj-chat.pj-drop-active").count() == 0

    # A folder attaches nothing and says why.
    drag(page, listing.locator(".jp-DirListing-item", has_text="reports"), box)
    note = sidebar.locator(".pj-drop-note")
    note.wait_for(state="visible", timeout=5_000)
    assert "reports/" in note.inner_text() and "not attached" in note.inner_text()
    assert chips.locator(".pj-chip-label").all_inner_texts() == ["dropped.txt"]
    page.screenshot(path=str(artifacts_dir / "file-drop-chip.png"))

    # Sent: the model gets the file's content; the chip is on the sent message.
    box.click()
    box.fill("What do my notes say?")
    box.press("Enter")
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    sent = model_saw(scripted_model, MARKER)
    assert "dropped.txt" in sent
    assert sidebar.locator(".pj-msg-attachments .pj-chip-label").all_inner_texts() == ["dropped.txt"]
    assert chips.locator(".pj-chip-label").count() == 0  # a dropped file goes with one message
    page.screenshot(path=str(artifacts_dir / "file-drop-sent.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)


def test_a_file_dropped_on_the_notebook_chat_panel_attaches(page: Any, lab_server: LabServer, scripted_model: Any,
                                                             artifacts_dir: Path) -> None:
    """The notebook's ChatPanel (%polaris, the widget bundle) is the same ChatView: a file
    dropped on it is a chip, and the message sent through the kernel carries its content."""
    from tests.ui.test_notebook_panel import make_notebook, wait_kernel_idle

    marker = "PANEL-DROP-MARKER-51c2"
    (lab_server.root / "panel-notes.txt").write_text(f"for the panel: {marker}\n")
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(make_notebook(lab_server.root, "drop.ipynb", "%load_ext polaris_jupyter\n%polaris")),
              wait_until="domcontentloaded")
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").first
    cell.wait_for(timeout=60_000)
    wait_kernel_idle(lab_server, "drop.ipynb")
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    panel = page.locator(".jp-OutputArea .pj-chat-widget")
    panel.locator(".pj-chat").wait_for(state="visible", timeout=90_000)
    if not page.locator(".jp-FileBrowser .jp-DirListing").is_visible():
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]').click()
    item = page.locator(".jp-FileBrowser .jp-DirListing-content .jp-DirListing-item", has_text="panel-notes.txt")
    item.wait_for(timeout=15_000)

    box = panel.locator("textarea.pj-chat-input")
    drag(page, item, box)
    panel.locator(".pj-context-chips").get_by_role("button", name="Remove panel-notes.txt").wait_for(timeout=5_000)
    page.screenshot(path=str(artifacts_dir / "file-drop-notebook-panel.png"))
    box.click()
    box.fill("And these notes?")
    panel.locator("button.pj-send").click()
    panel.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    assert "panel-notes.txt" in model_saw(scripted_model, marker)
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
