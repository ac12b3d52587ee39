"""Reading and describing notebooks (pure nbformat, no I/O): parse, find a cell, summarise outputs.

One home for how a notebook looks to the model: the notebook tools (``readNotebook``,
``runNotebookCell``, ...), the chat's context block (``chat/context.py``) and proposals all
render cells and outputs through these functions, so an error reads the same everywhere
(``error ZeroDivisionError: division by zero`` plus the traceback's tail without ANSI colours)
and an image is a line (``image/png 640×480``), never base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import warnings
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.validator import ValidationError

from polaris_jupyter.tools.base import ToolError

__all__ = [
    "CELL_TYPES",
    "MAX_NOTEBOOK_BYTES",
    "TRACEBACK_TAIL_LINES",
    "cell_label",
    "cell_source",
    "clip_middle",
    "describe_image",
    "find_cell",
    "image_size",
    "parse_notebook",
    "render_cell",
    "render_notebook",
    "serialize_notebook",
    "strip_ansi",
    "summarise_output",
    "summarise_outputs",
]

CELL_TYPES = ("code", "markdown", "raw")
MAX_NOTEBOOK_BYTES = 20_000_000
#: Lines of a traceback kept in a summary: the end says what failed and where.
TRACEBACK_TAIL_LINES = 12
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml", "image/webp")


def parse_notebook(raw: bytes, rel: str) -> NotebookNode:
    """``raw`` as an nbformat 4 notebook, or a ToolError that says why it is not one."""
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


def serialize_notebook(nb: NotebookNode, rel: str) -> bytes:
    """The notebook as file bytes, validated first (a tool never writes an invalid notebook)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nbformat.validate(nb)
            return (nbformat.writes(nb, version=4) + "\n").encode("utf-8")
    except ValidationError as exc:
        raise ToolError(f"the change would make {rel!r} an invalid notebook: {exc.message}") from None


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def cell_source(cell: NotebookNode) -> str:
    return _text(cell.get("source", ""))


def find_cell(nb: NotebookNode, rel: str, index: int | None, cell_id: str | None) -> int:
    """The index of the cell named by ``cell_id`` (preferred: it survives inserts and moves) or
    ``index``; a ToolError that says which cells exist otherwise."""
    count = len(nb.cells)
    if cell_id is not None:
        for position, cell in enumerate(nb.cells):
            if cell.get("id") == cell_id:
                if index is not None and index != position:
                    raise ToolError(f"cell {cell_id!r} of {rel!r} is at index {position}, not {index}; "
                                    "read the notebook again")
                return position
        raise ToolError(f"{rel!r} has no cell with id {cell_id!r} (it has {count} cells)")
    if index is None:
        raise ToolError("name the cell: give its 0-based index (or its cellId)")
    if index >= count:
        shown = f"indices 0-{count - 1}" if count else "no cells"
        raise ToolError(f"{rel!r} has {count} cells ({shown}); there is no cell {index}")
    return index


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def clip_middle(text: str, max_chars: int) -> str:
    """``text`` cut to about ``max_chars``, keeping its start and its end (where logs say what
    happened last) with a note of what was left out."""
    if len(text) <= max_chars:
        return text
    half = max(max_chars // 2, 1)
    return f"{text[:half]}… [{len(text) - 2 * half:,} characters not shown] …{text[-half:]}"


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


def image_size(mime: str, data: Any) -> tuple[int, int] | None:
    """Width and height of a base64 PNG, GIF or JPEG output (None when it cannot be told)."""
    try:
        raw = base64.b64decode(_text(data)[:200_000], validate=False)
    except (binascii.Error, ValueError):
        return None
    if mime == "image/png" and raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) >= 24:
        width, height = struct.unpack(">II", raw[16:24])
        return int(width), int(height)
    if mime == "image/gif" and raw[:4] == b"GIF8" and len(raw) >= 10:
        width, height = struct.unpack("<HH", raw[6:10])
        return int(width), int(height)
    if mime == "image/jpeg" and raw[:2] == b"\xff\xd8":
        return _jpeg_size(raw)
    return None


