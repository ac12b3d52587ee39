"""Notebook tools: read with output summaries, edit and insert cells, validity, revert."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from polaris_jupyter.tools.base import ToolContext, ToolError
from polaris_jupyter.tools.edits import MemoryEditJournal
from tests.tools.conftest import call, snapshot


def _write_sample(path: Path, minor: int = 5) -> None:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    code = v4.new_code_cell("print('hi')\n1 + 1", execution_count=3)
    code.outputs = [
        v4.new_output("stream", name="stdout", text="hi\n"),
        v4.new_output("execute_result", data={"text/plain": "2", "text/html": "<b>2</b>"}, execution_count=3),
    ]
    failing = v4.new_code_cell("1/0", execution_count=4)
    failing.outputs = [v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]
    nb.cells = [v4.new_markdown_cell("# Title"), code, failing]
    if minor < 5:
        nb.nbformat_minor = minor
        for cell in nb.cells:
            cell.pop("id", None)
    path.write_text(nbformat.writes(nb))


def _read(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


@pytest.mark.asyncio
async def test_read_notebook_lists_cells_and_output_summaries(workspace: Path, ctx: ToolContext) -> None:
    _write_sample(workspace / "nb.ipynb")
    result = await call("readNotebook", {"path": "nb.ipynb"}, ctx)
    text = result.text
    assert text.startswith("nb.ipynb: 3 cells (kernel python3)")
    assert "### [0] markdown\n# Title" in text
    assert "### [1] code (execution_count 3)\nprint('hi')\n1 + 1" in text
    assert "stdout: hi" in text and "execute_result [text/html, text/plain]: 2" in text
    assert "error ZeroDivisionError: division by zero" in text
    assert result.data and [c["type"] for c in result.data["cells"]] == ["markdown", "code", "code"]
    assert result.summary == "Read nb.ipynb (3 cells)"


@pytest.mark.asyncio
async def test_edit_cell_source_clears_outputs_and_stays_valid(
    workspace: Path, ctx: ToolContext, journal: MemoryEditJournal
) -> None:
    _write_sample(workspace / "nb.ipynb")
    original = snapshot(workspace)
    result = await call("editNotebookCell", {"path": "nb.ipynb", "index": 1, "source": "x = 42"}, ctx)
    nb = _read(workspace / "nb.ipynb")
    assert nb.cells[1].source == "x = 42" and nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert nb.cells[0].source == "# Title" and nb.cells[2].outputs  # others untouched
    assert result.diff and '+    "x = 42"' in result.diff
    await call("editNotebookCell", {"path": "nb.ipynb", "index": 0, "source": "print(1)", "cellType": "code"}, ctx)
    nb = _read(workspace / "nb.ipynb")
    assert nb.cells[0].cell_type == "code" and nb.cells[0].outputs == []
    await journal.revert_run(workspace, "run-1")
    assert snapshot(workspace) == original


@pytest.mark.asyncio
async def test_insert_cells_and_create_a_notebook(workspace: Path, ctx: ToolContext) -> None:
    _write_sample(workspace / "nb.ipynb")
    await call("insertNotebookCell", {"path": "nb.ipynb", "index": 0, "source": "import os", "cellType": "code"}, ctx)
    await call("insertNotebookCell", {"path": "nb.ipynb", "index": 4, "source": "end", "cellType": "markdown"}, ctx)
    nb = _read(workspace / "nb.ipynb")
    assert [c.source for c in nb.cells] == ["import os", "# Title", "print('hi')\n1 + 1", "1/0", "end"]
    assert len({c.id for c in nb.cells}) == 5
    created = await call("insertNotebookCell",
                         {"path": "new/fresh.ipynb", "index": 0, "source": "# New", "cellType": "markdown"}, ctx)
    assert created.data and created.data["created"] is True
    assert [c.source for c in _read(workspace / "new" / "fresh.ipynb").cells] == ["# New"]


@pytest.mark.asyncio
async def test_old_minor_version_stays_valid_without_cell_ids(workspace: Path, ctx: ToolContext) -> None:
    _write_sample(workspace / "old.ipynb", minor=4)
    await call("insertNotebookCell", {"path": "old.ipynb", "index": 1, "source": "y = 1", "cellType": "code"}, ctx)
    await call("editNotebookCell", {"path": "old.ipynb", "index": 0, "source": "z", "cellType": "raw"}, ctx)
    raw = json.loads((workspace / "old.ipynb").read_text())
    assert raw["nbformat_minor"] == 4 and all("id" not in c for c in raw["cells"])
    nbformat.validate(nbformat.reads(json.dumps(raw), as_version=4))


@pytest.mark.asyncio
async def test_notebook_errors_are_clear(workspace: Path, ctx: ToolContext) -> None:
    _write_sample(workspace / "nb.ipynb")
    (workspace / "broken.ipynb").write_text("{ not json")
    (workspace / "plain.txt").write_text("x")
    (workspace / "wrong.ipynb").write_text(json.dumps({"cells": "nope", "nbformat": 4}))
    cases = [
        ("readNotebook", {"path": "missing.ipynb"}, "does not exist"),
        ("readNotebook", {"path": "broken.ipynb"}, "not a readable notebook"),
        ("readNotebook", {"path": "plain.txt"}, "not a notebook"),
        ("editNotebookCell", {"path": "wrong.ipynb", "index": 0, "source": "x"}, "notebook"),
        ("editNotebookCell", {"path": "nb.ipynb", "index": 3, "source": "x"}, "no cell 3"),
        ("editNotebookCell", {"path": "nb.ipynb", "index": -1, "source": "x"}, "at least 0"),
        ("editNotebookCell", {"path": "nb.ipynb", "index": 0, "source": "x", "cellType": "python"}, "one of"),
        ("editNotebookCell", {"path": "nb.ipynb", "index": 0}, "missing required"),
        ("insertNotebookCell", {"path": "nb.ipynb", "index": 9, "source": "x", "cellType": "code"}, "between 0 and 3"),
        ("insertNotebookCell", {"path": "nb.ipynb", "index": 0, "source": "x"}, "missing required"),
        ("insertNotebookCell", {"path": "nb.ipynb", "index": 0, "source": ["x"], "cellType": "code"}, "string"),
        ("insertNotebookCell", {"path": "../nb.ipynb", "index": 0, "source": "x", "cellType": "code"}, "outside"),
    ]
    before = snapshot(workspace)
    for name, args, message in cases:
        with pytest.raises(ToolError, match=message):
            await call(name, args, ctx)
    assert snapshot(workspace) == before
