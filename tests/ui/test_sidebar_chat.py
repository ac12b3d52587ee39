"""The Polaris sidebar against a real server and the scripted model: a message streams in with
a tool card and a diff, the run shows up in the Runs view with its events, and Stop stops a
reply. Tests run in file order: each consumes the next replies of ``MODEL_SCRIPT``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STORY = " ".join(["Once upon a time a notebook dreamed of durable background jobs."] * 12)

MODEL_SCRIPT: list[dict[str, Any]] = [
    # test_message_streams_with_a_tool_card: a tool call, then the answer streamed in tokens.
    {"tool_calls": [{"name": "writeFile", "arguments": {"path": "hello.py", "content": "print('hello')\n"}}]},
    {"text": "Created `hello.py`. It prints **hello** when you run it, and nothing else at all.", "delay_s": 0.08},
    # test_revert_in_the_sidebar_restores_the_file: an edit of an existing file, then a short answer.
    {"tool_calls": [{"name": "writeFile", "arguments": {"path": "notes.md", "content": "# Notes\nrewritten by the model\n"}}]},
    {"text": "Rewrote `notes.md`."},
    # test_stop_stops_a_streaming_reply: a slow reply to stop half way.
    {"text": STORY, "delay_s": 0.25},
]


def send(sidebar: Any, text: str) -> None:
    box = sidebar.locator("textarea.pj-chat-input")
    box.click()
    box.fill(text)
    box.press("Enter")


def assert_chat_routes(lab_server: LabServer) -> None:
    status, _ = lab_server.get("/polaris/api/v1/conversations")
    assert status == 200, f"the server has no chat routes (GET conversations -> {status})"


def test_message_streams_with_a_tool_card(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    assert_chat_routes(lab_server)
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    # Record every text the assistant message shows, to see it grow (streaming, not one blob).
    page.evaluate(
        """() => {
          window.seenTexts = new Set();
          new MutationObserver(() => {
            const body = document.querySelector('#polaris-sidebar .pj-msg-assistant .pj-msg-body');
            if (body && body.innerText.trim()) window.seenTexts.add(body.innerText.trim());
          }).observe(document.body, { subtree: true, childList: true, characterData: true });
        }"""
    )
    send(sidebar, "Create hello.py that prints hello")

    card = sidebar.locator(".pj-msg-assistant .pj-tool").first
    card.wait_for(timeout=30_000)
    assert card.locator(".pj-tool-name").inner_text() == "writeFile"
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    body = sidebar.locator(".pj-msg-assistant .pj-msg-body").inner_text()
    assert "Created hello.py" in body.replace("`", "")
    assert sidebar.locator(".pj-msg-assistant strong").inner_text() == "hello"
    assert card.locator(".pj-badge").inner_text() == "done"
    assert card.locator(".pj-diff-add").count() >= 1
    assert (lab_server.root / "hello.py").read_text() == "print('hello')\n"
    partial = [t for t in page.evaluate("() => [...window.seenTexts]") if t != body.strip()]
    assert partial, "the reply should have been shown while it streamed, not only at the end"
    assert sidebar.locator(".pj-msg-user").count() == 1
    # The new conversation is listed and selected.
    assert sidebar.locator(".pj-conversation-picker option").count() == 1
    page.screenshot(path=str(artifacts_dir / "sidebar-chat-live.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)


def test_runs_view_lists_the_run_with_its_events(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    assert_chat_routes(lab_server)
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-tab-runs").click()
    row = sidebar.locator('.pj-run-row:has(.pj-run-task:text-is("process-message"))').first
    row.wait_for(timeout=15_000)
    assert "completed" in row.inner_text()
    page.screenshot(path=str(artifacts_dir / "sidebar-runs-live.png"))
    row.click()
    detail = sidebar.locator(".pj-run-detail")
    detail.locator(".pj-run-header").wait_for(timeout=10_000)
    assert detail.locator(".pj-cancel-run").is_disabled()  # a finished run cannot be cancelled
    detail.locator('details[data-section="events"] > summary').click()
    types = detail.locator(".pj-event-type").all_inner_texts()
    for expected in ("run.status", "message.delta", "toolcall.started", "toolcall.finished"):
        assert expected in types, f"{expected} missing from the run's events {sorted(set(types))}"
    page.screenshot(path=str(artifacts_dir / "sidebar-run-detail.png"))
    sidebar.locator(".pj-subtab-metrics").click()
    sidebar.locator(".pj-metrics-table td:text-is('process-message')").wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts_dir / "sidebar-metrics-live.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)


def test_revert_in_the_sidebar_restores_the_file(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    """The tool card's "Revert this run" in the live sidebar puts the workspace back as it was."""
    assert_chat_routes(lab_server)
    notes = lab_server.root / "notes.md"
    notes.write_text("# Notes\nwritten by the user\n")
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-msg-assistant").first.wait_for(timeout=15_000)  # the earlier conversation
    send(sidebar, "Rewrite notes.md")
    card = sidebar.locator('.pj-msg-assistant .pj-tool:has(.pj-diff-del:has-text("written by the user"))')
    card.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#polaris-sidebar .pj-msg-assistant')].pop()"
        ".classList.contains('pj-msg-status-completed')",
        timeout=30_000,
    )
    assert notes.read_text() == "# Notes\nrewritten by the model\n"
    assert "rewritten by the model" in card.locator(".pj-diff-add").all_inner_texts()[0]

    # The user adds a line after the run: Revert refuses to throw it away and says so.
    notes.write_text("# Notes\nrewritten by the model\nthe user's own line\n")
    card.locator("button.pj-revert").click()
    card.locator("button.pj-revert-force").wait_for(timeout=15_000)
    assert "notes.md changed after this run" in card.locator(".pj-tool-error").inner_text()
    assert notes.read_text() == "# Notes\nrewritten by the model\nthe user's own line\n"
    page.screenshot(path=str(artifacts_dir / "sidebar-chat-revert-conflict.png"))

    # "Revert anyway" overwrites the user's line: their explicit choice.
    card.locator("button.pj-revert-force").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#polaris-sidebar .pj-tool button.pj-revert')].pop().innerText === 'Reverted'",
        timeout=15_000,
    )
    assert notes.read_text() == "# Notes\nwritten by the user\n"
    assert card.locator("button.pj-revert").is_disabled()
    assert (lab_server.root / "hello.py").exists(), "only the reverted run's edits are undone"
    page.screenshot(path=str(artifacts_dir / "sidebar-chat-reverted.png"))

    # After a reload the card still says Reverted (the server knows), and the other run's does not.
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    card = sidebar.locator('.pj-msg-assistant .pj-tool:has(.pj-diff-del:has-text("written by the user"))')
    card.wait_for(timeout=30_000)
    assert card.locator("button.pj-revert").inner_text() == "Reverted" and card.locator("button.pj-revert").is_disabled()
    assert sidebar.locator(".pj-msg-assistant .pj-tool button.pj-revert").first.inner_text() == "Revert this run"
    # The browser logs the refused (409) revert as a failed request: that one was expected.
    assert not page.polaris_log.unexpected((*ALLOWED_ERRORS, r"status of 409 .*@ \S*/polaris/api/v1/runs/\S+/revert"))