def describe_image(mime: str, data: Any, metadata: Any = None) -> str:
    """``image/png 640×480`` (from the image itself, else from the output's metadata)."""
    size = image_size(mime, data)
    if size is None and isinstance(metadata, dict):
        inner = metadata.get(mime)
        meta: dict[str, Any] = inner if isinstance(inner, dict) else metadata
        width, height = meta.get("width"), meta.get("height")
        if isinstance(width, int) and isinstance(height, int):
            size = (width, height)
    return f"{mime} {size[0]}×{size[1]}" if size else mime


def _traceback_tail(output: NotebookNode, lines: int) -> str:
    text = strip_ansi("\n".join(_text(part) for part in output.get("traceback") or []))
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(tail)


def summarise_output(output: NotebookNode, *, preview_chars: int = 300, traceback_lines: int = TRACEBACK_TAIL_LINES) -> str:
    """One output in words: stream text, an error with its traceback tail, images as sizes."""
    kind = output.get("output_type", "?")
    if kind == "stream":
        text = strip_ansi(_text(output.get("text", ""))).strip()
        return f"{output.get('name', 'stream')}: {clip_middle(text, preview_chars)}"
    if kind == "error":
        head = f"error {output.get('ename', '')}: {clip_middle(str(output.get('evalue', '')), preview_chars)}"
        tail = _traceback_tail(output, traceback_lines) if traceback_lines > 0 else ""
        return f"{head}\n  traceback (last lines):\n    " + tail.replace("\n", "\n    ") if tail else head
    data = output.get("data", {}) or {}
    mimes = ", ".join(sorted(data)) or "no data"
    images = [describe_image(m, data[m], output.get("metadata")) for m in _IMAGE_MIMES if m in data]
    plain = data.get("text/plain")
    parts = [f"{kind} [{mimes}]"]
    if plain is not None:
        parts[0] += f": {clip_middle(strip_ansi(_text(plain)).strip(), preview_chars)}"
    elif "text/markdown" in data:
        parts[0] += f": {clip_middle(_text(data['text/markdown']).strip(), preview_chars)}"
    elif "text/html" in data:
        parts[0] += f" (HTML, {len(_text(data['text/html'])):,} characters)"
    if images:
        parts.append("  " + "; ".join(images))
    return "\n".join(parts)


def summarise_outputs(outputs: list[Any], *, max_chars: int = 4000, max_outputs: int = 20,
                      preview_chars: int = 600) -> tuple[str, bool]:
    """Every output of a cell summarised, together at most ``max_chars``; True when cut."""
    parts: list[str] = []
    size = 0
    truncated = False
    for position, output in enumerate(outputs):
        if position >= max_outputs or size >= max_chars:
            parts.append(f"… and {len(outputs) - position} more outputs not shown")
            truncated = True
            break
        line = summarise_output(NotebookNode(output), preview_chars=preview_chars)
        if size + len(line) > max_chars:
            line = clip_middle(line, max(max_chars - size, 80))
            truncated = True
        parts.append(line)
        size += len(line)
    return "\n".join(parts), truncated


def cell_label(cell: NotebookNode, index: int) -> str:
    count = cell.get("execution_count")
    return f"[{index}] {cell.cell_type}" + (f" (execution_count {count})" if count is not None else "")


def render_cell(cell: NotebookNode, index: int, *, max_outputs: int = 5, preview_chars: int = 300) -> str:
    """A cell as readNotebook shows it: label, source, and a summary of its outputs."""
    parts = [f"### {cell_label(cell, index)}\n{cell_source(cell)}"]
    outputs = cell.get("outputs") or []
    if outputs:
        summaries = [summarise_output(o, preview_chars=preview_chars, traceback_lines=4) for o in outputs[:max_outputs]]
        more = f"\n  … and {len(outputs) - max_outputs} more outputs" if len(outputs) > max_outputs else ""
        parts.append("--- outputs:\n  " + "\n  ".join(summaries) + more)
    return "\n".join(parts)


def render_notebook(nb: NotebookNode, rel: str) -> str:
    """The whole notebook for the model: a header, then every cell (see :func:`render_cell`)."""
    kernel = (nb.metadata.get("kernelspec") or {}).get("name", "unknown")
    parts = [f"{rel}: {len(nb.cells)} cells (kernel {kernel}); indices are 0-based"]
    parts.extend("\n" + render_cell(cell, index) for index, cell in enumerate(nb.cells))
    return "\n".join(parts)
