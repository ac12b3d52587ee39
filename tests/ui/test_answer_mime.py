"""``%polaris ask`` in a real JupyterLab + Chromium: the cell output is the answer's state as
``application/vnd.polaris.answer+json``, drawn by the lab extension with the SAME message
renderer as the sidebar (same markup for the same message), with a working ``Copy code``
button; saved and reopened, the notebook draws it again. Screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_notebook_panel import make_notebook, saved_output, wait_kernel_idle
from tests.ui.test_sidebar_smoke import open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MIME = "application/vnd.polaris.answer+json"
CODE = 'def hello(name):\n    return f"hello {name} <b>"'
ANSWER = (
    "Your notes say **hello**. A function for it:\n\n"
    f"```python\n{CODE}\n```\n\n"
    "- short\n- and `simple`\n"
)


def notes_then_answer(request: dict[str, Any]) -> Any:
    """First model call: read notes.txt; after the tool result: the answer with a code block."""
    from polaris_jupyter.testing import Response

    messages = request.get("messages") or []
    if not any(m.get("role") == "tool" for m in messages):
        return Response.tool("readFile", {"path": "notes.txt"})
    return Response(text=ANSWER, delay_s=0.01)


@pytest.fixture(scope="module")
def scripted_model() -> Iterator[Any]:
    """Overrides the conftest's: the lab server reaches this in-process scripted model over HTTP."""
    from polaris_jupyter.testing import ScriptedModelServer

    server = ScriptedModelServer.start_in_thread(responder=notes_then_answer, model="scripted-model")
    yield server
    server.stop()


MARKUP_JS = """(root) => {
  const m = root.querySelector('.pj-msg-assistant');
  return m && {
    className: m.className,
    meta: m.querySelector('.pj-msg-meta').innerHTML,
    tools: m.querySelector('.pj-msg-tools')?.innerHTML ?? null,
    body: m.querySelector('.pj-msg-body').innerHTML,
  };
}"""


def test_ask_output_is_drawn_by_the_chat_renderer(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    (lab_server.root / "notes.txt").write_text("hello\n")
    url = make_notebook(lab_server.root, "ask.ipynb", "%load_ext polaris_jupyter", "%polaris ask What do my notes say?")
    open_lab(page, lab_server)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab_server.url)
    page.goto(lab_server.lab_url(url), wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for(timeout=60_000)
    wait_kernel_idle(lab_server, "ask.ipynb")
    page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-editor").first.click()
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")

    # The rich renderer, not the HTML fallback (which has no .pj-answer / .pj-msg).
    output = page.locator(".jp-OutputArea .pj-answer-output")
    answer = output.locator(".pj-answer.pj-cell-answer-completed")
    answer.wait_for(timeout=90_000)
    assert output.count() == 1, "one output, updated in place"
    assert page.locator(".jp-OutputArea .pj-cell-answer").count() == 1
    message = answer.locator(".pj-msg.pj-msg-assistant.pj-msg-status-completed")
    assert message.locator(".pj-msg-role").inner_text() == "Polaris"
    assert message.locator(".pj-msg-body strong").first.inner_text() == "hello"
    assert message.locator(".pj-tool .pj-tool-name").inner_text() == "readFile"
    assert message.locator(".pj-tool .pj-badge-succeeded").count() == 1
    assert message.locator(".pj-msg-body li").count() == 2
    code = message.locator(".pj-code-block pre code.language-python")
    assert code.inner_text() == CODE, "model text is shown literally (the <b> is not markup)"
    assert message.locator(".pj-msg-body b").count() == 0

    # The sidebar shows the same conversation's message: the same markup, from the same renderer.
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    in_sidebar = sidebar.evaluate(MARKUP_JS)
    in_cell = answer.evaluate(MARKUP_JS)
    assert in_sidebar == in_cell

    # Copy code puts the block's text on the clipboard.
    copy = answer.get_by_role("button", name="Copy code")
    assert copy.count() == 1
    copy.click()
    page.wait_for_function("() => document.querySelector('.jp-OutputArea .pj-copy-code').textContent === 'Copied'", timeout=5_000)
    assert page.evaluate("() => navigator.clipboard.readText()") == CODE

    page.screenshot(path=str(artifacts_dir / "ask-answer-mime.png"))

    # Saved, the output is the compact state (plus fallbacks), and a reload draws it again.
    page.locator(".jp-NotebookPanel .jp-CodeCell").nth(1).click()
    page.keyboard.press("Control+s")
    stored = wait_for_saved_answer(lab_server.root / "ask.ipynb")
    assert set(stored) >= {MIME, "text/html", "text/plain"}
    assert stored[MIME]["version"] == 1 and stored[MIME]["message"]["content"] == ANSWER
    assert stored[MIME]["message"]["toolCalls"][0]["name"] == "readFile"
    page.reload(wait_until="domcontentloaded")
    again = page.locator(".jp-OutputArea .pj-answer-output .pj-answer.pj-cell-answer-completed")
    again.wait_for(timeout=60_000)
    assert again.locator(".pj-code-block pre code").inner_text() == CODE
    unexpected = page.polaris_log.unexpected(allow=(r"favicon", r"404"))
    assert not page.polaris_log.page_errors, page.polaris_log.page_errors
    assert not [e for e in unexpected if "polaris" in e.lower() or "answer" in e.lower()], unexpected


def wait_for_saved_answer(path: Path, timeout_s: float = 30) -> dict[str, Any]:
    """The answer output's data once the notebook on disk holds it."""
    return saved_output(path, MIME, "the answer output", timeout_s)
