"""The SQLite edit journal on the engine's store: one writer for the file, schema migrated by the
store, the journal's behaviour unchanged."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.jobs import SqliteStore
from polaris_jupyter.tools.base import ToolContext
from polaris_jupyter.tools.edits import EDITS_SCHEMA, SqliteEditJournal
from tests.tools.conftest import call


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    shared = SqliteStore(tmp_path / "polaris.db")
    await shared.open()
    yield shared
    await shared.close()


@pytest.mark.asyncio
async def test_the_journal_writes_and_reads_through_the_store_without_a_connection_of_its_own(
    store: SqliteStore, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Any] = []
    real_connect = sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(args)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counting_connect)
    journal = SqliteEditJournal(store)
    written_before = store.bytes_written
    ctx = ToolContext(root=workspace, run_id="run-S", edits=journal)
    (workspace / "a.txt").write_text("before\n")
    await call("writeFile", {"path": "a.txt", "content": "by the run\n"}, ctx)
    await call("writeFile", {"path": "sub/new.txt", "content": "new\n"}, ctx)
    assert [e["path"] for e in await journal.edits_for_run("run-S")] == ["a.txt", "sub", "sub/new.txt"]
    assert await journal.recent_paths() == ["sub/new.txt", "a.txt"]
    assert await journal.revert_run(workspace, "run-S") == ["a.txt", "sub/new.txt"]
    assert (workspace / "a.txt").read_text() == "before\n" and not (workspace / "sub").exists()
    assert list(await journal.reverted_runs(["run-S", "other"])) == ["run-S"]
    assert await journal.prune(older_than_s=-1) == 3

    assert opened == []  # no second connection to the file: every row went through the store
    assert not [t.name for t in threading.enumerate() if "edits" in t.name]
    assert store.bytes_written - written_before >= len(b"before\n")  # counted in the store's commits
    await journal.close()
    assert store.is_open  # the journal does not close a store it was given
    assert [tuple(r) for r in await store.query("SELECT COUNT(*) FROM file_edits")] == [(0,)]
    with pytest.raises(RuntimeError, match="closed"):
        await journal.recent_paths()


@pytest.mark.asyncio
async def test_a_journal_made_before_the_store_opens_is_migrated_with_it(tmp_path: Path) -> None:
    shared = SqliteStore(tmp_path / "polaris.db")
    journal = SqliteEditJournal(shared)
    await shared.open()
    try:
        assert (await shared.schema_versions())["edits"] == EDITS_SCHEMA.version
        await journal.record("r", "x.txt", None, b"x", "")
        rows = await shared.query("SELECT run_id, path, after_sha256 IS NOT NULL AS hashed FROM file_edits")
        assert [tuple(r) for r in rows] == [("r", "x.txt", 1)]
    finally:
        await journal.close()
        await shared.close()


@pytest.mark.asyncio
async def test_a_journal_with_hashes_but_no_revert_marks_is_migrated(tmp_path: Path, workspace: Path) -> None:
    """The journal's middle form (after the content hash, before the revert mark)."""
    db = tmp_path / "middle.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE file_edits (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, path TEXT NOT NULL,"
        " before BLOB, after_exists INTEGER NOT NULL, after_size INTEGER NOT NULL, diff TEXT NOT NULL,"
        " created_at TEXT NOT NULL, created_ts REAL NOT NULL, after_sha256 TEXT);"
        "INSERT INTO file_edits (run_id, path, before, after_exists, after_size, diff, created_at, created_ts,"
        " after_sha256) VALUES ('mid', 'm.txt', NULL, 1, 2, '', '2026-01-01T00:00:00.000Z', 0,"
        " '01a60e35df88d8b49546cb3f8f4ba4f406870f9b8e1f394c9d48ab73548d748d');"  # sha256 of "m\n"
    )
    conn.close()
    (workspace / "m.txt").write_text("m\n")
    journal = SqliteEditJournal(db)
    try:
        assert await journal.revert_run(workspace, "mid") == ["m.txt"]
        assert not (workspace / "m.txt").exists()
        assert list(await journal.reverted_runs(["mid"])) == ["mid"]
    finally:
        await journal.close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT version FROM schema_versions WHERE name = 'edits'").fetchone() == (1,)
    finally:
        conn.close()
