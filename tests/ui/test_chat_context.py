"""Context chips in the sidebar chat against a real ``jupyter lab`` (issue 13 item 1): with a
notebook open, the chips above the input name the notebook, the active cell and its outputs;
a removed chip is not sent; what is kept reaches the model's context block (the server stores
the block the model received on the user message) and the sent message shows its chips."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MODEL_SCRIPT: list[dict[str, Any]] = [{"text": "The division by zero comes from `total / count`."}]

TRACEBACK = [
    "\x1b[0;31mZeroDivisionError\x1b[0m                         Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[2], line 2\x1b[0m\n\x1b[1;32m      1\x1b[0m count \x1b[38;5;241m=\x1b[39m \x1b[38;5;241m0\x1b[39m\n\x1b[0;32m----> 2\x1b[0m total \x1b[38;5;241m/\x1b[39m count",
    "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
]


def write_notebook(root: Path, name: str) -> str:
    """A notebook whose second cell raised (its error output saved with the traceback)."""
    cells = [
        {"cell_type": "code", "execution_count": 1, "id": "c0", "metadata": {}, "outputs": [], "source": "total = 10"},
        {
            "cell_type": "code",
            "execution_count": 2,
            "id": "c1",
            "metadata": {},
            "outputs": [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": TRACEBACK}],
            "source": "count = 0\ntotal / count",
        },
    ]
    notebook = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / name).write_text(json.dumps(notebook))
    return f"lab/workspaces/{Path(name).stem}/tree/{name}"


def user_message(lab_server: LabServer, timeout_s: float = 30,
                 where: Callable[[dict[str, Any]], bool] = lambda context: bool(context.get("block")),
                 what: str = "a context block") -> dict[str, Any]:
    """The first stored user message (of any conversation) whose context passes ``where``; by
    default the first one whose context block is stored."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, conversations = lab_server.get("/polaris/api/v1/conversations")
        for conversation in (conversations or {}).get("data", []):
            _, messages = lab_server.get(f"/polaris/api/v1/conversations/{conversation['id']}/messages")
            for message in (messages or {}).get("data", []):
                if message["role"] == "user" and where(message.get("context") or {}):
                    return message
        time.sleep(0.25)
    raise AssertionError(f"no user message with {what} was stored")


def test_chips_name_the_notebook_cell_and_outputs_and_are_sent(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    open_lab(page, lab_server)
    page.goto(lab_server.lab_url(write_notebook(lab_server.root, "ctx.ipynb")), wait_until="domcontentloaded")
    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    cells.nth(1).wait_for(timeout=60_000)
    cells.nth(1).locator(".jp-InputPrompt").click()  # the failing cell is the active one
    sidebar = open_sidebar(page)

    chips = sidebar.locator(".pj-context-chips")
    chips.get_by_role("button", name="Remove Outputs of cell 2").wait_for(timeout=10_000)
    labels = chips.locator(".pj-chip-label").all_inner_texts()
    assert labels == ["ctx.ipynb", "Cell 2", "Outputs of cell 2"]
    page.screenshot(path=str(artifacts_dir / "chat-context-chips.png"))

    # The notebook chip is removed: it is not offered again and not sent.
    chips.get_by_role("button", name="Remove ctx.ipynb").click()
    assert chips.locator(".pj-chip-label").all_inner_texts() == ["Cell 2", "Outputs of cell 2"]

    box = sidebar.locator("textarea.pj-chat-input")
    box.click()
    box.fill("Why does this fail?")
    box.press("Enter")
    sidebar.locator(".pj-msg-assistant.pj-msg-status-completed").wait_for(timeout=30_000)

    message = user_message(lab_server)
    attachments = message["context"]["attachments"]
    assert [(a["kind"], a.get("cellIndex")) for a in attachments] == [("cell", 1), ("outputs", 1)]
    block = message["context"]["block"]
    assert "total / count" in block  # the cell's source
    assert "ZeroDivisionError" in block and "division by zero" in block  # the traceback
    assert "total = 10" not in block  # the removed notebook chip (the other cell) was not sent

    sent = sidebar.locator(".pj-msg-user .pj-msg-attachments .pj-chip-label")
    sent.first.wait_for(timeout=10_000)
    assert sent.all_inner_texts() == ["Cell 2", "Outputs of cell 2"]
    page.screenshot(path=str(artifacts_dir / "chat-context-sent.png"))
    assert not page.polaris_log.unexpected(ALLOWED_ERRORS)
