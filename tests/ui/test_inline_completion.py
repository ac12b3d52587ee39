"""Inline completions (ghost text) in a real JupyterLab + Chromium: typing in a notebook cell
brings a suggestion from the scripted model (through the Polaris provider and the streamed
route), Tab accepts it into the cell, and the server counts the accept. Screenshots go to
test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.ui.conftest import LabServer
from tests.ui.test_notebook_panel import make_notebook
from tests.ui.test_sidebar_smoke import open_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SUGGESTION = " math.pi * r ** 2"


def completions(request: dict[str, Any]) -> Any:
    """A completion request (a ``prompt``, no ``messages``) after ``return`` in the area function
    gets the formula in a few streamed pieces, other completions nothing; chat a short reply."""
    from polaris_jupyter.testing import Response

    if "messages" not in request:
        prompt = str(request.get("prompt", ""))
        if "def area" in prompt and prompt.rstrip().endswith("return"):
            return Response(tokens=[" math", ".pi", " * r", " ** 2"], ttft_s=0.05, delay_s=0.05)
        if prompt.rstrip().endswith("= slow"):  # a suggestion that takes 20 s to write
            return Response(tokens=[" x"] * 400, ttft_s=0.05, delay_s=0.05)
        return Response(text="")
    return Response(text="ok")


@pytest.fixture(scope="module")
def scripted_model() -> Iterator[Any]:
    """Overrides the conftest's: an in-process scripted model, so the test can read its requests."""
    from polaris_jupyter.testing import ScriptedModelServer

    server = ScriptedModelServer.start_in_thread(responder=completions, model="scripted-coder")
    yield server
    server.stop()


def test_ghost_text_appears_and_tab_accepts_it(page: Any, lab_server: LabServer, scripted_model: Any,
                                               artifacts_dir: Path) -> None:
    from polaris_jupyter.testing._completion_handler import completion_requests

    url = make_notebook(lab_server.root, "ghost.ipynb", "import math", "")
    open_lab(page, lab_server)
    page.goto(f"{lab_server.url}/{url}?token=x", wait_until="domcontentloaded")
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    cells.nth(1).wait_for(timeout=60_000)
    editor = cells.nth(1).locator(".jp-InputArea-editor .cm-content")
    editor.click()
    page.keyboard.type("def area(r):")
    page.keyboard.press("Enter")
    page.keyboard.type("return")

    ghost = page.locator(".jp-GhostText")
    ghost.wait_for(state="visible", timeout=30_000)
    page.wait_for_function(
        "(want) => (document.querySelector('.jp-GhostText')?.textContent || '').includes(want)",
        arg=SUGGESTION.strip(), timeout=30_000,
    )
    page.screenshot(path=str(artifacts_dir / "inline-completion-ghost.png"))

    page.keyboard.press("Tab")
    page.wait_for_function(
        "(want) => (document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')[1]"
        "?.querySelector('.cm-content')?.textContent || '').includes(want)",
        arg="return" + SUGGESTION, timeout=10_000,
    )
    assert ghost.count() == 0 or not ghost.first.is_visible()
    source = editor.inner_text()
    assert "def area(r):" in source and ("return" + SUGGESTION) in source
    page.screenshot(path=str(artifacts_dir / "inline-completion-accepted.png"))

    # What the model was asked: fill-in-the-middle with the cell above as context.
    asked = [r for r in completion_requests(scripted_model) if "def area" in str((r.body or {}).get("prompt", ""))]
    assert asked, "the scripted model saw no completion request"
    body = asked[0].body or {}
    assert body["prompt"].startswith("import math") and body["prompt"].rstrip().endswith("return")
    assert "suffix" in body and body.get("stream") is True
    # The accept reached the server's metrics (JupyterLab's accept command ran).
    metrics = wait_until(
        lambda: (m := lab_server.get("/polaris/api/v1/completions/metrics")[1]) and m["feedback"]["accepted"] >= 1 and m,
        20, "the accept counted",
    )
    assert metrics["counts"].get("COMPLETED", 0) >= 1 and metrics["acceptRate"] is not None
    assert page.polaris_log.unexpected(allow=(r"favicon", r"404")) == []


def test_typing_on_aborts_the_suggestion_in_flight(page: Any, lab_server: LabServer, scripted_model: Any) -> None:
    """The next keystroke aborts the running fetch: the server cancels the completion and the
    scripted model sees its stream's connection go long before the suggestion was written."""
    from polaris_jupyter.testing._completion_handler import completion_requests

    url = make_notebook(lab_server.root, "typing.ipynb", "")
    open_lab(page, lab_server)
    page.goto(f"{lab_server.url}/{url}?token=x", wait_until="domcontentloaded")
    editor = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-editor .cm-content").first
    editor.wait_for(timeout=60_000)
    editor.click()
    page.keyboard.type("total = slow")
    page.wait_for_function("() => (document.querySelector('.jp-GhostText')?.textContent || '').includes('x x')",
                           timeout=30_000)
    slow = wait_until(lambda: [r for r in completion_requests(scripted_model)
                               if str((r.body or {}).get("prompt", "")).rstrip().endswith("= slow")], 10, "the slow request")
    assert not slow[-1].finished  # still streaming while the ghost text grows
    page.keyboard.type(" + 1")
    wait_until(lambda: slow[-1].finished, 10, "the slow model stream closed")
    assert slow[-1].client_disconnected and slow[-1].tokens_sent < 400
    metrics = wait_until(lambda: (m := lab_server.get("/polaris/api/v1/completions/metrics")[1])
                         and m["cancelReasons"] and m, 10, "the cancel counted")
    # "cancelled": the provider aborted its fetch at the keystroke, before the next request (sent
    # after the debounce) could supersede it on the server.
    assert "cancelled" in metrics["cancelReasons"]


def test_ghost_text_in_a_file_editor(page: Any, lab_server: LabServer, scripted_model: Any,
                                     artifacts_dir: Path) -> None:
    """The same provider serves JupyterLab's file editor: a .py file gets the suggestion, with the
    file's own text before the cursor as the prompt, and Tab accepts it."""
    from polaris_jupyter.testing._completion_handler import completion_requests

    (lab_server.root / "geometry.py").write_text("import math\n\n\n")
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url("lab/tree/geometry.py"), wait_until="domcontentloaded")
    editor = page.locator(".jp-FileEditor .cm-content")
    editor.wait_for(timeout=60_000)
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("def area(r):")
    page.keyboard.press("Enter")
    page.keyboard.type("return")
    page.wait_for_function(
        "(want) => (document.querySelector('.jp-FileEditor .jp-GhostText')?.textContent || '').includes(want)",
        arg=SUGGESTION.strip(), timeout=30_000,
    )
    page.screenshot(path=str(artifacts_dir / "inline-completion-file-editor.png"))
    page.keyboard.press("Tab")
    page.wait_for_function(
        "(want) => (document.querySelector('.jp-FileEditor .cm-content')?.textContent || '').includes(want)",
        arg="return" + SUGGESTION, timeout=10_000,
    )
    asked = [r for r in completion_requests(scripted_model)
             if str((r.body or {}).get("prompt", "")).startswith("import math\n\n\ndef area")]
    assert asked, "the file's text was not the prompt"
    assert page.polaris_log.unexpected(allow=(r"favicon", r"404")) == []
