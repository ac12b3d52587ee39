"""The sidebar survives a server restart: its event stream goes offline, reconnects with
backoff when the server is back (resuming from the last sequence number), and chat works
again without reloading the page or duplicating text."""

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
    assert "retrying" in (dot.get_attribute("title") or "")
    offline_note = sidebar.locator(".pj-view-chat .pj-chat-offline")
    assert offline_note.is_visible() and "Live updates paused" in offline_note.inner_text()
    page.screenshot(path=str(artifacts_dir / "sidebar-offline.png"))

    lab_server.start()
    page.wait_for_function(
        "() => document.querySelector('#polaris-sidebar .pj-view-chat .pj-conn').classList.contains('pj-conn-connected')",
        timeout=45_000,
    )
    assert offline_note.is_hidden()
    # JupyterLab itself may have shown its "Server Connection Error" dialog meanwhile.
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        dialog.locator("button").last.click()
        dialog.wait_for(state="detached", timeout=10_000)
    send(sidebar, "Say something else")
    page.wait_for_function(
        "() => document.querySelectorAll('#polaris-sidebar .pj-msg-assistant.pj-msg-status-completed').length === 2",
        timeout=30_000,
    )
    bodies = sidebar.locator(".pj-msg-assistant .pj-msg-body").all_inner_texts()
    assert [b.strip() for b in bodies] == [FIRST, SECOND]
    assert sidebar.locator(".pj-msg-user").count() == 2
    assert not page.polaris_log.page_errors
