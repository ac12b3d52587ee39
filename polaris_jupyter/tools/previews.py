"""What an edit would change, computed before it is allowed to: the diff shown with an approval.

An edit tool journals every change (``journal_edit`` hands the pre-image, post-image and diff
to ``ctx.edits``) *before* it writes. A preview therefore runs the tool itself against a
recorder that keeps the first file diff and stops the tool right there, so the diff is exactly
the one the tool would apply, computed by the tool's own code, and nothing is written. Only
tools known to journal before any write are previewed this way (:data:`DRY_RUN_TOOLS`);
``deleteFile`` is previewed from the files it would remove (a symlink is removed without a
journal entry, so it must never be dry-run). Other tools get no diff (a command is shown as its
arguments).

A preview that fails with a :class:`ToolError` (a bad path, a missing cell) means the call
cannot do anything: it is answered with that error instead of being put to the user.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

from polaris_jupyter.tools.base import Tool, ToolContext, ToolError

__all__ = ["DRY_RUN_TOOLS", "Preview", "preview_call"]

#: Tools whose every write goes through ``journal_edit`` first (files.py, notebook.py).
DRY_RUN_TOOLS = frozenset(
    {"writeFile", "editNotebookCell", "insertNotebookCell", "deleteNotebookCell", "moveNotebookCell"}
)
#: A folder deletion's preview lists at most this many characters of diffs.
MAX_PREVIEW_CHARS = 60_000


@dataclass(frozen=True)
class Preview:
    """``diff`` the call would apply (None: nothing to show); ``error`` if it cannot run at all."""

    diff: str | None = None
    error: str | None = None


class _Captured(BaseException):  # a BaseException: no tool's ``except Exception`` may swallow it
    def __init__(self, diff: str) -> None:
        self.diff = diff


class _DryRun:
    """An edit recorder that stops the tool at its first file edit, keeping the diff."""

    async def record(self, run_id: str, rel_path: str, before: bytes | None, after: bytes | None, diff: str) -> None:
        if rel_path.endswith("/"):  # a folder the edit would create: no content to show
            return
        raise _Captured(diff)

    async def recent_paths(self, limit: int = 50) -> list[str]:
        return []


async def preview_call(tool: Tool, arguments: dict[str, Any], ctx: ToolContext) -> Preview:
    """The diff ``tool(arguments)`` would apply in ``ctx``'s workspace; nothing is written."""
    try:
        if tool.name == "deleteFile":
            return Preview(diff=await asyncio.to_thread(_delete_diff, ctx, arguments))
        if tool.name not in DRY_RUN_TOOLS:
            return Preview()
        dry = dataclasses.replace(ctx, edits=_DryRun())
        try:
            await tool.fn(dict(arguments), dry)
        except _Captured as captured:
            return Preview(diff=captured.diff)
        return Preview(diff="")  # it returned before editing: the call changes nothing
    except ToolError as exc:
        return Preview(error=str(exc) or type(exc).__name__)
    except OSError as exc:
        return Preview(error=f"file system error: {exc.strerror or exc}")


def _delete_diff(ctx: ToolContext, arguments: dict[str, Any]) -> str:
    from polaris_jupyter.tools._args import check_args, get_str
    from polaris_jupyter.tools._fileio import read_existing
    from polaris_jupyter.tools.edits import make_diff
    from polaris_jupyter.tools.files import MAX_DELETE_BYTES, _collect_delete, _prepare_delete

    args = check_args("deleteFile", arguments, ("path",), ("path",))
    target, rel, kind = _prepare_delete(ctx.root, get_str(args, "path"))
    if kind == "link":
        return f"--- a/{rel}\n+++ /dev/null\nSymbolic link {rel} removed (not revertible)\n"
    if kind == "file":
        return make_diff(rel, read_existing(target), None)
    max_bytes = int(ctx.settings.get("max_delete_bytes", MAX_DELETE_BYTES))
    files, _folders, _links = _collect_delete(ctx.root, target, max_bytes)
    parts: list[str] = []
    size = 0
    for file_rel, before in files:
        diff = make_diff(file_rel, before, None, max_chars=4000)
        parts.append(diff)
        size += len(diff)
        if size > MAX_PREVIEW_CHARS:
            parts.append(f"… [{len(files) - len(parts)} more files]\n")
            break
    return "".join(parts) or f"--- a/{rel}/\n+++ /dev/null\nEmpty folder {rel} removed\n"
