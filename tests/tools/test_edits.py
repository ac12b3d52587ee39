"""The edit journal: diffs, both journal implementations, and revert semantics."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from polaris_jupyter.tools.base import ToolContext, ToolError
from polaris_jupyter.tools.edits import MemoryEditJournal, RevertConflict, SqliteEditJournal, make_diff
from tests.tools.conftest import call, snapshot


def test_make_diff_shapes() -> None:
    created = make_diff("a.py", None, b"x = 1\n")
    assert created.startswith("--- /dev/null\n+++ b/a.py\n") and "+x = 1\n" in created
    deleted = make_diff("a.py", b"x = 1\n", None)
    assert deleted.startswith("--- a/a.py\n+++ /dev/null\n") and "-x = 1\n" in deleted
    changed = make_diff("a.py", b"a\nb\n", b"a\nc")
    assert "-b\n+c\n\\ No newline at end of file\n" in changed
    assert make_diff("a.py", b"same\n", b"same\n") == ""
    assert "Binary file img.png changed" in make_diff("img.png", b"\x89PNG\x00\x01", b"\x89PNG\x00\x02")
    long = make_diff("big.txt", None, b"".join(b"line %d\n" % i for i in range(100_000)), max_chars=5000)
    assert len(long) < 5200 and long.endswith("… [diff truncated]\n")


@pytest_asyncio.fixture(params=["memory", "sqlite"])
async def any_journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MemoryEditJournal | SqliteEditJournal]:
    if request.param == "memory":
        yield MemoryEditJournal()
        return
    journal = SqliteEditJournal(tmp_path / "state" / "polaris.db")
    yield journal
    await journal.close()


@pytest.mark.asyncio
async def test_record_list_and_recent(any_journal: MemoryEditJournal | SqliteEditJournal) -> None:
    await any_journal.record("r1", "a.txt", None, b"1", "diff-a")
    await any_journal.record("r1", "dir/", None, b"", "")
    await any_journal.record("r2", "b.txt", b"old", b"new", "diff-b")
    await any_journal.record("r1", "a.txt", b"1", b"22", "diff-a2")
    await any_journal.record("r2", "gone.txt", b"x", None, "diff-gone")
    edits = await any_journal.edits_for_run("r1")
    assert [(e["path"], e["kind"], e["existedBefore"], e["existsAfter"], e["diff"]) for e in edits] == [
        ("a.txt", "file", False, True, "diff-a"),
        ("dir", "folder", False, True, ""),
        ("a.txt", "file", True, True, "diff-a2"),
    ]
    assert edits[2]["beforeSize"] == 1 and edits[2]["afterSize"] == 2 and edits[0]["runId"] == "r1"
    assert edits[0]["createdAt"].endswith("Z")
    assert await any_journal.edits_for_run("nope") == []
    assert await any_journal.recent_paths() == ["a.txt", "b.txt"]
    assert await any_journal.recent_paths(limit=1) == ["a.txt"]


@pytest.mark.asyncio
async def test_revert_restores_first_pre_image_and_is_idempotent(
    any_journal: MemoryEditJournal | SqliteEditJournal, workspace: Path
) -> None:
    (workspace / "mod.txt").write_bytes(b"original\n")
    (workspace / "del.bin").write_bytes(bytes(range(256)))
    (workspace / "other.txt").write_text("other run\n")
    initial = snapshot(workspace)
    ctx = ToolContext(root=workspace, run_id="run-A", edits=any_journal)
    await call("writeFile", {"path": "mod.txt", "content": "first\n"}, ctx)
    await call("writeFile", {"path": "mod.txt", "content": "second\n"}, ctx)
    await call("writeFile", {"path": "made/inner/new.txt", "content": "new\n"}, ctx)
    await call("deleteFile", {"path": "del.bin"}, ctx)
    other = ToolContext(root=workspace, run_id="run-B", edits=any_journal)
    await call("writeFile", {"path": "other.txt", "content": "changed by B\n"}, other)
    reverted = await any_journal.revert_run(workspace, "run-A")
    assert reverted == ["mod.txt", "made/inner/new.txt", "del.bin"]
    after = snapshot(workspace)
    assert after.pop("other.txt")[1] == b"changed by B\n"  # run B is untouched
    initial.pop("other.txt")
    assert after == initial  # includes: folders the run created are gone
    assert await any_journal.revert_run(workspace, "run-A") == reverted
    assert await any_journal.revert_run(workspace, "unknown-run") == []


@pytest.mark.asyncio
async def test_revert_refuses_to_discard_later_changes_unless_forced(
    any_journal: MemoryEditJournal | SqliteEditJournal, workspace: Path
) -> None:
    (workspace / "a.txt").write_text("a before\n")
    (workspace / "b.txt").write_text("b before\n")
    (workspace / "gone.txt").write_text("deleted by the run\n")
    ctx = ToolContext(root=workspace, run_id="run-A", edits=any_journal)
    await call("writeFile", {"path": "a.txt", "content": "a by the run\n"}, ctx)
    await call("writeFile", {"path": "b.txt", "content": "b by the run\n"}, ctx)
    await call("writeFile", {"path": "new.txt", "content": "created by the run\n"}, ctx)
    await call("deleteFile", {"path": "gone.txt"}, ctx)
    # After the run: the user edits a.txt (same size: the hash, not the size, tells), a later
    # run rewrites new.txt, and the user creates gone.txt again.
    (workspace / "a.txt").write_text("a BY THE RUN\n")
    later = ToolContext(root=workspace, run_id="run-B", edits=any_journal)
    await call("writeFile", {"path": "new.txt", "content": "rewritten by run B\n"}, later)
    (workspace / "gone.txt").write_text("the user's new gone.txt\n")
    before = snapshot(workspace)

    with pytest.raises(RevertConflict) as caught:
        await any_journal.revert_run(workspace, "run-A")
    assert caught.value.paths == ["a.txt", "new.txt", "gone.txt"]
    assert "a.txt, new.txt, gone.txt changed after this run" in str(caught.value)
    assert "Nothing was reverted" in str(caught.value) and "force" in str(caught.value)
    assert snapshot(workspace) == before  # b.txt, which did not change, is not reverted either

    # A file back as it was before the run is not a conflict (the user undid it by hand).
    (workspace / "a.txt").write_text("a before\n")
    with pytest.raises(RevertConflict) as caught:
        await any_journal.revert_run(workspace, "run-A")
    assert caught.value.paths == ["new.txt", "gone.txt"]

    assert await any_journal.reverted_runs(["run-A", "run-B"]) == {}  # refused reverts leave no mark
    assert await any_journal.revert_run(workspace, "run-A", force=True) == ["a.txt", "b.txt", "new.txt", "gone.txt"]
    marks = await any_journal.reverted_runs(["run-A", "run-B", "nope"])
    assert list(marks) == ["run-A"] and marks["run-A"].endswith("Z")
    assert {e["revertedAt"] for e in await any_journal.edits_for_run("run-A")} == {marks["run-A"]}
    assert {e["revertedAt"] for e in await any_journal.edits_for_run("run-B")} == {None}
    assert (workspace / "a.txt").read_text() == "a before\n" and (workspace / "b.txt").read_text() == "b before\n"
    assert not (workspace / "new.txt").exists()
    assert (workspace / "gone.txt").read_text() == "deleted by the run\n"
    # Reverting again is harmless: every file is as it was before the run.
    assert await any_journal.revert_run(workspace, "run-A") == ["a.txt", "b.txt", "new.txt", "gone.txt"]


@pytest.mark.asyncio
async def test_rows_from_an_older_journal_are_migrated_and_compared_by_size(tmp_path: Path, workspace: Path) -> None:
    """A journal written before content hashes were kept: the column is added on open, and
    its rows are checked by size, which still catches most changes."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE file_edits (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, path TEXT NOT NULL,"
        " before BLOB, after_exists INTEGER NOT NULL, after_size INTEGER NOT NULL, diff TEXT NOT NULL,"
        " created_at TEXT NOT NULL, created_ts REAL NOT NULL);"
        "INSERT INTO file_edits (run_id, path, before, after_exists, after_size, diff, created_at, created_ts)"
        " VALUES ('old-run', 'old.txt', X'6f6c640a', 1, 4, '', '2026-01-01T00:00:00.000Z', 0);"
    )
    conn.commit()
    conn.close()
    (workspace / "old.txt").write_text("longer than the run left it\n")
    journal = SqliteEditJournal(db)
    try:
        with pytest.raises(RevertConflict):
            await journal.revert_run(workspace, "old-run")
        (workspace / "old.txt").write_text("new\n")  # the size the run left
        assert await journal.revert_run(workspace, "old-run") == ["old.txt"]
        assert (workspace / "old.txt").read_text() == "old\n"
        await call("writeFile", {"path": "fresh.txt", "content": "hashed\n"}, ToolContext(root=workspace, run_id="r", edits=journal))
    finally:
        await journal.close()
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT path, after_sha256 IS NULL, reverted_at IS NULL FROM file_edits ORDER BY id").fetchall()
    finally:
        conn.close()
    assert rows == [("old.txt", 1, 0), ("fresh.txt", 0, 1)]


