"""What the user attached to a message, gathered on the server and sent to the model.

The UI sends ``context.items``: files, editor selections, notebook cells (their sources), a
cell's outputs, whole notebooks and kernel variables. :func:`attach_context` checks them, reads
what the server should read itself (files and notebooks from the workspace, by the tools' path
rules; variables from the notebook's kernel, with the fixed inspection snippet), and turns them
into one delimited context block within ``PolarisConfig.context_token_budget``
(:func:`~polaris_jupyter.chat.context_block.build_context_block`). The user message keeps the
block and the list of what was attached (and truncated), so a chat view shows its chips from
history and a retry sends the same context. :mod:`~polaris_jupyter.chat.prompts` puts the block
in front of the message it belongs to.

``intent`` (``explain`` / ``fix``) marks the Explain error and Fix with Polaris buttons: both need
a cell, and the variables that cell uses are attached from its kernel when it has one.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import keyword
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polaris_jupyter.chat.context_block import INTENTS, ContextPart, build_context_block
from polaris_jupyter.errors import InvalidInput
from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.notebook_format import (
    MAX_NOTEBOOK_BYTES,
    cell_source,
    find_cell,
    parse_notebook,
    render_notebook,
    summarise_outputs,
)
from polaris_jupyter.tools.notebook_kernel import NotebookKernels
from polaris_jupyter.tools.sandbox import relative_to_root, resolve_path
from polaris_jupyter.tools.variables import MAX_NAMES, check_names, inspect_variables, render_variables

__all__ = ["CONTEXT_KINDS", "INTENTS", "MAX_CONTEXT_ITEMS", "attach_context", "gather_parts"]

CONTEXT_KINDS = ("file", "selection", "cell", "outputs", "notebook", "variables")
MAX_CONTEXT_ITEMS = 20
#: Bytes of one attached file read from disk (the budget cuts much earlier).
MAX_FILE_BYTES = 2_000_000
_LANGUAGES = {
    ".py": "python", ".pyi": "python", ".ipynb": "python", ".ts": "typescript", ".tsx": "tsx", ".js": "javascript",
    ".jsx": "jsx", ".json": "json", ".md": "markdown", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml",
    ".sh": "bash", ".r": "r", ".jl": "julia", ".sql": "sql", ".html": "html", ".css": "css", ".rs": "rust",
    ".go": "go", ".java": "java", ".c": "c", ".h": "c", ".cpp": "cpp", ".txt": "",
}
_BUILTIN_NAMES = frozenset(dir(builtins)) | frozenset(keyword.kwlist)


def _language(path: str | None, given: Any) -> str:
    if isinstance(given, str) and given:
        return given
    return _LANGUAGES.get(Path(path or "").suffix.lower(), "")


def _check_item(index: int, item: Any) -> dict[str, Any]:
    where = f"context.items[{index}]"
    if not isinstance(item, dict) or item.get("kind") not in CONTEXT_KINDS:
        raise InvalidInput(f"{where} must be an object whose kind is one of {', '.join(CONTEXT_KINDS)}")
    kind, path = item["kind"], item.get("path")
    has_cell = item.get("cellIndex") is not None or item.get("cellId") is not None
    if kind in ("file", "notebook") and not path:
        raise InvalidInput(f"{where}: a {kind} item needs its path")
    if kind == "selection" and not isinstance(item.get("source"), str):
        raise InvalidInput(f"{where}: a selection item needs its source (the selected text)")
    if kind in ("cell", "outputs") and not (path and has_cell):
        raise InvalidInput(f"{where}: a {kind} item needs the notebook's path and cellIndex or cellId")
    if kind in ("notebook", "cell", "outputs") and not str(path).endswith(".ipynb"):
        raise InvalidInput(f"{where}: {path!r} is not a notebook (.ipynb)")
    if kind == "variables" and not (path or item.get("kernelId")):
        raise InvalidInput(f"{where}: a variables item needs the notebook's path or a kernelId")
    if kind == "variables":
        check_names(item.get("names"))
    return item


def _read_bytes(target: Path, rel: str, max_bytes: int) -> tuple[bytes, int]:
    """(at most ``max_bytes`` of a workspace file, its size); ToolError when it is missing or
    not a regular file."""
    try:
        info = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        raise ToolError(f"{rel!r} does not exist in the workspace") from None
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(f"{rel!r} is not a regular file")
    with open(target, "rb") as handle:
        return handle.read(max_bytes), info.st_size


def _read_text(target: Path, rel: str) -> tuple[str, str]:
    """(text, note) of a workspace file: at most MAX_FILE_BYTES, refused when binary."""
    raw, size = _read_bytes(target, rel, MAX_FILE_BYTES)
    if b"\x00" in raw[:65536]:
        raise ToolError(f"{rel!r} is a binary file ({size:,} bytes); its content is not attached")
    text = raw.decode("utf-8", errors="replace")
    note = f"only the first {MAX_FILE_BYTES:,} of {size:,} bytes were read" if size > MAX_FILE_BYTES else ""
    return text, note


def _resolve(root: Path, path: Any, where: str) -> tuple[Path, str]:
    try:
        target = resolve_path(root, path)
    except ToolError as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    return target, relative_to_root(root, target)


@dataclass
class _Notebooks:
    """Notebooks read once per message, however many items name them."""

    root: Path

    def __post_init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def get(self, target: Path, rel: str) -> Any:
        if rel not in self._cache:
            raw, _ = _read_bytes(target, rel, MAX_NOTEBOOK_BYTES + 1)
            self._cache[rel] = parse_notebook(raw, rel)  # refuses one over MAX_NOTEBOOK_BYTES
        return self._cache[rel]


def _cell_ref(item: dict[str, Any]) -> str:
    return f"cell {item['cellIndex']}" if item.get("cellIndex") is not None else f"cell {item.get('cellId')}"


def _read_part(n: int, item: dict[str, Any], root: Path, notebooks: _Notebooks) -> list[ContextPart]:
    """The parts of one item that need no kernel (blocking: runs in a thread)."""
    kind, where = item["kind"], f"context.items[{n}]"
    ref = {k: item[k] for k in ("path", "cellIndex", "cellId", "startLine", "endLine") if item.get(k) is not None}
    label = str(item.get("label") or "")
    if kind == "selection":
        lines = f" lines {item['startLine']}-{item.get('endLine', item['startLine'])}" if item.get("startLine") else ""
        where_from = f" in {item['path']}" if item.get("path") else ""
        return [ContextPart(n, kind, label or f"selection{where_from}{lines}", item["source"],
                            _language(item.get("path"), item.get("language")), ref=ref)]
    target, rel = _resolve(root, item["path"], where)
    ref["path"] = rel
    try:
        if kind == "file":
            if isinstance(item.get("source"), str):
                return [ContextPart(n, kind, label or rel, item["source"], _language(rel, item.get("language")), ref=ref,
                                    note="unsaved editor contents")]
            text, note = _read_text(target, rel)
            return [ContextPart(n, kind, label or rel, text, _language(rel, item.get("language")), ref=ref, note=note)]
        if kind == "notebook":
            return [ContextPart(n, kind, label or rel, render_notebook(notebooks.get(target, rel), rel), "", ref=ref)]
        sent_source = item.get("source") if kind == "cell" and isinstance(item.get("source"), str) else None
        outputs = item.get("outputs") if isinstance(item.get("outputs"), list) else None
        if (kind == "cell" and sent_source is None) or (kind == "outputs" and outputs is None):  # read the file
            nb = notebooks.get(target, rel)
            position = find_cell(nb, rel, item.get("cellIndex"), item.get("cellId"))
            cell = nb.cells[position]
            ref["cellIndex"] = position
            ref.setdefault("cellId", cell.get("id"))
            sent_source = cell_source(cell) if kind == "cell" else None
            outputs = cell.get("outputs") if outputs is None else outputs
        title = label or f"{rel} {_cell_ref(ref)}"
        parts = []
        if kind == "cell":
            parts.append(ContextPart(n, kind, title, sent_source or "", _language(rel, item.get("language")), ref=ref))
        if outputs:
            summary, _ = summarise_outputs(outputs, max_chars=200_000, max_outputs=100, preview_chars=4000)
            parts.append(ContextPart(n, kind, title if kind == "outputs" else f"outputs of {title}", summary, "",
                                     ref=ref, keep="middle", section="outputs"))
        elif kind == "outputs":
            parts.append(ContextPart(n, kind, title, "(the cell has no outputs)", "", ref=ref))
        return parts
    except (ToolError, OSError) as exc:
        reason = str(exc) if isinstance(exc, ToolError) else f"could not be read: {exc.strerror or exc}"
        return [ContextPart(n, kind, label or rel, "", "", ref=ref, note=reason, failed=True)]


def _used_names(source: str) -> list[str]:
    """Identifiers a cell uses (its relevant variables), builtins and keywords left out."""
    try:
        found = [node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)]
    except SyntaxError:
        found = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source)
    return [n for n in dict.fromkeys(found) if n not in _BUILTIN_NAMES][:30]


async def _variables_part(n: int, item: dict[str, Any], root: Path, kernels: NotebookKernels | None) -> ContextPart:
    rel = None
    if item.get("path"):
        _, rel = _resolve(root, item["path"], f"context.items[{n}]")
    where = f"the kernel of {rel}" if rel else f"kernel {item.get('kernelId')}"
    ref = {"path": rel, "kernelId": item.get("kernelId")}
    ref = {k: v for k, v in ref.items() if v is not None}
    label = str(item.get("label") or f"variables of {rel or item.get('kernelId')}")
    try:
        if kernels is None:
            raise ToolError("kernel variables are not reachable here")
        handle = await (kernels.by_id(item["kernelId"]) if item.get("kernelId") else kernels.for_notebook(str(rel)))
        if handle is None:
            raise ToolError(f"{where} is not running")
        doc = await inspect_variables(handle, check_names(item.get("names")))
    except ToolError as exc:
        return ContextPart(n, "variables", label, "", "", ref=ref, note=f"not attached: {exc}", failed=True)
    return ContextPart(n, "variables", label, render_variables(doc, where), "", ref=ref)


async def gather_parts(items: list[dict[str, Any]], *, root: Path, kernels: NotebookKernels | None) -> list[ContextPart]:
    """Every checked item as context parts, in order (files in a thread, variables from kernels)."""
    notebooks = _Notebooks(root)
    parts: list[ContextPart] = []
    for n, item in enumerate(items):
        if item["kind"] == "variables":
            parts.append(await _variables_part(n, item, root, kernels))
        else:
            parts.extend(await asyncio.to_thread(_read_part, n, item, root, notebooks))
    return parts


def _relevant_variables(items: list[dict[str, Any]], parts: list[ContextPart]) -> dict[str, Any] | None:
    """For Explain / Fix: a variables item for the names the cell uses, unless one was sent."""
    if any(i["kind"] == "variables" for i in items):
        return None
    cell = next((p for p in parts if p.kind == "cell" and not p.failed and p.section != "outputs"), None)
    if cell is None:
        return None
    names = _used_names(cell.body)[:MAX_NAMES]
    return {"kind": "variables", "path": cell.ref["path"], "names": names} if names else None


async def attach_context(context: Any, intent: Any, *, root: Path, budget_tokens: int,
                         kernels: NotebookKernels | None) -> dict[str, Any] | None:
    """The context to store on a user message: ``currentFile`` as sent, ``intent``, and for
    ``items`` the context block and the attachments (what each chip shows: label, tokens,
    truncated or omitted with the reason). InvalidInput for items that can never work."""
    if context is not None and not isinstance(context, dict):
        raise InvalidInput('context must be an object such as {"currentFile": "src/app.py"}')
    if intent is not None and intent not in INTENTS:
        raise InvalidInput(f"intent must be one of {', '.join(INTENTS)}, got {intent!r}")
    stored = {k: v for k, v in (context or {}).items() if k != "items"}
    raw_items = (context or {}).get("items") or []
    if not isinstance(raw_items, list) or len(raw_items) > MAX_CONTEXT_ITEMS:
        raise InvalidInput(f"context.items must be a list of at most {MAX_CONTEXT_ITEMS} items")
    items = [_check_item(n, item) for n, item in enumerate(raw_items)]
    if intent is not None:
        if not any(i["kind"] in ("cell", "outputs") for i in items):
            raise InvalidInput(f"intent {intent!r} needs the cell: send a cell item (with its outputs) in context.items")
        stored["intent"] = intent
    if not items:
        return stored or None
    parts = await gather_parts(items, root=root, kernels=kernels)
    extra = _relevant_variables(items, parts) if intent is not None and kernels is not None else None
    if extra is not None:
        found = await _variables_part(len(items), extra, root, kernels)
        if not found.failed:
            parts.append(found)
    block = build_context_block(parts, budget_tokens)
    stored.update(block.to_context())
    return stored
