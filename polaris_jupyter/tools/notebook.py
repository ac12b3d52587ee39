"""Notebook tools: readNotebook, editNotebookCell, insertNotebookCell (through nbformat).

Cells are addressed by 0-based index. Every change is validated against the nbformat schema
before it is written, so a tool call can never leave a notebook that Jupyter refuses to open;
writes are atomic and journalled like writeFile's. Editing a code cell clears its outputs (they
would describe code that is no longer there).
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.validator import ValidationError

from polaris_jupyter.tools._args import check_args, get_int, get_str, os_errors_as_tool_errors
from polaris_jupyter.tools._fileio import read_existing
from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolResult, cap_text
from polaris_jupyter.tools.edits import journal_edit, journal_folder
from polaris_jupyter.tools.sandbox import (
    atomic_write_bytes,
    relative_to_root,
    resolve_path,
    resolve_writable_path,
)

__all__ = ["TOOLS"]

CELL_TYPES = ("code", "markdown", "raw")
MAX_NOTEBOOK_BYTES = 20_000_000
_OUTPUT_PREVIEW_CHARS = 300


def _check_ipynb(rel: str) -> None:
    if not rel.endswith(".ipynb"):
        raise ToolError(f"{rel!r} is not a notebook (.ipynb); use readFile/writeFile for other files")


def _parse(raw: bytes, rel: str) -> NotebookNode:
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise ToolError(f"{rel!r} is {len(raw):,} bytes, larger than the {MAX_NOTEBOOK_BYTES:,} bytes notebooks may have here")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return nbformat.reads(raw.decode("utf-8"), as_version=4)
    except (UnicodeDecodeError, json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
        raise ToolError(f"{rel!r} is not a readable notebook: {exc}") from None
    except Exception as exc:  # nbformat raises assorted errors for malformed documents
        raise ToolError(f"{rel!r} is not a valid notebook: {exc}") from None


def _serialize(nb: NotebookNode, rel: str) -> bytes:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nbformat.validate(nb)
            return (nbformat.writes(nb, version=4) + "\n").encode("utf-8")
    except ValidationError as exc:
        raise ToolError(f"the change would make {rel!r} an invalid notebook: {exc.message}") from None


def _source(cell: NotebookNode) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _summarise_output(output: NotebookNode) -> str:
    kind = output.get("output_type", "?")
    if kind == "stream":
        text = _source(NotebookNode(source=output.get("text", "")))
        return f"{output.get('name', 'stream')}: {text.strip()[:_OUTPUT_PREVIEW_CHARS]}"
    if kind == "error":
        return f"error {output.get('ename', '')}: {str(output.get('evalue', ''))[:_OUTPUT_PREVIEW_CHARS]}"
    data = output.get("data", {}) or {}
    mimes = ", ".join(sorted(data)) or "no data"
    plain = data.get("text/plain")
    if plain is not None:
        plain_text = "".join(plain) if isinstance(plain, list) else str(plain)
        return f"{kind} [{mimes}]: {plain_text.strip()[:_OUTPUT_PREVIEW_CHARS]}"
    return f"{kind} [{mimes}]"


def _render(nb: NotebookNode, rel: str) -> str:
    kernel = (nb.metadata.get("kernelspec") or {}).get("name", "unknown")
    parts = [f"{rel}: {len(nb.cells)} cells (kernel {kernel}); indices are 0-based"]
    for index, cell in enumerate(nb.cells):
        count = cell.get("execution_count")
        label = f"[{index}] {cell.cell_type}" + (f" (execution_count {count})" if count is not None else "")
        parts.append(f"\n### {label}\n{_source(cell)}")
        outputs = cell.get("outputs") or []
        if outputs:
            summaries = [_summarise_output(o) for o in outputs[:5]]
            more = f"\n  … and {len(outputs) - 5} more outputs" if len(outputs) > 5 else ""
            parts.append("--- outputs:\n  " + "\n  ".join(summaries) + more)
    return "\n".join(parts)


def _load_sync(root: Path, path: str | None, writable: bool) -> tuple[Path, str, bytes | None, NotebookNode | None]:
    target = resolve_writable_path(root, path) if writable else resolve_path(root, path, must_exist=True)
    rel = relative_to_root(root, target)
    _check_ipynb(rel)
    if os.path.isdir(target):
        raise ToolError(f"{rel!r} is a folder, not a notebook")
    raw = read_existing(target)
    return target, rel, raw, None if raw is None else _parse(raw, rel)


async def _load(ctx: ToolContext, path: str | None, *, writable: bool, allow_missing: bool = False
                ) -> tuple[Path, str, bytes | None, NotebookNode | None]:
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


async def _save(ctx: ToolContext, target: Path, rel: str, before: bytes | None, nb: NotebookNode) -> str:
    after = await asyncio.to_thread(_serialize, nb, rel)
    if before is None:
        for folder_rel in await asyncio.to_thread(_missing_folders, ctx.root, target.parent):
            await journal_folder(ctx, folder_rel, existed=False)
    diff = await journal_edit(ctx, rel, before, after)
    await asyncio.to_thread(atomic_write_bytes, ctx.root, target, after)
    return diff


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
    _, rel, _, nb = await _load(ctx, get_str(args, "path"), writable=False)
    assert nb is not None
    text, truncated = cap_text(_render(nb, rel))
    cells = [{"index": i, "type": c.cell_type, "source": _source(c)[:2000], "outputs": len(c.get("outputs") or [])}
             for i, c in enumerate(nb.cells[:500])]
    return ToolResult(text, summary=f"Read {rel} ({len(nb.cells)} cells)", truncated=truncated,
                      data={"path": rel, "cells": cells})


async def edit_notebook_cell(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("editNotebookCell", args, ("path", "index", "source", "cellType"), ("path", "index", "source"))
    index = get_int(args, "index", min_value=0)
    source = get_str(args, "source") or ""
    new_type = _cell_type(args, "cellType", None)
    target, rel, before, nb = await _load(ctx, get_str(args, "path"), writable=True)
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
    diff = await _save(ctx, target, rel, before, nb)
    kind = nb.cells[index].cell_type
    return ToolResult(f"Cell {index} of {rel} is now a {kind} cell with the new source.",
                      summary=f"Edited cell {index} of {rel}", diff=diff, data={"path": rel, "index": index})


async def insert_notebook_cell(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("insertNotebookCell", args, ("path", "index", "source", "cellType"),
                      ("path", "index", "source", "cellType"))
    index = get_int(args, "index", min_value=0)
    source = get_str(args, "source") or ""
    cell_type = _cell_type(args, "cellType", "code") or "code"
    target, rel, before, nb = await _load(ctx, get_str(args, "path"), writable=True, allow_missing=True)
    assert index is not None
    created = nb is None
    if nb is None:
        nb = nbformat.v4.new_notebook()
    if index > len(nb.cells):
        raise ToolError(f"{rel!r} has {len(nb.cells)} cells; index must be between 0 and {len(nb.cells)} (append)")
    nb.cells.insert(index, _new_cell(nb, cell_type, source))
    diff = await _save(ctx, target, rel, before, nb)
    verb = "Created" if created else "Updated"
    return ToolResult(f"{verb} {rel}: inserted a {cell_type} cell at index {index} ({len(nb.cells)} cells now).",
                      summary=f"Inserted cell {index} in {rel}", diff=diff,
                      data={"path": rel, "index": index, "created": created})


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_PATH = {"type": "string", "description": "Notebook path (.ipynb) relative to the workspace root."}
_INDEX = {"type": "integer", "minimum": 0, "description": "0-based cell index, as shown by readNotebook."}
_SOURCE = {"type": "string", "description": "The complete new source of the cell."}
_TYPE = {"type": "string", "enum": list(CELL_TYPES), "description": "Cell type."}

TOOLS: list[Tool] = [
    Tool(
        name="readNotebook",
        description="Read a Jupyter notebook: every cell with its 0-based index, type, source and a short summary of its outputs.",
        parameters=_schema({"path": _PATH}, ["path"]),
        fn=os_errors_as_tool_errors(read_notebook),
        group="notebook",
    ),
    Tool(
        name="editNotebookCell",
        description=(
            "Replace the source of one notebook cell (0-based index), optionally changing its type. "
            "A code cell's old outputs are cleared. The notebook stays valid; the edit can be reverted."
        ),
        parameters=_schema({"path": _PATH, "index": _INDEX, "source": _SOURCE, "cellType": _TYPE},
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
        parameters=_schema({"path": _PATH, "index": _INDEX, "source": _SOURCE, "cellType": _TYPE},
                           ["path", "index", "source", "cellType"]),
        fn=os_errors_as_tool_errors(insert_notebook_cell),
        group="notebook",
    ),
]
