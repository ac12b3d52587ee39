"""The store owns every schema: registered parts are migrated by version in one transaction,
databases written before versions existed open without losing a row, and ``store.write`` runs
a function in the store's own group commit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from polaris_jupyter.chat.store import CHAT_SCHEMA, ChatStore
from polaris_jupyter.jobs import AddColumn, Engine, RunStatus, Schema, SchemaError, SqliteStore, TaskRegistry
from polaris_jupyter.jobs._schedules import SCHEDULES_SCHEMA
from polaris_jupyter.jobs._store import CORE_SCHEMA
from polaris_jupyter.tools.edits import EDITS_SCHEMA, SqliteEditJournal

# The DDL the unversioned code ran (copied from the commit before versions: the store's script,
# chat's statements, and the edit journal's first form, before its hash and revert columns).
_RUN_COLUMNS = (
    "id TEXT UNIQUE NOT NULL, task_id, status, payload, output, error, attempt_count, max_attempts, created_at,"
    " updated_at, started_at, finished_at, delay_until, ttl_s, next_attempt_at, idempotency_key,"
    " idempotency_expires_at, tags, metadata, concurrency_key, queue, replayed_from, batch_id, schedule_id,"
    " parent_run_id, conversation_id, checkpoints, max_duration_s, waiting_reason"
)
OLD_DDL = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (num INTEGER PRIMARY KEY AUTOINCREMENT, {_RUN_COLUMNS});
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_task ON runs(task_id, num);
CREATE INDEX IF NOT EXISTS runs_idem ON runs(task_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_conv ON runs(conversation_id) WHERE conversation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_finished ON runs(finished_at);
CREATE TABLE IF NOT EXISTS attempts (run_id TEXT NOT NULL, number INTEGER NOT NULL, status TEXT,
  started_at REAL, finished_at REAL, error TEXT, PRIMARY KEY (run_id, number));
CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, attempt INTEGER,
  ts REAL, level TEXT, message TEXT, data TEXT);
CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id, id);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, run_id TEXT, run_seq INTEGER, conversation_id TEXT,
  type TEXT, data TEXT, ts REAL);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, run_seq);
CREATE INDEX IF NOT EXISTS events_conv ON events(conversation_id, seq) WHERE conversation_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS schedules (id TEXT PRIMARY KEY, task_id TEXT NOT NULL, cron TEXT NOT NULL,
  timezone TEXT NOT NULL, payload TEXT, last_slot REAL, created_at REAL, active INTEGER NOT NULL DEFAULT 1,
  declarative INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT, updated_at REAL,
  PRIMARY KEY (ns, key));
INSERT OR IGNORE INTO meta VALUES ('schema_version', '1');
CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL, workspace TEXT,
  created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS messages (num INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
  conversation_id TEXT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, status TEXT NOT NULL, run_id TEXT,
  tool_calls TEXT, error TEXT, provider TEXT, model TEXT, usage TEXT, context TEXT, created_at REAL NOT NULL,
  updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS messages_conv ON messages(conversation_id, num);
CREATE TABLE IF NOT EXISTS file_edits (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,
  path TEXT NOT NULL, before BLOB, after_exists INTEGER NOT NULL, after_size INTEGER NOT NULL, diff TEXT NOT NULL,
  created_at TEXT NOT NULL, created_ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS file_edits_run ON file_edits (run_id, id);
CREATE INDEX IF NOT EXISTS file_edits_ts ON file_edits (created_ts);
"""
OLD_ROWS = """
INSERT INTO runs (id, task_id, status, payload, output, attempt_count, max_attempts, created_at, updated_at,
  finished_at, tags, metadata, queue, checkpoints)
  VALUES ('run_old', 'old-task', 'COMPLETED', '{"n":1}', '"done"', 1, 3, 100, 101, 101, '["t"]', '{}', 'default', '{}');
INSERT INTO events VALUES (1, 'run_old', 1, 'conv_old', 'run.status', '{"status":"COMPLETED"}', 101);
INSERT INTO logs (run_id, attempt, ts, level, message, data) VALUES ('run_old', 1, 100.5, 'info', 'hello', NULL);
INSERT INTO schedules VALUES ('sched_old', 'old-task', '0 2 * * *', 'UTC', NULL, 90, 80, 0, 0);
INSERT INTO kv VALUES ('kernels', 'k1', '{"x":1}', 100);
INSERT INTO conversations VALUES ('conv_old', 'Old chat', '/ws', 100, 101);
INSERT INTO messages (id, conversation_id, role, content, status, tool_calls, created_at, updated_at)
  VALUES ('msg_old', 'conv_old', 'user', 'hello from before', 'completed', '[]', 100, 100);
INSERT INTO file_edits (run_id, path, before, after_exists, after_size, diff, created_at, created_ts)
  VALUES ('run_old', 'old.txt', X'6f6c640a', 1, 4, '', '2026-01-01T00:00:00.000Z', 0);
"""