def test_stop_stops_a_streaming_reply(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    assert_chat_routes(lab_server)
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-msg-assistant").first.wait_for(timeout=15_000)  # the earlier conversation
    send(sidebar, "Tell me a long story")
    stop = sidebar.locator("button.pj-stop")
    stop.wait_for(state="visible", timeout=15_000)
    last = sidebar.locator(".pj-msg-assistant").last
    page.wait_for_function(
        "() => { const m = [...document.querySelectorAll('#polaris-sidebar .pj-msg-assistant')].pop();"
        " return m && m.querySelector('.pj-msg-body').innerText.includes('Once upon'); }",
        timeout=30_000,
    )
    stop.click()
    last.locator(".pj-msg-error").wait_for(timeout=15_000)
    assert "pj-msg-status-cancelled" in (last.get_attribute("class") or "")
    assert "stopped" in last.locator(".pj-msg-error").inner_text()
    assert last.locator("button.pj-retry").is_visible()
    assert stop.is_hidden()
    stopped_text = last.locator(".pj-msg-body").inner_text()
    assert 0 < len(stopped_text) < len(STORY)
    page.screenshot(path=str(artifacts_dir / "sidebar-chat-stopped.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)


def test_dark_theme_follows_jupyterlab_variables(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    assert_chat_routes(lab_server)
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-msg-assistant").first.wait_for(timeout=15_000)
    page.locator('.lm-MenuBar-itemLabel:text-is("Settings")').click()
    page.locator('.lm-Menu-itemLabel:text-is("Theme")').hover()
    page.locator('.lm-Menu-itemLabel:text-is("JupyterLab Dark")').click()
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=15_000)
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=15_000)
    luminance = page.evaluate(
        """() => {
          const rgb = getComputedStyle(document.querySelector('#polaris-sidebar .pj-chat')).backgroundColor
            .match(/\\d+/g).map(Number);
          return (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255;
        }"""
    )
    assert luminance < 0.35, f"the chat should follow the dark theme (background luminance {luminance:.2f})"
    page.screenshot(path=str(artifacts_dir / "sidebar-chat-dark.png"))
    # Back to the light theme for whatever runs next on this server.
    page.locator('.lm-MenuBar-itemLabel:text-is("Settings")').click()
    page.locator('.lm-Menu-itemLabel:text-is("Theme")').hover()
    page.locator('.lm-Menu-itemLabel:text-is("JupyterLab Light")').click()
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'", timeout=15_000)
