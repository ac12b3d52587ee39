"""The sidebar survives a server restart: its event stream goes offline (a sentence saying
what happens next, not a close code), a message sent meanwhile is kept and sent once the
server is back, the stream reconnects with backoff (resuming from the last sequence number),
and chat works again without reloading the page or duplicating text. A new chat takes the
title the server gives it after the first message, without a reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_chat import assert_chat_routes, send
from tests.ui.test_sidebar_smoke import open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIRST = "First answer, before the restart."
SECOND = "Second answer, after the restart."
MODEL_SCRIPT: list[dict[str, Any]] = [{"text": FIRST, "delay_s": 0.02}, {"text": SECOND, "delay_s": 0.02}]


def test_stream_reconnects_after_server_restart(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    assert_chat_routes(lab_server)
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    send(sidebar, "Say something")
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    dot = sidebar.locator(".pj-view-chat .pj-chat-header .pj-conn")
    page.wait_for_function(
        "() => document.querySelector('#polaris-sidebar .pj-view-chat .pj-conn').classList.contains('pj-conn-connected')",
        timeout=15_000,
    )

    lab_server.stop()
    page.wait_for_function(
        "() => document.querySelector('#polaris-sidebar .pj-view-chat .pj-conn').classList.contains('pj-conn-offline')",
        timeout=15_000,
    )
    assert "reconnecting in" in (dot.get_attribute("title") or "")  # the technical detail, in the tooltip
    offline_note = sidebar.locator(".pj-view-chat .pj-chat-offline")
    note = offline_note.inner_text()
    assert offline_note.is_visible() and "Reconnecting" in note and "your messages are kept" in note
    assert "code" not in note and "1006" not in note, note

    # Send while disconnected: the message is kept, and said so, instead of nothing happening.
    box = sidebar.locator("textarea.pj-chat-input")
    box.fill("Say something else")
    box.press("Enter")
    queued = sidebar.locator(".pj-chat-queued")
    queued.wait_for(state="visible", timeout=5_000)
    assert "will be sent when the connection is back" in queued.inner_text()
    assert "Say something else" in queued.inner_text()
    assert sidebar.locator("button.pj-send").inner_text() == "Queued"
    page.screenshot(path=str(artifacts_dir / "sidebar-offline.png"))

    lab_server.start()
    page.wait_for_function(
        "() => document.querySelector('#polaris-sidebar .pj-view-chat .pj-conn').classList.contains('pj-conn-connected')",
        timeout=45_000,
    )
    assert offline_note.is_hidden()
    # The kept message went out by itself once the server was back.
    page.wait_for_function(
        "() => document.querySelectorAll('#polaris-sidebar .pj-msg-assistant.pj-msg-status-completed').length === 2",
        timeout=30_000,
    )
    assert queued.is_hidden()
    bodies = sidebar.locator(".pj-msg-assistant .pj-msg-body").all_inner_texts()
    assert [b.strip() for b in bodies] == [FIRST, SECOND]
    assert sidebar.locator(".pj-msg-user").all_inner_texts()[-1].endswith("Say something else")
    assert sidebar.locator(".pj-msg-user").count() == 2
    # Typing moved the focus, so JupyterLab saved its workspace while the server was down: its own
    # unhandled "Failed to fetch". Polaris's requests never reject so (api.ts wraps them).
    assert not [e for e in page.polaris_log.page_errors if e != "Failed to fetch"], page.polaris_log.page_errors


def test_new_chat_takes_its_title_from_the_first_message(page: Any, lab_server: LabServer) -> None:
    assert_chat_routes(lab_server)
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    new_chat = sidebar.locator("button.pj-new-conversation")
    assert new_chat.get_attribute("title") == "New chat"
    new_chat.click()
    selected = "() => { const p = document.querySelector('#polaris-sidebar .pj-conversation-picker');"
    page.wait_for_function(f"{selected} return p.selectedOptions[0]?.textContent === 'New chat'; }}", timeout=10_000)
    send(sidebar, "Plan the parser refactor")
    # The server renamed the chat after its first message; the picker shows it without a reload.
    page.wait_for_function(f"{selected} return p.selectedOptions[0]?.textContent === 'Plan the parser refactor'; }}", timeout=15_000)
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    assert "Plan the parser refactor" in sidebar.locator(".pj-conversation-picker option").all_inner_texts()
    assert not page.polaris_log.page_errors
