"""The notebook side in a real JupyterLab + Chromium. A cell runs ``%load_ext polaris_jupyter``
and ``%polaris``; the panel (anywidget; the kernel talks to the server's engine over REST/WS)
sends a message, the reply streams in with a tool card and a diff, and Stop stops a long reply.
Other cells stream ``%polaris ask`` into one output and show a generation's live progress.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import open_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STORY = " ".join(f"Once upon a time, part {i}." for i in range(200))
NOTES_REPLY = "I wrote **notes.txt** for you, with one line in it. " + "It says hello. " * 12


def chat_and_generation(generation: Any) -> Any:
    """The scripted model: generation steps get the generator script, chat turns a reply chosen
    by a keyword of the question and the number of tool results so far."""
    from polaris_jupyter.tasks.generate_steps import step_id_of_request
    from polaris_jupyter.testing import Response

    def reply(request: dict[str, Any]) -> Any:
        if step_id_of_request(request):
            return generation(request)
        messages = request.get("messages") or []
        last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
        question = str(messages[last_user].get("content") or "").lower()
        step = sum(1 for m in messages[last_user:] if m.get("role") == "tool")
        if "notes" in question:
            if step == 0:
                return Response.tool("writeFile", {"path": "notes.txt", "content": "hello from the panel\n"})
            return Response(text=NOTES_REPLY, delay_s=0.03)
        if "story" in question:
            return Response(text=STORY, delay_s=0.05)
        return Response(text=f"You asked: {question}", delay_s=0.02)

    return reply


@pytest.fixture(scope="module")
def scripted_model() -> Iterator[Any]:
    """Overrides the conftest's: the lab server reaches this in-process scripted model over HTTP."""
    script = pytest.importorskip("polaris_jupyter.tasks.generate_script")
    from polaris_jupyter.testing import ScriptedModelServer

    generation = script.ScriptedGeneration(tokens_per_file=120, tokens_per_s=400)
    server = ScriptedModelServer.start_in_thread(responder=chat_and_generation(generation), model="scripted-model")
    yield server
    server.stop()


def make_notebook(root: Path, name: str, *sources: str) -> str:
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": source}
            for i, source in enumerate(sources)
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / name).write_text(json.dumps(notebook))
    return f"lab/workspaces/{Path(name).stem}/tree/{name}"  # a workspace of its own: no other notebook restored


def wait_kernel_idle(lab_server: LabServer, notebook: str, timeout_s: float = 60) -> None:
    """The notebook's kernel is up (the page is connected to it and it is idle)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, sessions = lab_server.get("/api/sessions")
        for session in sessions or []:
            if session.get("path") == notebook and (session.get("kernel") or {}).get("execution_state") == "idle":
                return
        time.sleep(0.25)
    raise AssertionError(f"the kernel of {notebook} did not start")


def test_chat_panel_in_a_notebook_cell(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    status, _ = lab_server.get("/polaris/api/v1/conversations")
    assert status == 200, f"the server has no chat routes (GET conversations -> {status})"
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(make_notebook(lab_server.root, "panel.ipynb", "%load_ext polaris_jupyter\n%polaris")), wait_until="domcontentloaded")
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").first
    cell.wait_for(timeout=60_000)
    wait_kernel_idle(lab_server, "panel.ipynb")
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


def test_a_saved_panel_says_to_rerun_its_cell(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    """Saved, the panel's fallback text tells the truth where it shows: a copy opened without its
    kernel's widget (an untrusted notebook) says to re-run the cell, not "run this in JupyterLab"
    inside JupyterLab."""
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(make_notebook(lab_server.root, "saved.ipynb", "%load_ext polaris_jupyter\n%polaris")), wait_until="domcontentloaded")
    cell = page.locator(".jp-NotebookPanel .jp-CodeCell").first
    cell.wait_for(timeout=60_000)
    wait_kernel_idle(lab_server, "saved.ipynb")
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-OutputArea .pj-chat-widget .pj-chat").wait_for(state="visible", timeout=90_000)
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+s")
    fallback = wait_for_saved_panel(lab_server.root / "saved.ipynb")
    assert "re-run this cell to reconnect the panel" in fallback and "run this in JupyterLab" not in fallback

    saved = json.loads((lab_server.root / "saved.ipynb").read_text())
    # Changed after JupyterLab signed it, the copy is not trusted (as a notebook from git or a
    # colleague): JupyterLab shows the output's text/plain fallback instead of the widget.
    saved["metadata"]["copied_from"] = "saved.ipynb"
    (lab_server.root / "saved-copy.ipynb").write_text(json.dumps(saved))
    page.goto(lab_server.lab_url("lab/workspaces/saved-copy/tree/saved-copy.ipynb"), wait_until="domcontentloaded")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-OutputArea-output')].some(o => o.innerText.includes('ChatPanel('))",
        timeout=60_000,
    )
    shown = page.locator(".jp-OutputArea-output", has_text="ChatPanel(").first.inner_text()
    assert "re-run this cell to reconnect the panel" in shown and "run this in JupyterLab" not in shown, shown
    page.screenshot(path=str(artifacts_dir / "notebook-chat-panel-saved.png"))


def saved_output(path: Path, has: str, what: str, timeout_s: float = 30) -> dict[str, Any]:
    """The data of the first output holding mime type ``has`` once the notebook on disk holds one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            notebook = json.loads(path.read_text())
        except (OSError, ValueError):
            notebook = {"cells": []}
        for cell in notebook["cells"]:
            for out in cell.get("outputs", []):
                if has in out.get("data", {}):
                    return dict(out["data"])
        time.sleep(0.25)
    raise AssertionError(f"{path.name} was not saved with {what}")


def wait_for_saved_panel(path: Path, timeout_s: float = 30) -> str:
    """The text/plain fallback of the chat panel's output once the notebook on disk holds it."""
    text = saved_output(path, "application/vnd.jupyter.widget-view+json", "the panel's output", timeout_s).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else str(text)


def test_ask_and_generate_from_cells(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    """``%polaris ask`` streams into one output; ``%polaris generate`` shows live progress."""
    url = make_notebook(
        lab_server.root,
        "cells.ipynb",
        "%load_ext polaris_jupyter",
        "%polaris ask What is a good name for a todo app?",
        '%polaris generate "A todo app with due dates" --kind react-vite --path todo',
    )
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(url), wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for(timeout=60_000)
    wait_kernel_idle(lab_server, "cells.ipynb")
    page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-editor").first.click()
    for _ in range(3):
        page.keyboard.press("Shift+Enter")

    answer = page.locator(".jp-OutputArea .pj-cell-answer-completed")
    answer.wait_for(timeout=60_000)
    assert "You asked: what is a good name for a todo app?" in answer.inner_text()
    assert page.locator(".jp-OutputArea .pj-cell-answer").count() == 1, "one output, updated in place"

    progress = page.locator(".jp-OutputArea .pj-progress-widget")
    progress.locator(".pj-progress").wait_for(state="visible", timeout=90_000)
    page.wait_for_function(
        "() => { const b = document.querySelector('.jp-OutputArea .pj-progress-widget .pj-badge');"
        " return b && b.textContent.trim() === 'completed'; }",
        timeout=120_000,
    )
    assert progress.locator(".pj-step-finished").count() >= 9
    assert progress.locator(".pj-progress-count").inner_text().startswith("10 / 10")
    assert progress.locator(".pj-progress-files li").count() >= 8
    assert (lab_server.root / "todo" / "package.json").is_file()
    progress.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "notebook-ask-and-generate.png"))
    assert not page.polaris_log.page_errors, page.polaris_log.page_errors
