"""The edit journal: every write or delete a run makes, with the pre-image, so it can be undone.

Tools call ``ctx.edits.record(run_id, path, before, after, diff)`` just before they change a
file (``before`` is None when the file did not exist, ``after`` None when it is deleted).
Folders are journalled too, as paths ending in ``/``: ``before=None`` means the run created
the folder, ``before=b""`` that it existed (and is being deleted). ``revert_run`` puts every
path the run touched back to its state before the run's FIRST edit of it: files are rewritten
atomically, files the run created are deleted, folders it created are removed when empty.
Paths are re-checked against the workspace root, so a journal row can never make a revert
write outside it.

A revert never silently throws away work done after the run: each file must still be as the
run left it (its content hash is journalled) or already as it was before the run (so
reverting twice is harmless and gives the same result). A file changed since, by the user or
by a later run, makes the whole revert fail with :class:`RevertConflict`, changing nothing,
unless the caller passes ``force=True``. A revert that went through marks the run's rows
(``reverted_at``), so every client can show the run as reverted.

Two implementations: :class:`MemoryEditJournal` (tests, in-process kernels) and
:class:`SqliteEditJournal` (table ``file_edits`` in the run store's SQLite file, declared once as
:data:`EDITS_SCHEMA` and migrated by the store; rows are written through the store's writer
thread and group commits, never through a second connection, so the event loop never blocks).
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from polaris_jupyter.jobs import AddColumn, Schema, SqliteStore
from polaris_jupyter.tools._fileio import sniff_binary
from polaris_jupyter.tools.base import ToolContext, ToolError
from polaris_jupyter.tools.sandbox import atomic_write_bytes, check_path_text, is_protected, resolve_path

__all__ = [
    "EDITS_SCHEMA",
    "MAX_DIFF_CHARS",
    "EditEntry",
    "MemoryEditJournal",
    "RevertConflict",
    "SqliteEditJournal",
    "journal_edit",
    "journal_folder",
    "make_diff",
]

#: Diffs longer than this are cut (the pre-image itself is always kept whole).
MAX_DIFF_CHARS = 60_000


def make_diff(rel_path: str, before: bytes | None, after: bytes | None, max_chars: int = MAX_DIFF_CHARS) -> str:
    """A unified diff of one edit (``/dev/null`` for a missing side), cut at ``max_chars``."""
    old_name = f"a/{rel_path}" if before is not None else "/dev/null"
    new_name = f"b/{rel_path}" if after is not None else "/dev/null"
    if (before and sniff_binary(before[:65536])) or (after and sniff_binary(after[:65536])):
        return f"--- {old_name}\n+++ {new_name}\nBinary file {rel_path} changed\n"
    old_lines = (before or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    new_lines = (after or b"").decode("utf-8", errors="replace").splitlines(keepends=True)
    parts: list[str] = []
    size = 0
    for line in difflib.unified_diff(old_lines, new_lines, old_name, new_name):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        parts.append(line)
        size += len(line)
        if size > max_chars:
            parts.append("… [diff truncated]\n")
            break
    if not parts:
        return ""
    return "".join(parts)


async def journal_edit(
    ctx: ToolContext, rel_path: str, before: bytes | None, after: bytes | None, *, max_diff_chars: int = MAX_DIFF_CHARS
) -> str:
    """Diff one edit and hand it to ``ctx.edits`` (if any) BEFORE the tool changes the file.

    Returns the diff for the tool-call card. Edits made outside a run are journalled under run
    id ``""`` (they still count as recent edits for context ranking).
    """
    if max(len(before or b""), len(after or b"")) > 256_000:
        diff = await asyncio.to_thread(make_diff, rel_path, before, after, max_diff_chars)
    else:
        diff = make_diff(rel_path, before, after, max_diff_chars)
    if ctx.edits is not None:
        await ctx.edits.record(ctx.run_id or "", rel_path, before, after, diff)
    return diff


async def journal_folder(ctx: ToolContext, rel_path: str, *, existed: bool) -> None:
    """Journal a folder the tool is about to create (``existed=False``) or delete (True)."""
    if ctx.edits is not None:
        folder = rel_path.rstrip("/") + "/"
        await ctx.edits.record(ctx.run_id or "", folder, b"" if existed else None, None if existed else b"", "")


@dataclass
class EditEntry:
    """One journalled edit."""

    id: int
    run_id: str
    path: str
    before: bytes | None
    after_exists: bool
    after_size: int
    diff: str
    created_at: str
    #: sha256 of the content the edit wrote (None for deletions, folders and rows journalled
    #: before the hash was kept; those are compared by size).
    after_sha256: str | None = None
    #: When the run's edits were last reverted (ISO-8601 UTC), so every client can show it.
    reverted_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "runId": self.run_id,
            "path": self.path.rstrip("/"),
            "kind": "folder" if self.path.endswith("/") else "file",
            "existedBefore": self.before is not None,
            "existsAfter": self.after_exists,
            "beforeSize": len(self.before) if self.before is not None else None,
            "afterSize": self.after_size if self.after_exists else None,
            "diff": self.diff,
            "createdAt": self.created_at,
            "revertedAt": self.reverted_at,
        }


def _after_hash(rel_path: str, after: bytes | None) -> str | None:
    return None if after is None or rel_path.endswith("/") else sha256_hex(after)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RevertConflict(ToolError):
    """Files changed after the run: reverting would throw those changes away."""

    def __init__(self, paths: list[str]) -> None:
        shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
        super().__init__(
            f"{shown} changed after this run (by you or by a later run). Nothing was reverted, "
            "so those changes are kept; force the revert to overwrite them."
        )
        self.paths = paths


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_edits(entries: Iterable[EditEntry]) -> list[EditEntry]:
    """The earliest entry per path, in the order the run first touched them."""
    first: dict[str, EditEntry] = {}
    for entry in sorted(entries, key=lambda e: e.id):
        first.setdefault(entry.path, entry)
    return list(first.values())


def _last_edits(entries: Iterable[EditEntry]) -> dict[str, EditEntry]:
    """The latest entry per path: what the run left on disk."""
    return {entry.path: entry for entry in sorted(entries, key=lambda e: e.id)}


def _read_state(target: Path) -> bytes | str | None:
    """A file's bytes, None when it is missing, "folder" when a folder stands there (any str
    is a state that matches no journalled one)."""
    if os.path.isdir(target) and not os.path.islink(target):
        return "folder"
    try:
        with open(target, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):  # a file now stands where a parent was
        return None
    except OSError:
        return "unreadable"


def _is_as_left(last: EditEntry, current: bytes | str | None) -> bool:
    if isinstance(current, str):
        return False
    if not last.after_exists:
        return current is None
    if current is None:
        return False
    if last.after_sha256 is not None:
        return sha256_hex(current) == last.after_sha256
    return len(current) == last.after_size


def _conflicts(targets: list[tuple[EditEntry, Path]], last: dict[str, EditEntry]) -> list[str]:
    """Files that are neither as the run left them nor as they were before it."""
    # Folders that stood before the run: a file the run created in such a folder's place is
    # "as before" when the folder is back.
    folders_before = {f.path.rstrip("/") for f, _ in targets if f.path.endswith("/") and f.before is not None}
    changed: list[str] = []
    for first, target in targets:
        if first.path.endswith("/"):
            continue
        current = _read_state(target)
        if _is_as_left(last[first.path], current) or current == first.before:
            continue
        if current == "folder" and first.before is None and first.path in folders_before:
            continue
        changed.append(first.path)
    return changed


def _restore(root: Path, entries: list[EditEntry], last: dict[str, EditEntry], force: bool) -> list[str]:
    """Blocking part of ``revert_run``: validate every path and check for later changes
    first, then restore."""
    targets: list[tuple[EditEntry, Path]] = []
    for entry in entries:
        rel = entry.path.rstrip("/")
        try:
            check_path_text(rel)
            if rel in ("", ".") or is_protected(rel):
                raise ToolError(f"journal path {rel!r} is not revertible")
            targets.append((entry, resolve_path(root, rel)))
        except ToolError as exc:
            raise ToolError(f"revert refused, nothing was changed: {exc}") from None
    if not force:
        changed = _conflicts(targets, last)
        if changed:
            raise RevertConflict(changed)
    files = [(e, t) for e, t in targets if not e.path.endswith("/")]
    folders = [(e, t) for e, t in targets if e.path.endswith("/")]
    # 1. files the run created go first, so a folder can take their place again.
    for entry, target in files:
        if entry.before is None and (os.path.isfile(target) or os.path.islink(target)):
            os.unlink(target)
    # 2. folders that existed, 3. files that existed (parent folders are recreated as needed).
    for entry, target in folders:
        if entry.before is not None and not os.path.lexists(target):
            os.makedirs(target, exist_ok=True)
    for entry, target in files:
        if entry.before is not None:
            if os.path.isdir(target) and not os.path.islink(target):
                raise ToolError(f"cannot restore {entry.path!r}: a folder now stands in its place")
            atomic_write_bytes(root, target, entry.before)
    # 4. folders the run created, deepest first and only when empty: never drop others' files.
    created = [t for e, t in folders if e.before is None]
    for folder in sorted(created, key=lambda p: len(p.parts), reverse=True):
        try:
            os.rmdir(folder)
        except OSError:
            continue
    return [entry.path for entry, _ in files]


class _JournalBase:
    async def _entries_for_run(self, run_id: str) -> list[EditEntry]:
        raise NotImplementedError

    async def edits_for_run(self, run_id: str) -> list[dict[str, Any]]:
        """Every edit of a run, oldest first, as camelCase dicts (no file bytes)."""
        return [entry.to_json() for entry in await self._entries_for_run(run_id)]

    async def revert_run(self, root: Path, run_id: str, *, force: bool = False) -> list[str]:
        """Undo every edit of ``run_id`` under ``root``; returns the file paths restored or
        removed, in the order the run first touched them. Raises ToolError (changing nothing)
        if any journalled path would resolve outside ``root``, and :class:`RevertConflict`
        (changing nothing) if a file changed after the run, unless ``force``."""
        all_entries = await self._entries_for_run(run_id)
        entries = _first_edits(all_entries)
        if not entries:
            return []
        restored = await asyncio.to_thread(_restore, Path(root), entries, _last_edits(all_entries), force)
        await self._mark_reverted(run_id, _now_iso())
        return restored

    async def _mark_reverted(self, run_id: str, when: str) -> None:
        raise NotImplementedError

    async def reverted_runs(self, run_ids: Iterable[str]) -> dict[str, str]:
        """``{run id: revertedAt}`` for those of ``run_ids`` whose edits were reverted."""
        raise NotImplementedError


class MemoryEditJournal(_JournalBase):
    """Keeps the journal in memory (tests, in-process kernels without a store)."""

    def __init__(self) -> None:
        self._entries: list[EditEntry] = []

    async def record(
        self, run_id: str, rel_path: str, before: bytes | None, after: bytes | None, diff: str
    ) -> None:
        self._entries.append(
            EditEntry(
                id=len(self._entries) + 1,
                run_id=run_id,
                path=rel_path,
                before=None if before is None else bytes(before),
                after_exists=after is not None,
                after_size=len(after) if after is not None else 0,
                diff=diff,
                created_at=_now_iso(),
                after_sha256=_after_hash(rel_path, after),
            )
        )

    async def recent_paths(self, limit: int = 50) -> list[str]:
        seen: dict[str, None] = {}
        for entry in reversed(self._entries):
            if not entry.path.endswith("/") and entry.after_exists:
                seen.setdefault(entry.path, None)
            if len(seen) >= limit:
                break
        return list(seen)

    async def _entries_for_run(self, run_id: str) -> list[EditEntry]:
        return [entry for entry in self._entries if entry.run_id == run_id]

    async def _mark_reverted(self, run_id: str, when: str) -> None:
        for entry in self._entries:
            if entry.run_id == run_id:
                entry.reverted_at = when

    async def reverted_runs(self, run_ids: Iterable[str]) -> dict[str, str]:
        wanted = set(run_ids)
        return {e.run_id: e.reverted_at for e in self._entries if e.run_id in wanted and e.reverted_at}


#: Table ``file_edits``, registered with the store. Version 1 is the baseline: the shape the
#: unversioned journal created, reached from any of its earlier forms (the content hash and the
#: revert mark were added later, by an ALTER that the journal ran itself).
EDITS_SCHEMA = Schema(
    "edits",
    migrations=(
        (
            "CREATE TABLE IF NOT EXISTS file_edits (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,"
            " path TEXT NOT NULL, before BLOB, after_exists INTEGER NOT NULL, after_size INTEGER NOT NULL,"
            " diff TEXT NOT NULL, created_at TEXT NOT NULL, created_ts REAL NOT NULL, after_sha256 TEXT,"
            " reverted_at TEXT)",
            AddColumn("file_edits", "after_sha256", "TEXT"),
            AddColumn("file_edits", "reverted_at", "TEXT"),
            "CREATE INDEX IF NOT EXISTS file_edits_run ON file_edits (run_id, id)",
            "CREATE INDEX IF NOT EXISTS file_edits_ts ON file_edits (created_ts)",
        ),
    ),
)
_INSERT_EDIT = (
    "INSERT INTO file_edits (run_id, path, before, after_exists, after_size, diff, created_at, created_ts,"
    " after_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _entry(r: sqlite3.Row) -> EditEntry:
    return EditEntry(
        id=int(r[0]),
        run_id=str(r[1]),
        path=str(r[2]),
        before=None if r[3] is None else bytes(r[3]),
        after_exists=bool(r[4]),
        after_size=int(r[5]),
        diff=str(r[6]),
        created_at=str(r[7]),
        after_sha256=None if r[8] is None else str(r[8]),
        reverted_at=None if r[9] is None else str(r[9]),
    )


class SqliteEditJournal(_JournalBase):
    """The journal in table ``file_edits`` of the run store's SQLite file.

    Give it the engine's :class:`~polaris_jupyter.jobs.SqliteStore`: rows are then written by
    the store's writer thread, in its group commits, and read on its reader thread, so the file
    has one writer and the event loop never waits on SQLite. Given a path instead (tools and
    tests without an engine), the journal opens a store of its own on that file, on first use;
    never do that for a file an engine has open. :meth:`close` closes only a store it opened.
    """

    def __init__(self, store: SqliteStore | Path | str) -> None:
        self._owns_store = not isinstance(store, SqliteStore)
        self.store = store if isinstance(store, SqliteStore) else SqliteStore(store)
        self.db_path = Path(self.store.path)
        self.store.register(EDITS_SCHEMA)
        self._ready = False
        self._opening: asyncio.Lock | None = None
        self._closed = False

    async def _open(self) -> SqliteStore:
        if self._closed:
            raise RuntimeError("edit journal is closed")
        if not self._ready:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._owns_store and not self.store.is_open:
                    await self.store.open()
                await self.store.ensure_schema(EDITS_SCHEMA)
                self._ready = True
        return self.store

    async def record(
        self, run_id: str, rel_path: str, before: bytes | None, after: bytes | None, diff: str
    ) -> None:
        store = await self._open()
        store.execute(
            _INSERT_EDIT,
            (
                run_id,
                rel_path,
                None if before is None else bytes(before),
                int(after is not None),
                len(after) if after is not None else 0,
                diff,
                _now_iso(),
                time.time(),
                _after_hash(rel_path, after),
            ),
        )
        await store.commit()  # on disk before the tool changes the file

    async def recent_paths(self, limit: int = 50) -> list[str]:
        store = await self._open()
        rows = await store.query(
            "SELECT path FROM file_edits WHERE path NOT LIKE '%/' AND after_exists = 1"
            " GROUP BY path ORDER BY MAX(id) DESC LIMIT ?",
            (int(limit),),
        )
        return [str(row[0]) for row in rows]

    async def _entries_for_run(self, run_id: str) -> list[EditEntry]:
        store = await self._open()
        rows = await store.query(
            "SELECT id, run_id, path, before, after_exists, after_size, diff, created_at, after_sha256,"
            " reverted_at FROM file_edits WHERE run_id = ? ORDER BY id",
            (run_id,),
        )
        return [_entry(r) for r in rows]

    async def _mark_reverted(self, run_id: str, when: str) -> None:
        store = await self._open()
        store.execute("UPDATE file_edits SET reverted_at = ? WHERE run_id = ?", (when, run_id))
        await store.commit()

    async def reverted_runs(self, run_ids: Iterable[str]) -> dict[str, str]:
        wanted = sorted({r for r in run_ids if r})
        if not wanted:
            return {}
        store = await self._open()

        def query(conn: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT run_id, MAX(reverted_at) FROM file_edits WHERE run_id IN ({marks})"
                    " AND reverted_at IS NOT NULL GROUP BY run_id",
                    chunk,
                ).fetchall()
                found.update({str(r[0]): str(r[1]) for r in rows})
            return found

        return await store.read(query)

    async def prune(self, older_than_s: float) -> int:
        """Drop journal rows older than ``older_than_s`` seconds (for the cleanup task)."""
        cutoff = time.time() - older_than_s
        store = await self._open()

        def delete(conn: sqlite3.Connection) -> int:
            return int(conn.execute("DELETE FROM file_edits WHERE created_ts < ?", (cutoff,)).rowcount)

        return await store.write(delete)

    async def close(self) -> None:
        """Stop using the store, closing it only if the journal opened it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_store and self.store.is_open:
            await self.store.close()