def sql(db: Path, statement: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(statement).fetchall()
    finally:
        conn.close()


def versions(db: Path) -> dict[str, int]:
    found = {"store": int(sql(db, "PRAGMA user_version")[0][0])}
    if sql(db, "SELECT 1 FROM sqlite_master WHERE name = 'schema_versions'"):
        found.update({str(n): int(v) for n, v in sql(db, "SELECT name, version FROM schema_versions")})
    return found


def columns(db: Path, table: str) -> list[str]:
    return [str(r[1]) for r in sql(db, f"PRAGMA table_info({table})")]


@pytest.mark.asyncio
async def test_a_database_from_before_versions_opens_and_migrates_without_losing_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(OLD_DDL + OLD_ROWS)
    conn.close()
    assert versions(db) == {"store": 0}

    engine = Engine(db, TaskRegistry())
    chat = ChatStore(engine.store)
    journal = SqliteEditJournal(engine.store)
    await engine.start()
    try:
        run = await engine.get_run("run_old")
        assert (run.status, run.payload, run.output, run.tags) == (RunStatus.COMPLETED, {"n": 1}, "done", ["t"])
        assert [e.type for e in await engine.store.events_since(0)] == ["run.status"]
        assert [line["message"] for line in await engine.store.logs("run_old")] == ["hello"]
        assert await engine.store.kv_get("kernels", "k1") == {"x": 1}
        assert [(s.id, s.options) for s in engine.schedules.list()] == [("sched_old", None)]  # options: added
        assert [m.content for m in await chat.list_messages("conv_old")] == ["hello from before"]
        edits = await journal.edits_for_run("run_old")
        assert [(e["path"], e["beforeSize"], e["revertedAt"]) for e in edits] == [("old.txt", 4, None)]
        await journal.record("run_new", "new.txt", None, b"hashed\n", "")
        assert await engine.store.schema_versions() == {"store": 1, "schedules": SCHEDULES_SCHEMA.version, "chat": CHAT_SCHEMA.version, "edits": 1}
    finally:
        await journal.close()
        await engine.stop()

    assert versions(db) == {"store": 1, "schedules": SCHEDULES_SCHEMA.version, "chat": CHAT_SCHEMA.version, "edits": 1}
    assert columns(db, "file_edits")[-2:] == ["after_sha256", "reverted_at"]
    assert sql(db, "SELECT path, after_sha256 IS NULL FROM file_edits ORDER BY id") == [("old.txt", 1), ("new.txt", 0)]
    assert not sql(db, "SELECT 1 FROM sqlite_master WHERE name = 'meta'")  # user_version replaces its row
    for table, count in (("runs", 1), ("events", 1), ("logs", 1), ("schedules", 1), ("kv", 1), ("messages", 1)):
        assert sql(db, f"SELECT COUNT(*) FROM {table}") == [(count,)], table


@pytest.mark.asyncio
async def test_a_fresh_database_gets_every_registered_schema_once(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    for _ in range(2):  # the second open finds everything at its version and changes nothing
        engine = Engine(db, TaskRegistry())
        ChatStore(engine.store)
        SqliteEditJournal(engine.store)
        await engine.start()
        await engine.stop()
        assert versions(db) == {"store": CORE_SCHEMA.version, "schedules": SCHEDULES_SCHEMA.version, "chat": CHAT_SCHEMA.version, "edits": 1}
    tables = {str(r[0]) for r in sql(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "events", "schedules", "kv", "conversations", "messages", "file_edits"} <= tables
    assert columns(db, "file_edits") == [
        "id", "run_id", "path", "before", "after_exists", "after_size", "diff", "created_at", "created_ts",
        "after_sha256", "reverted_at",
    ]
    assert EDITS_SCHEMA.version == 1 and SCHEDULES_SCHEMA.version == 2  # 2: the trigger options of each firing
    assert columns(db, "schedules")[-1] == "options"


NOTES_V1 = Schema("notes", migrations=(("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",),))
NOTES_V2 = Schema(
    "notes",
    migrations=(
        *NOTES_V1.migrations,
        # A plain ALTER fails when run twice: the version is what keeps it from running again.
        ("ALTER TABLE notes ADD COLUMN words INTEGER", "UPDATE notes SET words = length(text) - length(replace(text, ' ', '')) + 1"),
    ),
)


@pytest.mark.asyncio
async def test_a_part_is_migrated_by_version_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    store = SqliteStore(db)
    store.register(NOTES_V1)
    await store.open()
    store.execute("INSERT INTO notes (text) VALUES (?)", ("three little words",))
    await store.close()
    assert versions(db)["notes"] == 1

    for _ in range(2):  # upgraded once; the second open does not run the ALTER again
        store = SqliteStore(db)
        store.register(NOTES_V2)
        await store.open()
        rows = await store.query("SELECT text, words FROM notes")
        await store.close()
        assert [tuple(r) for r in rows] == [("three little words", 3)]
        assert versions(db)["notes"] == 2

    store = SqliteStore(db)  # older code than the file: refused, and the file is left as it was
    store.register(NOTES_V1)
    with pytest.raises(SchemaError, match=r"'notes' at version 2, newer than this polaris-jupyter knows \(version 1\)"):
        await store.open()
    assert not store.is_open
    assert versions(db)["notes"] == 2 and sql(db, "SELECT COUNT(*) FROM notes") == [(1,)]


@pytest.mark.asyncio
async def test_a_failing_migration_changes_nothing_at_all(tmp_path: Path) -> None:
    db = tmp_path / "broken.db"
    broken = Schema("broken", migrations=(("CREATE TABLE good (id INTEGER)", "CREATE TABLE oops (id INTEGER) nonsense"),))
    store = SqliteStore(db)
    store.register(NOTES_V1)
    store.register(broken)
    with pytest.raises(SchemaError, match="migrating schema 'broken' to version 1 failed at 'CREATE TABLE oops"):
        await store.open()
    # One transaction: not the core, not the notes, not the first half of the broken part.
    assert versions(db) == {"store": 0}
    assert sql(db, "SELECT name FROM sqlite_master") == []


@pytest.mark.asyncio
async def test_ensure_schema_applies_a_part_registered_after_open(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "late.db")
    await store.open()
    try:
        await store.ensure_schema(NOTES_V2)
        store.execute("INSERT INTO notes (text, words) VALUES ('a b', 2)")
        assert [tuple(r) for r in await store.query("SELECT text, words FROM notes")] == [("a b", 2)]
        await store.ensure_schema(NOTES_V2)  # applied: nothing to do
        assert (await store.schema_versions())["notes"] == 2
    finally:
        await store.close()


def test_registration_refuses_two_homes_for_one_name_and_bad_schemas(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "r.db")
    store.register(NOTES_V1)
    store.register(NOTES_V1)  # the same schema again is fine
    with pytest.raises(ValueError, match="another schema named 'notes'"):
        store.register(NOTES_V2)
    with pytest.raises(ValueError, match="'store' is the store's own"):
        store.register(Schema("store", migrations=(("SELECT 1",),)))
    with pytest.raises(ValueError, match="written for postgresql; this store is sqlite"):
        store.register(Schema("pg", migrations=(("SELECT 1",),), dialect="postgresql"))
    with pytest.raises(ValueError, match="at least one migration"):
        Schema("empty", migrations=())
    with pytest.raises(ValueError, match="migration 2 must be a non-empty tuple"):
        Schema("x", migrations=(("SELECT 1",), ()))
    with pytest.raises(ValueError, match="invalid step"):
        Schema("x", migrations=(("  ",),))
    with pytest.raises(ValueError, match="plain identifier"):
        Schema("bad name", migrations=(("SELECT 1",),))
    with pytest.raises(ValueError, match="unknown dialect"):
        Schema("x", migrations=(("SELECT 1",),), dialect="oracle")
    with pytest.raises(ValueError, match="column must be a plain identifier"):
        AddColumn("t", "c; DROP TABLE runs", "TEXT")
    with pytest.raises(ValueError, match="one column type"):
        AddColumn("t", "c", "TEXT; DROP TABLE runs")


@pytest.mark.asyncio
async def test_store_write_runs_in_order_in_the_group_commit_and_fails_alone(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "w.db")
    store.register(NOTES_V1)
    await store.open()
    try:
        store.execute("INSERT INTO notes (text) VALUES ('queued before')")
        count = await store.write(lambda c: int(c.execute("SELECT COUNT(*) FROM notes").fetchone()[0]))
        assert count == 1  # the statement queued before it ran first

        def half_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO notes (text) VALUES ('rolled back')")
            raise LookupError("nope")

        store.execute("INSERT INTO notes (text) VALUES ('same batch, kept')")
        with pytest.raises(LookupError, match="nope"):
            await store.write(half_then_fail)
        store.execute("INSERT INTO notes (text) VALUES ('after')")
        deleted = await store.write(lambda c: c.execute("DELETE FROM notes WHERE text = 'after'").rowcount)
        assert deleted == 1
        rows = await store.query("SELECT text FROM notes ORDER BY id")
        assert [r["text"] for r in rows] == ["queued before", "same batch, kept"]
    finally:
        await store.close()
