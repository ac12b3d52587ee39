"""The notebook chat panel in a real JupyterLab + Chromium: a notebook cell runs
``%load_ext polaris_jupyter`` and ``%polaris``; the panel (anywidget, the kernel talking to the
server's engine over REST/WS) sends a message, the reply streams in with a tool card and a diff,
and Stop stops a long reply. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import open_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STORY = " ".join(f"Once upon a time, part {i}." for i in range(200))
MODEL_SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [{"name": "writeFile", "arguments": {"path": "notes.txt", "content": "hello from the panel\n"}}]},
    {"text": "I wrote **notes.txt** for you, with one line in it. " + "It says hello. " * 12, "delay_s": 0.03},
    {"text": STORY, "delay_s": 0.05},
]
# A widget loads its ESM from a blob URL; Lab logs nothing else on a clean run.
ALLOWED_ERRORS = (r"status of 404 .*@ \S*/api/(workspaces|kernelspecs|contents)",)


def make_notebook(root: Path) -> str:
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": "panel", "metadata": {}, "outputs": [],
             "source": "%load_ext polaris_jupyter\n%polaris"},
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / "panel.ipynb").write_text(json.dumps(notebook))
    return "lab/tree/panel.ipynb"


def wait_kernel_idle(lab_server: LabServer, timeout_s: float = 60) -> None:
    """The notebook's kernel is up (the page is connected to it and it is idle)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, kernels = lab_server.get("/api/kernels")
        if kernels and all(k.get("execution_state") == "idle" for k in kernels):
            return
        time.sleep(0.25)
    raise AssertionError("the notebook's kernel did not start")


def test_chat_panel_in_a_notebook_cell(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    status, _ = lab_server.get("/polaris/api/v1/conversations")
    if status != 200:
        pytest.skip(f"the server has no chat routes (GET conversations -> {status})")
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(make_notebook(lab_server.root)), wait_until="domcontentloaded")
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").first
    cell.wait_for(timeout=60_000)
    wait_kernel_idle(lab_server)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")

    panel = page.locator(".jp-OutputArea .pj-chat-widget")
    panel.locator(".pj-chat").wait_for(state="visible", timeout=90_000)
    # The status line shows the server's model; the picker holds the kernel's conversation.
    page.wait_for_function(
        "() => { const s = document.querySelector('.jp-OutputArea .pj-chat-status');"
        " return s && s.textContent.includes('local'); }",
        timeout=30_000,
    )
    assert panel.locator(".pj-conversation-picker option").count() >= 1
    page.evaluate(
        """() => {
          window.seenTexts = new Set();
          new MutationObserver(() => {
            const body = document.querySelector('.jp-OutputArea .pj-msg-assistant .pj-msg-body');
            if (body && body.innerText.trim()) window.seenTexts.add(body.innerText.trim());
          }).observe(document.body, { subtree: true, childList: true, characterData: true });
        }"""
    )

    box = panel.locator("textarea.pj-chat-input")
    box.click()
    box.fill("Please write notes.txt")
    panel.locator("button.pj-send").click()

    card = panel.locator(".pj-msg-assistant .pj-tool").first
    card.wait_for(timeout=30_000)
    assert card.locator(".pj-tool-name").inner_text() == "writeFile"
    panel.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    body = panel.locator(".pj-msg-assistant .pj-msg-body").first.inner_text()
    assert "I wrote notes.txt for you" in body
    assert panel.locator(".pj-msg-assistant strong").first.inner_text() == "notes.txt"
    assert card.locator(".pj-diff-add").count() >= 1
    assert (lab_server.root / "notes.txt").read_text() == "hello from the panel\n"
    partial = [t for t in page.evaluate("() => [...window.seenTexts]") if t != body.strip()]
    assert partial, "the reply should have been shown while it streamed, not only at the end"
    page.screenshot(path=str(artifacts_dir / "notebook-chat-panel.png"))

    # A long reply, stopped half-way.
    box.fill("Tell me a long story")
    panel.locator("button.pj-send").click()
    stop = panel.locator("button.pj-stop")
    stop.wait_for(state="visible", timeout=15_000)
    page.wait_for_function(
        "() => { const m = [...document.querySelectorAll('.jp-OutputArea .pj-msg-assistant')].pop();"
        " return m && m.querySelector('.pj-msg-body').innerText.includes('Once upon'); }",
        timeout=30_000,
    )
    stop.click()
    last = panel.locator(".pj-msg-assistant").last
    last.locator(".pj-msg-error").wait_for(timeout=15_000)
    assert "pj-msg-status-cancelled" in (last.get_attribute("class") or "")
    assert last.locator("button.pj-retry").is_visible() and stop.is_hidden()
    assert 0 < len(last.locator(".pj-msg-body").inner_text()) < len(STORY)
    status, page_of_runs = lab_server.get("/polaris/api/v1/runs?task=process-message")
    assert status == 200 and [r["status"] for r in page_of_runs["data"]][:2] == ["CANCELED", "COMPLETED"]
    panel.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "notebook-chat-panel-stopped.png"))
    assert not page.polaris_log.page_errors, page.polaris_log.page_errors
