"""Read-only views of folders: listFiles (one folder, paged) and getProjectStructure (the tree).

Both respect the output cap and say what they left out and how to see it: listFiles gives a
folder's true entry count and the ``offset`` of its next page; the tree says where it stopped.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polaris_jupyter.tools._args import check_args, get_int, get_str
from polaris_jupyter.tools.base import MAX_TOOL_OUTPUT_CHARS, ToolContext, ToolError, ToolResult
from polaris_jupyter.tools.ignore import IgnoreRules, walk_entries
from polaris_jupyter.tools.sandbox import relative_to_root, resolve_path

__all__ = ["DEFAULT_LIST_ENTRIES", "MAX_LIST_ENTRIES", "MAX_TREE_ENTRIES", "get_project_structure", "list_files"]

#: listFiles shows this many entries unless asked (``limit``, at most MAX_LIST_ENTRIES) and
#: never more than fit in the tool output cap; the rest is paged with ``offset``.
DEFAULT_LIST_ENTRIES = 500
MAX_LIST_ENTRIES = 1000
MAX_TREE_ENTRIES = 3000


def _human_size(size_bytes: int) -> str:
    size = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size_bytes} B"


@dataclass
class _Listing:
    rel: str
    entries: list[dict[str, Any]]
    total: int
    offset: int


def _list_files(root: Path, rel_arg: str, offset: int, limit: int) -> _Listing:
    """One page of a folder's entries (folders first, then by name); only that page is stat'ed."""
    folder = resolve_path(root, rel_arg, must_exist=True)
    rel = relative_to_root(root, folder)
    if not folder.is_dir():
        raise ToolError(f"{rel!r} is a file, not a folder; use readFile to read it")
    with os.scandir(folder) as iterator:
        raw = sorted(iterator, key=lambda e: (not e.is_dir(follow_symlinks=False), e.name))
    if offset and offset >= len(raw):
        raise ToolError(f"offset {offset} is past the end: {rel}/ holds {len(raw)} entries")
    rules = IgnoreRules.for_root(root)
    entries: list[dict[str, Any]] = []
    for entry in raw[offset : offset + limit]:
        entry_rel = entry.name if rel == "." else f"{rel}/{entry.name}"
        is_link = entry.is_symlink()
        is_dir = entry.is_dir(follow_symlinks=False)
        kind = "symlink" if is_link else "dir" if is_dir else "file"
        size = entry.stat(follow_symlinks=False).st_size if kind == "file" else None
        entries.append({"name": entry.name, "path": entry_rel, "type": kind, "size": size,
                        "ignored": rules.is_ignored(entry_rel, is_dir)})
    return _Listing(rel, entries, len(raw), offset)


async def list_files(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    """One page of a folder, within the tool output cap; the text says the true count and how to page."""
    args = check_args("listFiles", args, ("path", "offset", "limit"))
    offset = get_int(args, "offset", default=0, min_value=0) or 0
    limit = get_int(args, "limit", default=DEFAULT_LIST_ENTRIES, min_value=1, max_value=MAX_LIST_ENTRIES)
    listing = await asyncio.to_thread(_list_files, ctx.root, get_str(args, "path") or ".", offset,
                                      limit or DEFAULT_LIST_ENTRIES)
    rel, total = listing.rel, listing.total
    lines: list[str] = []
    used = 0
    budget = MAX_TOOL_OUTPUT_CHARS - 600  # room for the header and the paging notice
    for e in listing.entries:
        label = e["name"] + ("/" if e["type"] == "dir" else "")
        info = _human_size(e["size"]) if e["type"] == "file" else e["type"]
        line = f"{label}  ({info}{', ignored' if e['ignored'] else ''})"
        if lines and used + len(line) + 1 > budget:
            break
        lines.append(line)
        used += len(line) + 1
    entries = listing.entries[: len(lines)]
    end = offset + len(entries)  # entries shown are offset .. end-1
    truncated = offset > 0 or end < total
    if not total:
        head = f"{rel}/ is empty."
    elif truncated:
        head = f"{rel}/ holds {total} entries; showing {offset + 1}-{end} (folders first, then by name):"
    else:
        head = f"{rel}/ holds {total} entries:"
    text = head + ("\n" + "\n".join(lines) if lines else "")
    if end < total:
        path_arg = "" if rel == "." else f"path={rel!r}, "
        text += (f"\n… [{total - end} more entries not shown: call listFiles with {path_arg}offset={end} "
                 "for the next page, or findFilesByPattern to filter]")
    return ToolResult(text, summary=f"Listed {rel} ({len(entries)} of {total} entries)", truncated=truncated,
                      data={"path": rel, "entries": entries, "total": total, "offset": offset,
                            "nextOffset": end if end < total else None})


def _project_tree(root: Path, max_entries: int) -> tuple[str, int, int, bool]:
    lines: list[str] = [f"{Path(os.path.realpath(root)).name}/"]
    n_files = n_dirs = 0
    truncated = False
    for rel, is_dir in walk_entries(root):
        if n_files + n_dirs >= max_entries:
            truncated = True
            break
        depth = rel.count("/") + 1
        lines.append("  " * depth + rel.rsplit("/", 1)[-1] + ("/" if is_dir else ""))
        n_dirs += is_dir
        n_files += not is_dir
    return "\n".join(lines), n_files, n_dirs, truncated


async def get_project_structure(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    check_args("getProjectStructure", args, ())
    max_entries = int(ctx.settings.get("max_tree_entries", MAX_TREE_ENTRIES))
    tree, n_files, n_dirs, truncated = await asyncio.to_thread(_project_tree, ctx.root, max_entries)
    footer = f"\n({n_files} files, {n_dirs} folders; .git, node_modules, virtualenvs, caches and .gitignore'd paths hidden)"
    if truncated:
        footer += f"\n… [truncated after {max_entries} entries; use listFiles on a folder to see more]"
    text = tree + footer
    if len(text) > MAX_TOOL_OUTPUT_CHARS:
        text = text[: MAX_TOOL_OUTPUT_CHARS - 200] + "\n… [truncated: tree too large; use listFiles on a folder]"
        truncated = True
    return ToolResult(text, summary=f"Project: {n_files} files, {n_dirs} folders", truncated=truncated,
                      data={"files": n_files, "folders": n_dirs})
