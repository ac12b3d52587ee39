"""File tools: readFile, writeFile, deleteFile, listFiles, getProjectStructure.

Every path goes through the sandbox; every write is atomic and journalled (pre-image + diff)
before it happens, so a run's edits can be reverted. All disk work runs in a thread.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polaris_jupyter.tools._args import check_args, get_int, get_str, os_errors_as_tool_errors
from polaris_jupyter.tools._fileio import (
    count_lines,
    describe_binary,
    line_offset,
    read_existing,
    sniff_binary,
    stat_regular,
)
from polaris_jupyter.tools.base import MAX_TOOL_OUTPUT_CHARS, Tool, ToolContext, ToolError, ToolResult
from polaris_jupyter.tools.edits import journal_edit, journal_folder
from polaris_jupyter.tools.listing import (
    DEFAULT_LIST_ENTRIES,
    MAX_LIST_ENTRIES,
    get_project_structure,
    list_files,
)
from polaris_jupyter.tools.sandbox import (
    atomic_write_bytes,
    relative_to_root,
    remove_path,
    resolve_entry_path,
    resolve_path,
    resolve_writable_path,
)

__all__ = ["FILE_TOOL_NAMES", "TOOLS", "read_existing"]

FILE_TOOL_NAMES = ("readFile", "writeFile", "deleteFile", "listFiles", "getProjectStructure")
#: Bytes readFile looks at; bigger files are read in part and the result says so.
MAX_READ_BYTES = 2_000_000
MAX_WRITE_BYTES = 5_000_000
#: Total pre-image bytes deleteFile may journal; bigger deletes are refused (they could not be undone).
MAX_DELETE_BYTES = 100_000_000

@dataclass
class _Read:
    text: str
    summary: str
    truncated: bool
    data: dict[str, Any]


def _read_file(root: Path, rel_arg: str, start_line: int | None, end_line: int | None) -> _Read:
    target = resolve_path(root, rel_arg, must_exist=True)
    rel = relative_to_root(root, target)
    info = stat_regular(target, rel)
    first = start_line or 1
    fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if sniff_binary(handle.read(8192)):
            handle.seek(0)
            text = describe_binary(rel, handle.read(64), info.st_size)
            return _Read(text, f"{rel}: binary, {info.st_size:,} bytes", False, {"path": rel, "binary": True})
        offset = line_offset(handle, first)
        total = count_lines(handle, info.st_size) if offset is None or info.st_size > MAX_READ_BYTES else None
        if offset is None:
            raise ToolError(f"startLine {first} is past the end of {rel!r}, which has {total} lines")
        handle.seek(offset)
        raw = handle.read(MAX_READ_BYTES)
    more_bytes = offset + len(raw) < info.st_size
    lines = raw.decode("utf-8", errors="replace").splitlines(keepends=True)
    if more_bytes and len(lines) > 1 and not lines[-1].endswith("\n"):
        lines.pop()  # the last line was cut by the byte cap
    if total is None and not more_bytes:
        total = first - 1 + len(lines)
    available_last = first - 1 + len(lines)
    last = available_last if end_line is None else min(end_line, available_last)
    chosen: list[str] = []
    size = 0
    line_cut = False
    budget = MAX_TOOL_OUTPUT_CHARS - 400
    for line in lines[: last - first + 1]:
        if size + len(line) > budget:
            if not chosen:  # one giant line (minified code): show its start
                chosen.append(line[:budget] + "\n… [line cut]\n")
                line_cut = True
            break
        chosen.append(line)
        size += len(line)
    shown_last = first + len(chosen) - 1
    if end_line is not None:
        want_end: int | None = min(end_line, total) if total is not None else end_line
    else:
        want_end = total
    if want_end is None:
        truncated = line_cut or shown_last < available_last or more_bytes
    else:
        truncated = line_cut or shown_last < want_end
    total_label = str(total) if total is not None else "?"
    ranged = start_line is not None or end_line is not None
    header = f"[{rel}: lines {first}-{shown_last} of {total_label}]\n" if ranged else ""
    notice = ""
    if truncated:
        notice = (
            f"\n… [truncated: showed lines {first}-{shown_last} of {total_label} "
            f"({info.st_size:,} bytes); call readFile with startLine={shown_last + 1} to read on]"
        )
    summary = f"Read {rel} (lines {first}-{shown_last})" if ranged or truncated else f"Read {rel} ({total} lines)"
    data = {"path": rel, "startLine": first, "endLine": shown_last, "totalLines": total, "sizeBytes": info.st_size}
    return _Read(header + "".join(chosen) + notice, summary, truncated, data)


async def read_file(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("readFile", args, ("path", "startLine", "endLine"), ("path",))
    path = get_str(args, "path")
    start_line = get_int(args, "startLine", min_value=1)
    end_line = get_int(args, "endLine", min_value=1)
    if start_line is not None and end_line is not None and end_line < start_line:
        raise ToolError(f"endLine ({end_line}) must not be before startLine ({start_line})")
    result = await asyncio.to_thread(_read_file, ctx.root, path or "", start_line, end_line)
    return ToolResult(result.text, summary=result.summary, truncated=result.truncated, data=result.data)


def _missing_folders(root: Path, folder: Path) -> list[str]:
    root_real = Path(os.path.realpath(root))
    missing: list[str] = []
    while not os.path.lexists(folder) and folder != root_real:
        missing.append(relative_to_root(root_real, folder))
        folder = folder.parent
    return list(reversed(missing))


def _prepare_write(root: Path, path: str | None) -> tuple[Path, str, bytes | None, list[str]]:
    """Resolve a write target; return it with its pre-image and the folders a write would create."""
    target = resolve_writable_path(root, path)
    rel = relative_to_root(root, target)
    if os.path.isdir(target):
        raise ToolError(f"{rel!r} is a folder; give a file path")
    return target, rel, read_existing(target), _missing_folders(root, target.parent)


async def write_file(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("writeFile", args, ("path", "content"), ("path", "content"))
    content = get_str(args, "content") or ""
    max_bytes = int(ctx.settings.get("max_write_bytes", MAX_WRITE_BYTES))
    try:
        after = content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(f"content is not valid text (unpaired surrogate at character {exc.start})") from None
    if len(after) > max_bytes:
        raise ToolError(f"content is {len(after):,} bytes; writeFile accepts at most {max_bytes:,}")
    target, rel, before, missing = await asyncio.to_thread(_prepare_write, ctx.root, get_str(args, "path"))
    if before == after:
        return ToolResult(f"{rel} already has this content; nothing changed.", summary=f"{rel} unchanged",
                          data={"path": rel, "changed": False})
    for folder in missing:
        await journal_folder(ctx, folder, existed=False)
    diff = await journal_edit(ctx, rel, before, after)
    await asyncio.to_thread(atomic_write_bytes, ctx.root, target, after)
    added = sum(1 for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in diff.splitlines() if line.startswith("-") and not line.startswith("---"))
    n_lines = content.count("\n") + (0 if content.endswith("\n") or not content else 1)
    if before is None:
        text = f"Created {rel} ({n_lines} lines, {len(after):,} bytes)."
        summary = f"Created {rel} (+{added})"
    else:
        text = f"Updated {rel}: +{added} −{removed} lines ({len(after):,} bytes)."
        summary = f"Edited {rel} (+{added} −{removed})"
    data = {"path": rel, "changed": True, "created": before is None, "added": added, "removed": removed}
    return ToolResult(text, summary=summary, diff=diff, data=data)


def _collect_delete(root: Path, target: Path, max_bytes: int) -> tuple[list[tuple[str, bytes]], list[str], int]:
    """Pre-images of every file under ``target`` (folders listed too); symlinks are counted."""
    files: list[tuple[str, bytes]] = []
    folders: list[str] = []
    links = 0
    total = 0
    for dirpath, dirnames, filenames in os.walk(target, followlinks=False):
        base = Path(dirpath)
        folders.append(relative_to_root(root, base))
        for name in list(dirnames):
            if os.path.islink(base / name):
                links += 1
        for name in filenames:
            path = base / name
            if os.path.islink(path) or not os.path.isfile(path):
                links += 1
                continue
            total += os.path.getsize(path)
            if total > max_bytes:
                raise ToolError(
                    f"deleting {relative_to_root(root, target)!r} would drop more than {max_bytes:,} bytes, "
                    "too much to keep for undo; delete smaller folders or files"
                )
            files.append((relative_to_root(root, path), path.read_bytes()))
    return files, folders, links


def _prepare_delete(root: Path, path: str | None) -> tuple[Path, str, str]:
    target = resolve_entry_path(root, path)
    rel = relative_to_root(root, target)
    if not os.path.lexists(target):
        raise ToolError(f"{rel!r} does not exist in the workspace")
    kind = "link" if os.path.islink(target) else "folder" if os.path.isdir(target) else "file"
    return target, rel, kind


async def delete_file(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("deleteFile", args, ("path",), ("path",))
    max_bytes = int(ctx.settings.get("max_delete_bytes", MAX_DELETE_BYTES))
    target, rel, kind = await asyncio.to_thread(_prepare_delete, ctx.root, get_str(args, "path"))
    if kind == "link":
        await asyncio.to_thread(remove_path, ctx.root, target)
        return ToolResult(f"Deleted symlink {rel} (links are not journalled and cannot be reverted).",
                          summary=f"Deleted link {rel}", data={"path": rel, "files": 0})
    if kind == "file":
        before = await asyncio.to_thread(read_existing, target)
        diff = await journal_edit(ctx, rel, before, None)
        await asyncio.to_thread(remove_path, ctx.root, target)
        return ToolResult(f"Deleted {rel}.", summary=f"Deleted {rel}", diff=diff, data={"path": rel, "files": 1})
    files, folders, links = await asyncio.to_thread(_collect_delete, ctx.root, target, max_bytes)
    for folder in folders:
        await journal_folder(ctx, folder, existed=True)
    diffs: list[str] = []
    diff_budget = 60_000
    for file_rel, before in files:
        diff = await journal_edit(ctx, file_rel, before, None, max_diff_chars=4000)
        if diff_budget > 0:
            diffs.append(diff[:diff_budget])
            diff_budget -= len(diff)
    await asyncio.to_thread(remove_path, ctx.root, target)
    note = f" {links} symlink(s) inside were removed too (not revertible)." if links else ""
    text = f"Deleted folder {rel} ({len(files)} files, {len(folders)} folders).{note}"
    return ToolResult(text, summary=f"Deleted {rel}/ ({len(files)} files)", diff="".join(diffs),
                      data={"path": rel, "files": len(files), "folders": len(folders)})


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_PATH = {"type": "string", "description": "Path relative to the workspace root, e.g. 'src/app.py'."}
#: A file path a model may write: relative, no `..`, no empty parts. Servers that turn the schema
#: into a grammar (llama.cpp with a forced tool) then cannot even produce an absolute path.
_WRITE_PATH = {
    **_PATH,
    "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$",
    "minLength": 1,
    "maxLength": 512,
}

TOOLS: list[Tool] = [
    Tool(
        name="readFile",
        description=(
            "Read a text file of the workspace. Optionally give startLine/endLine (1-based, inclusive) to "
            "read part of a long file. Long output is cut and says where to continue; binary files are "
            "described, not dumped."
        ),
        parameters=_schema(
            {
                "path": _PATH,
                "startLine": {"type": "integer", "minimum": 1, "description": "First line to return (1-based)."},
                "endLine": {"type": "integer", "minimum": 1, "description": "Last line to return (inclusive)."},
            },
            ["path"],
        ),
        fn=os_errors_as_tool_errors(read_file),
        group="files",
    ),
    Tool(
        name="writeFile",
        description=(
            "Create or overwrite a file with the given full content (missing folders are created). The "
            "write is atomic and can be reverted; the result shows a diff. Give the COMPLETE file content."
        ),
        parameters=_schema(
            {"path": _WRITE_PATH, "content": {"type": "string", "minLength": 1, "description": "The complete new file content."}},
            ["path", "content"],
        ),
        fn=os_errors_as_tool_errors(write_file),
        group="files",
    ),
    Tool(
        name="deleteFile",
        description="Delete a file, or a folder with everything in it. The deletion can be reverted.",
        parameters=_schema({"path": _PATH}, ["path"]),
        fn=os_errors_as_tool_errors(delete_file),
        group="files",
    ),
    Tool(
        name="listFiles",
        description=(
            "List the entries of one folder (default: the workspace root) with type and size, folders first. "
            "The answer gives the folder's true entry count; a big folder comes in pages: call again with the "
            "offset the answer names."
        ),
        parameters=_schema(
            {
                "path": {"type": "string", "description": "Folder relative to the workspace root; default '.'."},
                "offset": {"type": "integer", "minimum": 0, "description": "Skip this many entries (paging; default 0)."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_ENTRIES,
                          "description": f"At most this many entries (default {DEFAULT_LIST_ENTRIES})."},
            },
            [],
        ),
        fn=os_errors_as_tool_errors(list_files),
        group="files",
    ),
    Tool(
        name="getProjectStructure",
        description=(
            "Show the project's file tree, skipping .git, node_modules, virtualenvs, caches, build output "
            "and .gitignore'd paths. Use it first to get oriented."
        ),
        parameters=_schema({}, []),
        fn=os_errors_as_tool_errors(get_project_structure),
        group="files",
        path_params=(),
    ),
]