@pytest.mark.asyncio
async def test_revert_keeps_foreign_files_in_folders_the_run_created(
    any_journal: MemoryEditJournal | SqliteEditJournal, workspace: Path
) -> None:
    ctx = ToolContext(root=workspace, run_id="run-A", edits=any_journal)
    await call("writeFile", {"path": "made/new.txt", "content": "new\n"}, ctx)
    (workspace / "made" / "user.txt").write_text("the user's own file\n")
    await any_journal.revert_run(workspace, "run-A")
    assert not (workspace / "made" / "new.txt").exists()
    assert (workspace / "made" / "user.txt").read_text() == "the user's own file\n"


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", ["../outside/secret.txt", "/etc/passwd", "escape/secret.txt", ".git/config", "a\x00b"])
async def test_revert_refuses_paths_outside_root_and_changes_nothing(
    any_journal: MemoryEditJournal | SqliteEditJournal, workspace: Path, outside: Path, bad: str
) -> None:
    (workspace / "escape").symlink_to(outside)
    (workspace / "ok.txt").write_text("current\n")
    await any_journal.record("run-X", "ok.txt", b"old\n", b"current\n", "")
    await any_journal.record("run-X", bad, b"pwned\n", None, "")
    before_ws, before_out = snapshot(workspace), snapshot(outside)
    with pytest.raises(ToolError, match="revert refused, nothing was changed"):
        await any_journal.revert_run(workspace, "run-X")
    assert snapshot(workspace) == before_ws and snapshot(outside) == before_out


