"""Notebook tools: read, edit, insert, delete and move cells (through nbformat).

Cells are addressed by 0-based index (delete and move also take the cell's ``cellId``, which
survives inserts and moves). Running a cell is ``notebook_run.py``, proposing an edit the user
applies is ``notebook_proposals.py``; both use the loading and saving here. Every change is validated against the nbformat schema
before it is written, so a tool call can never leave a notebook that Jupyter refuses to open;
writes are atomic and journalled like writeFile's. Editing a code cell clears its outputs (they
would describe code that is no longer there).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from polaris_jupyter.tools._args import check_args, get_int, get_str, os_errors_as_tool_errors
from polaris_jupyter.tools._fileio import read_existing
from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolResult, cap_text
from polaris_jupyter.tools.edits import journal_edit, journal_folder
from polaris_jupyter.tools.notebook_format import (
    CELL_TYPES,
    cell_source,
    find_cell,
    parse_notebook,
    render_notebook,
    serialize_notebook,
)
from polaris_jupyter.tools.sandbox import (
    atomic_write_bytes,
    relative_to_root,
    resolve_path,
    resolve_writable_path,
)

__all__ = ["CELL_ARGS", "TOOLS", "cell_ref", "check_ipynb", "load_notebook", "notebook_schema", "save_notebook"]


def check_ipynb(rel: str) -> None:
    if not rel.endswith(".ipynb"):
        raise ToolError(f"{rel!r} is not a notebook (.ipynb); use readFile/writeFile for other files")


def _load_sync(root: Path, path: str | None, writable: bool) -> tuple[Path, str, bytes | None, NotebookNode | None]:
    target = resolve_writable_path(root, path) if writable else resolve_path(root, path, must_exist=True)
    rel = relative_to_root(root, target)
    check_ipynb(rel)
    if os.path.isdir(target):
        raise ToolError(f"{rel!r} is a folder, not a notebook")
    raw = read_existing(target)
    return target, rel, raw, None if raw is None else parse_notebook(raw, rel)


async def load_notebook(ctx: ToolContext, path: str | None, *, writable: bool, allow_missing: bool = False
                        ) -> tuple[Path, str, bytes | None, NotebookNode | None]:
    """Resolve ``path`` by the workspace rules and parse it: (file, workspace path, bytes, notebook);
    bytes and notebook are None for a missing file when ``allow_missing``."""
    target, rel, raw, nb = await asyncio.to_thread(_load_sync, ctx.root, path, writable)
    if raw is None and not allow_missing:
        raise ToolError(f"{rel!r} does not exist in the workspace")
    return target, rel, raw, nb


def _missing_folders(root: Path, folder: Path) -> list[str]:
    missing: list[str] = []
    while not folder.exists():
        missing.append(relative_to_root(root, folder))
        folder = folder.parent
    return list(reversed(missing))


async def save_notebook(ctx: ToolContext, target: Path, rel: str, before: bytes | None, nb: NotebookNode) -> str:
    """Validate and write ``nb`` atomically, journalled first (revertible); returns the diff."""
    after = await asyncio.to_thread(serialize_notebook, nb, rel)
    if before is None:
        for folder_rel in await asyncio.to_thread(_missing_folders, ctx.root, target.parent):
            await journal_folder(ctx, folder_rel, existed=False)
    diff = await journal_edit(ctx, rel, before, after)
    await asyncio.to_thread(atomic_write_bytes, ctx.root, target, after)
    return diff


def cell_ref(args: dict[str, Any]) -> tuple[int | None, str | None]:
    """The cell an ``index`` / ``cellId`` pair names (at least one must be given)."""
    index = get_int(args, "index", min_value=0)
    cell_id = get_str(args, "cellId", max_chars=256)
    if index is None and cell_id is None:
        raise ToolError("name the cell: give its 0-based index (or its cellId)")
    return index, cell_id


def _cell_type(args: dict[str, Any], name: str, default: str | None) -> str | None:
    value = get_str(args, name, default=default)
    if value is not None and value not in CELL_TYPES:
        raise ToolError(f"{name} must be one of {', '.join(CELL_TYPES)}, got {value!r}")
    return value


def _new_cell(nb: NotebookNode, cell_type: str, source: str) -> NotebookNode:
    maker = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
             "raw": nbformat.v4.new_raw_cell}[cell_type]
    cell = maker(source=source)
    if (nb.nbformat, nb.nbformat_minor) < (4, 5):
        cell.pop("id", None)  # cell ids are only valid from nbformat 4.5 on
    return cell


async def read_notebook(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("readNotebook", args, ("path",), ("path",))
    _, rel, _, nb = await load_notebook(ctx, get_str(args, "path"), writable=False)
    assert nb is not None
    text, truncated = cap_text(render_notebook(nb, rel))
    cells = [{"index": i, "type": c.cell_type, "source": cell_source(c)[:2000], "outputs": len(c.get("outputs") or [])}
             for i, c in enumerate(nb.cells[:500])]
    return ToolResult(text, summary=f"Read {rel} ({len(nb.cells)} cells)", truncated=truncated,
                      data={"path": rel, "cells": cells})


async def edit_notebook_cell(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("editNotebookCell", args, ("path", "index", "source", "cellType"), ("path", "index", "source"))
    index = get_int(args, "index", min_value=0)
    source = get_str(args, "source") or ""
    new_type = _cell_type(args, "cellType", None)
    target, rel, before, nb = await load_notebook(ctx, get_str(args, "path"), writable=True)
    assert nb is not None and index is not None
    if index >= len(nb.cells):
        raise ToolError(f"{rel!r} has {len(nb.cells)} cells (indices 0-{len(nb.cells) - 1}); there is no cell {index}")
    old = nb.cells[index]
    if new_type and new_type != old.cell_type:
        cell = _new_cell(nb, new_type, source)
        if "id" in old and "id" in cell:
            cell["id"] = old["id"]
        cell["metadata"] = old.get("metadata", {})
        nb.cells[index] = cell
    else:
        old["source"] = source
        if old.cell_type == "code":
            old["outputs"] = []
            old["execution_count"] = None
    diff = await save_notebook(ctx, target, rel, before, nb)
    kind = nb.cells[index].cell_type
    return ToolResult(f"Cell {index} of {rel} is now a {kind} cell with the new source.",
                      summary=f"Edited cell {index} of {rel}", diff=diff, data={"path": rel, "index": index})


async def insert_notebook_cell(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("insertNotebookCell", args, ("path", "index", "source", "cellType"),
                      ("path", "index", "source", "cellType"))
    index = get_int(args, "index", min_value=0)
    source = get_str(args, "source") or ""
    cell_type = _cell_type(args, "cellType", "code") or "code"
    target, rel, before, nb = await load_notebook(ctx, get_str(args, "path"), writable=True, allow_missing=True)
    assert index is not None
    created = nb is None
    if nb is None:
        nb = nbformat.v4.new_notebook()
    if index > len(nb.cells):
        raise ToolError(f"{rel!r} has {len(nb.cells)} cells; index must be between 0 and {len(nb.cells)} (append)")
    nb.cells.insert(index, _new_cell(nb, cell_type, source))
    diff = await save_notebook(ctx, target, rel, before, nb)
    verb = "Created" if created else "Updated"
    return ToolResult(f"{verb} {rel}: inserted a {cell_type} cell at index {index} ({len(nb.cells)} cells now).",
                      summary=f"Inserted cell {index} in {rel}", diff=diff,
                      data={"path": rel, "index": index, "created": created})


async def delete_notebook_cell(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("deleteNotebookCell", args, ("path", "index", "cellId"), ("path",))
    index, cell_id = cell_ref(args)
    target, rel, before, nb = await load_notebook(ctx, get_str(args, "path"), writable=True)
    assert nb is not None
    position = find_cell(nb, rel, index, cell_id)
    removed = nb.cells.pop(position)
    diff = await save_notebook(ctx, target, rel, before, nb)
    first_line = (cell_source(removed).strip().splitlines() or [""])[0][:80]
    return ToolResult(f"Deleted {removed.cell_type} cell {position} of {rel} ({first_line!r}); "
                      f"{len(nb.cells)} cells left, later cells moved up by one.",
                      summary=f"Deleted cell {position} of {rel}", diff=diff,
                      data={"path": rel, "index": position, "cellId": removed.get("id")})


async def move_notebook_cell(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("moveNotebookCell", args, ("path", "index", "cellId", "toIndex"), ("path", "toIndex"))
    index, cell_id = cell_ref(args)
    to_index = get_int(args, "toIndex", min_value=0)
    target, rel, before, nb = await load_notebook(ctx, get_str(args, "path"), writable=True)
    assert nb is not None and to_index is not None
    position = find_cell(nb, rel, index, cell_id)
    if to_index >= len(nb.cells):
        raise ToolError(f"toIndex must be between 0 and {len(nb.cells) - 1} (the cell's index after the move), got {to_index}")
    if to_index == position:
        return ToolResult(f"Cell {position} of {rel} is already at index {to_index}; nothing changed.",
                          summary=f"Cell {position} of {rel} stays", data={"path": rel, "index": position})
    nb.cells.insert(to_index, nb.cells.pop(position))
    diff = await save_notebook(ctx, target, rel, before, nb)
    return ToolResult(f"Moved cell {position} of {rel} to index {to_index}; the cells between shifted by one.",
                      summary=f"Moved cell {position} → {to_index} in {rel}", diff=diff,
                      data={"path": rel, "from": position, "to": to_index})


def notebook_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_PATH = {"type": "string", "description": "Notebook path (.ipynb) relative to the workspace root."}
_INDEX = {"type": "integer", "minimum": 0, "description": "0-based cell index, as shown by readNotebook."}
_SOURCE = {"type": "string", "description": "The complete new source of the cell."}
_TYPE = {"type": "string", "enum": list(CELL_TYPES), "description": "Cell type."}
#: How tools name a cell: its index, or its id (from readNotebook's data or the user's context).
CELL_ARGS: dict[str, Any] = {
    "path": _PATH,
    "index": _INDEX,
    "cellId": {"type": "string", "maxLength": 256, "description": "The cell's id (instead of, or to check, index)."},
}

TOOLS: list[Tool] = [
    Tool(
        name="readNotebook",
        description="Read a Jupyter notebook: every cell with its 0-based index, type, source and a short summary of its outputs.",
        parameters=notebook_schema({"path": _PATH}, ["path"]),
        fn=os_errors_as_tool_errors(read_notebook),
        group="notebook",
    ),
    Tool(
        name="editNotebookCell",
        description=(
            "Replace the source of one notebook cell (0-based index), optionally changing its type. "
            "A code cell's old outputs are cleared. The notebook stays valid; the edit can be reverted."
        ),
        parameters=notebook_schema({"path": _PATH, "index": _INDEX, "source": _SOURCE, "cellType": _TYPE},
                           ["path", "index", "source"]),
        fn=os_errors_as_tool_errors(edit_notebook_cell),
        group="notebook",
    ),
    Tool(
        name="insertNotebookCell",
        description=(
            "Insert a new cell before the given 0-based index (index = number of cells appends). "
            "Creates the notebook if it does not exist yet. The edit can be reverted."
        ),
        parameters=notebook_schema({"path": _PATH, "index": _INDEX, "source": _SOURCE, "cellType": _TYPE},
                           ["path", "index", "source", "cellType"]),
        fn=os_errors_as_tool_errors(insert_notebook_cell),
        group="notebook",
    ),
    Tool(
        name="deleteNotebookCell",
        description="Delete one notebook cell (by 0-based index or cellId); later cells move up. The edit can be reverted.",
        parameters=notebook_schema(dict(CELL_ARGS), ["path"]),
        fn=os_errors_as_tool_errors(delete_notebook_cell),
        group="notebook",
    ),
    Tool(
        name="moveNotebookCell",
        description=(
            "Move one notebook cell (by 0-based index or cellId) so that it ends up at toIndex; "
            "the cells between shift by one. The edit can be reverted."
        ),
        parameters=notebook_schema(
            {**CELL_ARGS, "toIndex": {"type": "integer", "minimum": 0, "description": "The cell's index after the move."}},
            ["path", "toIndex"],
        ),
        fn=os_errors_as_tool_errors(move_notebook_cell),
        group="notebook",
    ),
]
