"""Smoke test of the Polaris sidebar in a real JupyterLab: the icon is there, both views open,
nothing crashes, and routes the server lacks show a clear error state instead."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.jobs import RunStatus
from tests.ui.conftest import LabServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Browsers log failed requests as console errors; a 404 from a Polaris route the server does
# not have yet is shown in the UI (asserted below), so it is the one error allowed here.
ALLOWED_ERRORS = (r"status of 404 .*@ \S*/polaris/api/",)


def open_lab(page: Any, lab_server: LabServer) -> None:
    """Open JupyterLab in a fresh workspace (no layout restored from an earlier test)."""
    workspace = f"test-{uuid.uuid4().hex[:8]}"
    page.goto(lab_server.lab_url(f"lab/workspaces/{workspace}") + "&reset", wait_until="domcontentloaded")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)


def open_sidebar(page: Any) -> Any:
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="polaris-sidebar"]')
    tab.wait_for(timeout=30_000)
    tab.click()
    sidebar = page.locator("#polaris-sidebar")
    sidebar.locator(".pj-chat").wait_for(state="visible", timeout=10_000)
    return sidebar


def test_sidebar_icon_opens_chat_and_runs(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)

    # Chat view: composer, conversation bar, status line; either data or a visible error.
    assert sidebar.locator(".pj-tab-chat.pj-active").count() == 1
    assert sidebar.locator("textarea.pj-chat-input").is_visible()
    assert sidebar.locator(".pj-conversation-picker").is_visible()
    page.wait_for_function(
        "() => { const s = document.querySelector('#polaris-sidebar .pj-chat-status');"
        " return s && s.textContent.trim().length > 0; }",
        timeout=15_000,
    )
    banner = sidebar.locator(".pj-view-chat .pj-banner")
    if banner.is_visible():
        assert banner.inner_text().strip(), "an error banner must say what went wrong"
    page.screenshot(path=str(artifacts_dir / "sidebar-chat.png"))

    # Runs view: history table with filters, then metrics.
    sidebar.locator(".pj-tab-runs").click()
    runs = sidebar.locator(".pj-view-runs")
    runs.locator(".pj-runs-table").wait_for(state="visible", timeout=10_000)
    assert runs.locator(".pj-status-filter option").count() == 1 + len(RunStatus)  # "All" + every status
    page.wait_for_function(
        "() => document.querySelector('#polaris-sidebar .pj-runs-table tbody tr')"
        " || !document.querySelector('#polaris-sidebar .pj-runs-history .pj-banner').hidden",
        timeout=15_000,
    )
    page.screenshot(path=str(artifacts_dir / "sidebar-runs.png"))

    runs.locator(".pj-subtab-metrics").click()
    page.wait_for_function(
        "() => document.querySelector('#polaris-sidebar .pj-metrics svg.pj-chart')"
        " || !document.querySelector('#polaris-sidebar .pj-metrics .pj-banner').hidden",
        timeout=15_000,
    )
    page.screenshot(path=str(artifacts_dir / "sidebar-metrics.png"))

    errors = page.polaris_log.unexpected(ALLOWED_ERRORS)
    assert not errors, f"console/page errors: {errors}"


def test_command_palette_lists_polaris_commands(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    open_lab(page, lab_server)
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="polaris-sidebar"]').wait_for(timeout=30_000)
    # View menu → Activate Command Palette, once the shell has restored (the launcher is up).
    page.locator(".jp-LauncherCard").first.wait_for(state="visible", timeout=30_000)
    palette_input = page.locator(".jp-ModalCommandPalette input.lm-CommandPalette-input")
    for _attempt in range(3):
        page.locator('.lm-MenuBar-itemLabel:text-is("View")').click()
        page.locator('.lm-Menu-itemLabel:text-is("Activate Command Palette")').click()
        try:
            palette_input.wait_for(state="visible", timeout=5_000)
            break
        except Exception:
            page.keyboard.press("Escape")
    palette_input.wait_for(state="visible", timeout=5_000)
    palette_input.fill("Polaris")
    items = page.locator(".jp-ModalCommandPalette .lm-CommandPalette-item")
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-ModalCommandPalette .lm-CommandPalette-item').length >= 5",
        timeout=10_000,
    )
    labels = [t.strip() for t in items.all_inner_texts()]
    for expected in ("Open Chat", "New Chat", "Generate Project", "Open Runs", "Open Runs Dashboard in a Tab"):
        assert any(expected in label for label in labels), f"{expected!r} missing from {labels}"

    # Running "Open Runs" from the palette reveals the Runs view.
    items.filter(has_text="Open Runs").filter(has_not_text="in a Tab").first.click()
    page.locator("#polaris-sidebar .pj-view-runs .pj-runs-table").wait_for(state="visible", timeout=10_000)

    # "Generate Project…" asks for a description, a kind and a folder.
    page.locator('.lm-MenuBar-itemLabel:text-is("View")').click()
    page.locator('.lm-Menu-itemLabel:text-is("Activate Command Palette")').click()
    palette_input.wait_for(state="visible", timeout=10_000)
    palette_input.fill("Polaris: Generate")
    items.filter(has_text="Generate Project").first.click()
    form = page.locator(".jp-Dialog .pj-generate-form")
    form.wait_for(state="visible", timeout=10_000)
    assert form.locator("select option").count() >= 1
    assert form.locator("input[type=text]").input_value() == "app/"
    page.screenshot(path=str(artifacts_dir / "generate-dialog.png"))
    page.locator(".jp-Dialog button.jp-mod-reject").click()
    form.wait_for(state="detached", timeout=10_000)
    errors = page.polaris_log.unexpected(ALLOWED_ERRORS)
    assert not errors, f"console/page errors: {errors}"