@pytest.mark.asyncio
async def test_sqlite_journal_persists_in_its_own_wal_table(tmp_path: Path, workspace: Path) -> None:
    db = tmp_path / "polaris.db"
    first = SqliteEditJournal(db)
    ctx = ToolContext(root=workspace, run_id="run-P", edits=first)
    await call("writeFile", {"path": "p.txt", "content": "persisted\n"}, ctx)
    await first.close()
    await first.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await first.edits_for_run("run-P")
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT path, before IS NULL FROM file_edits").fetchall() == [("p.txt", 1)]
    finally:
        conn.close()
    second = SqliteEditJournal(db)
    try:
        assert [e["path"] for e in await second.edits_for_run("run-P")] == ["p.txt"]
        assert await second.revert_run(workspace, "run-P") == ["p.txt"]
        assert not (workspace / "p.txt").exists()
        assert await second.prune(older_than_s=-1) == 1
        assert await second.edits_for_run("run-P") == []
    finally:
        await second.close()


@pytest.mark.asyncio
async def test_edits_outside_a_run_are_journalled_under_an_empty_run_id(workspace: Path) -> None:
    journal = MemoryEditJournal()
    await call("writeFile", {"path": "a.txt", "content": "x"}, ToolContext(root=workspace, edits=journal))
    assert [e["path"] for e in await journal.edits_for_run("")] == ["a.txt"]
    assert await journal.recent_paths() == ["a.txt"]
