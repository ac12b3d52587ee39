"""Explain error / Fix with Polaris in the notebook cell toolbar (issue 13 item 5): the active cell's
toolbar (JupyterLab's @jupyterlab/cell-toolbar, extended through our settings schema) shows both
buttons only while that cell's last run raised: hidden on a cell that did not raise, shown on the
saved failed cell, and shown as soon as a live run of the active cell raises. Clicking `Explain
error` there sends the explain turn: the scripted model's recorded request has the cell and its
traceback. Real ``jupyter lab``, kernel and Chromium."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_chat_context import TRACEBACK
from tests.ui.test_notebook_panel import wait_kernel_idle
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXPLANATION = "`count` is 0, so `total / count` divides by zero."


@pytest.fixture(scope="module")
def scripted_model() -> Iterator[Any]:
    """Overrides the conftest's: in-process, so the test reads the requests the model received."""
    from polaris_jupyter.testing import Response, ScriptedModelServer

    server = ScriptedModelServer.start_in_thread(responder=lambda request: Response(text=EXPLANATION), model="scripted-model")
    yield server
    server.stop()


def write_notebook(root: Path, name: str) -> str:
    """Cell 1 ran fine, cell 2's saved run raised (traceback), cell 3 has not run yet and will raise."""
    def code(cell_id: str, source: str, outputs: list[dict[str, Any]], count: int | None) -> dict[str, Any]:
        return {"cell_type": "code", "execution_count": count, "id": cell_id, "metadata": {}, "outputs": outputs, "source": source}

    error = {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": TRACEBACK}
    notebook = {
        "cells": [
            code("c0", "total = 10", [], 1),
            code("c1", "count = 0\ntotal / count", [error], 2),
            code("c2", "{}['price']", [], None),
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / name).write_text(json.dumps(notebook))
    return f"lab/workspaces/{Path(name).stem}/tree/{name}"


def toolbar_button(cell: Any, name: str) -> Any:
    """The cell toolbar's button of that accessible name (the one under the error output is not
    it), hidden ones included."""
    return cell.locator(".jp-cell-toolbar").get_by_role("button", name=name, exact=True, include_hidden=True)


def model_saw(scripted_model: Any, *needles: str, timeout_s: float = 30) -> str:
    """The messages of the first chat request the model received that contains every needle."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for request in scripted_model.chat_requests:
            text = json.dumps((request.body or {}).get("messages", []))
            if all(needle in text for needle in needles):
                return text
        time.sleep(0.25)
    raise AssertionError(f"no model request contained {needles}")


def test_cell_toolbar_offers_explain_and_fix_for_the_failed_cell(page: Any, lab_server: LabServer, scripted_model: Any,
                                                                  artifacts_dir: Path) -> None:
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(write_notebook(lab_server.root, "toolbar.ipynb")), wait_until="domcontentloaded")
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    cells.nth(2).wait_for(timeout=60_000)
    wait_kernel_idle(lab_server, "toolbar.ipynb")

    # A cell that did not raise: JupyterLab's cell toolbar is there, our buttons are not shown.
    cells.nth(0).locator(".jp-InputPrompt").click()
    cells.nth(0).locator(".jp-cell-toolbar").wait_for(timeout=15_000)
    assert toolbar_button(cells.nth(0), "Explain error").count() == 1
    assert not toolbar_button(cells.nth(0), "Explain error").is_visible()
    assert not toolbar_button(cells.nth(0), "Fix with Polaris").is_visible()

    # The saved failed cell: both shown and enabled.
    cells.nth(1).locator(".jp-InputPrompt").click()
    explain = toolbar_button(cells.nth(1), "Explain error")
    explain.wait_for(state="visible", timeout=15_000)
    assert toolbar_button(cells.nth(1), "Fix with Polaris").is_visible()
    assert explain.is_enabled() and toolbar_button(cells.nth(1), "Fix with Polaris").is_enabled()
    page.screenshot(path=str(artifacts_dir / "cell-toolbar-explain-fix.png"))

    # A live run of the active cell that raises shows them on that cell, without moving away.
    cells.nth(2).locator(".jp-InputPrompt").click()
    cells.nth(2).locator(".jp-cell-toolbar").wait_for(timeout=15_000)
    assert not toolbar_button(cells.nth(2), "Explain error").is_visible()
    page.keyboard.press("Control+Enter")  # run in place: the cell stays active
    cells.nth(2).locator(".jp-OutputArea-output").wait_for(timeout=30_000)
    toolbar_button(cells.nth(2), "Explain error").wait_for(state="visible", timeout=15_000)
    page.screenshot(path=str(artifacts_dir / "cell-toolbar-after-run.png"))

    # Explain from the saved failed cell's toolbar: the explain turn reaches the model with the
    # cell and its traceback.
    cells.nth(1).locator(".jp-InputPrompt").click()
    toolbar_button(cells.nth(1), "Explain error").click()
    sidebar = page.locator("#polaris-sidebar")
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)
    assert "divides by zero" in sidebar.locator(".pj-msg-assistant .pj-msg-body").inner_text()
    sent = model_saw(scripted_model, "Explain the error in cell 2 of toolbar.ipynb")
    assert "ZeroDivisionError" in sent and "division by zero" in sent and "total / count" in sent
    page.screenshot(path=str(artifacts_dir / "cell-toolbar-explained.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
