"""deleteNotebookCell and moveNotebookCell (by index or cell id, journalled, revertible) and the
output summaries every notebook tool shares (tracebacks without colours, images as sizes)."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat import v4

from polaris_jupyter.tools import load_all
from polaris_jupyter.tools.base import ToolContext, ToolError, ToolRegistry, ToolResult
from polaris_jupyter.tools.edits import MemoryEditJournal
from polaris_jupyter.tools.notebook_format import image_size, summarise_output, summarise_outputs
from tests.tools.conftest import snapshot

REGISTRY = load_all(ToolRegistry())


async def run_tool(name: str, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    tool = REGISTRY.get(name)
    assert tool is not None, name
    out = await tool.fn(args, ctx)
    assert isinstance(out, ToolResult)
    return out


def write_cells(path: Path, sources: list[str]) -> list[str]:
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell(s) for s in sources]
    path.write_text(nbformat.writes(nb))
    return [c.id for c in nb.cells]


def sources(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return [c.source for c in nb.cells]


def png(width: int, height: int) -> str:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode()


@pytest.mark.asyncio
async def test_delete_by_index_and_by_id_then_revert(workspace: Path, ctx: ToolContext, journal: MemoryEditJournal) -> None:
    ids = write_cells(workspace / "nb.ipynb", ["a = 1", "b = 2", "c = 3", "d = 4"])
    original = snapshot(workspace)
    result = await run_tool("deleteNotebookCell", {"path": "nb.ipynb", "index": 1}, ctx)
    assert sources(workspace / "nb.ipynb") == ["a = 1", "c = 3", "d = 4"]
    assert result.diff and any(line.startswith("-") and "b = 2" in line for line in result.diff.splitlines())
    assert result.data and result.data["cellId"] == ids[1]
    # by id: "d = 4" is now at index 2, its id still names it
    await run_tool("deleteNotebookCell", {"path": "nb.ipynb", "cellId": ids[3]}, ctx)
    assert sources(workspace / "nb.ipynb") == ["a = 1", "c = 3"]
    await journal.revert_run(workspace, "run-1")
    assert snapshot(workspace) == original


@pytest.mark.asyncio
async def test_move_up_down_and_by_id(workspace: Path, ctx: ToolContext, journal: MemoryEditJournal) -> None:
    ids = write_cells(workspace / "nb.ipynb", ["a", "b", "c", "d"])
    original = snapshot(workspace)
    await run_tool("moveNotebookCell", {"path": "nb.ipynb", "index": 0, "toIndex": 2}, ctx)
    assert sources(workspace / "nb.ipynb") == ["b", "c", "a", "d"]
    await run_tool("moveNotebookCell", {"path": "nb.ipynb", "cellId": ids[3], "toIndex": 0}, ctx)
    assert sources(workspace / "nb.ipynb") == ["d", "b", "c", "a"]
    same = await run_tool("moveNotebookCell", {"path": "nb.ipynb", "index": 1, "toIndex": 1}, ctx)
    assert "nothing changed" in same.text and same.diff is None
    nb = nbformat.read(workspace / "nb.ipynb", as_version=4)
    assert [c.id for c in nb.cells] == [ids[3], ids[1], ids[2], ids[0]]  # ids travel with their cells
    await journal.revert_run(workspace, "run-1")
    assert snapshot(workspace) == original


@pytest.mark.asyncio
async def test_delete_and_move_errors_change_nothing(workspace: Path, ctx: ToolContext) -> None:
    ids = write_cells(workspace / "nb.ipynb", ["a", "b"])
    (workspace / "plain.txt").write_text("x")
    cases = [
        ("deleteNotebookCell", {"path": "nb.ipynb"}, "name the cell"),
        ("deleteNotebookCell", {"path": "nb.ipynb", "index": 2}, "no cell 2"),
        ("deleteNotebookCell", {"path": "nb.ipynb", "cellId": "nope"}, "no cell with id 'nope'"),
        ("deleteNotebookCell", {"path": "nb.ipynb", "index": 0, "cellId": ids[1]}, "is at index 1, not 0"),
        ("deleteNotebookCell", {"path": "../nb.ipynb", "index": 0}, "outside"),
        ("deleteNotebookCell", {"path": "plain.txt", "index": 0}, "not a notebook"),
        ("deleteNotebookCell", {"path": "missing.ipynb", "index": 0}, "does not exist"),
        ("moveNotebookCell", {"path": "nb.ipynb", "index": 0}, "missing required"),
        ("moveNotebookCell", {"path": "nb.ipynb", "index": 0, "toIndex": 2}, "between 0 and 1"),
        ("moveNotebookCell", {"path": "nb.ipynb", "index": 0, "toIndex": -1}, "at least 0"),
        ("moveNotebookCell", {"path": "nb.ipynb", "index": 0, "toIndex": 1, "extra": 1}, "unknown argument"),
    ]
    before = snapshot(workspace)
    for name, args, message in cases:
        with pytest.raises(ToolError, match=message):
            await run_tool(name, args, ctx)
    assert snapshot(workspace) == before


def test_error_summary_has_the_traceback_tail_without_colours() -> None:
    frames = [f"\x1b[0;31mFile /x.py:{i}\x1b[0m in f{i}()" for i in range(30)]
    output = v4.new_output("error", ename="KeyError", evalue="'price'", traceback=[*frames, "\x1b[1;31mKeyError\x1b[0m: 'price'"])
    text = summarise_output(output)
    assert text.startswith("error KeyError: 'price'")
    assert "\x1b" not in text and "File /x.py:29 in f29()" in text and "File /x.py:5 " not in text
    assert text.rstrip().endswith("KeyError: 'price'")


def test_images_are_summarised_as_sizes_never_base64() -> None:
    data = png(640, 480)
    assert image_size("image/png", data) == (640, 480)
    output = v4.new_output("display_data", data={"image/png": data, "text/plain": "<Figure size 640x480>"})
    text = summarise_output(output)
    assert "image/png 640×480" in text and data[:20] not in text
    by_metadata = v4.new_output("display_data", data={"image/jpeg": "bm90IGEganBlZw=="},
                                metadata={"image/jpeg": {"width": 32, "height": 16}})
    assert "image/jpeg 32×16" in summarise_output(by_metadata)


def test_long_outputs_are_capped_and_say_so() -> None:
    outputs = [v4.new_output("stream", name="stdout", text=f"line {i}\n" * 500) for i in range(30)]
    text, truncated = summarise_outputs(outputs, max_chars=2000)
    assert truncated and len(text) < 2600 and "more outputs not shown" in text
    assert "characters not shown" in text  # a long stream keeps its start and its end
