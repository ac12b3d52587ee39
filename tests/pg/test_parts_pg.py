"""The parts that keep tables (chat, the edit journal, schedules, approvals, cell proposals) on
PostgreSQL: their one SQLite schema is rendered for PostgreSQL at the same versions, and their
own queries (subqueries without alias, ``LIKE '%/'``, ``rowid``, rows read by index, blobs,
boolean flags) return what they return on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.chat.approvals import APPROVALS_SCHEMA, Approval, ApprovalStatus, ApprovalStore
from polaris_jupyter.chat.store import CHAT_SCHEMA, ChatStore, Message, MessageStatus
from polaris_jupyter.jobs import Schema, SchemaError, SqliteStore
from polaris_jupyter.jobs._schedules import SCHEDULES_SCHEMA
from polaris_jupyter.tools.base import ToolContext
from polaris_jupyter.tools.edits import EDITS_SCHEMA, SqliteEditJournal
from polaris_jupyter.tools.notebook_proposals import PROPOSALS_SCHEMA, Proposal, SqliteProposals
from tests.tools.conftest import call

PART_SCHEMAS = (CHAT_SCHEMA, EDITS_SCHEMA, SCHEDULES_SCHEMA, APPROVALS_SCHEMA, PROPOSALS_SCHEMA)


@pytest_asyncio.fixture
async def store(pg_url: str, pg_schema: str) -> AsyncIterator[Any]:
    from polaris_jupyter.jobs.pg import PgStore

    shared = PgStore(pg_url, pg_schema)
    for schema in PART_SCHEMAS:
        shared.register(schema)
    await shared.open()
    yield shared
    await shared.close()


@pytest.mark.asyncio
async def test_every_part_opens_on_postgresql_at_the_version_it_has_on_sqlite(store: Any, tmp_path: Path) -> None:
    sqlite = SqliteStore(tmp_path / "polaris.db")
    for schema in PART_SCHEMAS:
        sqlite.register(schema)
    await sqlite.open()
    try:
        on_sqlite = await sqlite.schema_versions()
    finally:
        await sqlite.close()
    on_pg = await store.schema_versions()
    parts = {s.name: s.version for s in PART_SCHEMAS}
    assert {k: on_pg[k] for k in parts} == parts == {k: on_sqlite[k] for k in parts}
    assert CHAT_SCHEMA.version >= 3 and SCHEDULES_SCHEMA.version >= 2  # later migrations are applied too
    columns = await store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = 'schedules'",
        (store.schema,),
    )
    assert "options" in {r["column_name"] for r in columns}


@pytest.mark.asyncio
async def test_chat_rows_round_trip_and_the_last_n_messages_come_in_order(store: Any) -> None:
    chat = ChatStore(store)
    await chat.migrate()
    conv = await chat.create_conversation("Plots", "/work/ws", 100.0)
    chat.set_conversation_model(conv.id, "openai", "gpt-x", 101.0)
    chat.set_conversation_mode(conv.id, "auto-edit", 102.0)
    for i in range(5):
        status = MessageStatus.PROCESSING if i == 4 else MessageStatus.COMPLETED
        chat.put_message(Message(f"msg_{i}", conv.id, "user" if i % 2 == 0 else "assistant", f"text {i}", status,
                                 110.0 + i, 110.0 + i, tool_calls=[{"id": f"c{i}", "name": "readFile"}]))
    got = await chat.get_conversation(conv.id)
    assert got is not None and (got.provider, got.model, got.permission_mode) == ("openai", "gpt-x", "auto-edit")
    last_two = await chat.list_messages(conv.id, limit=2)  # FROM (SELECT ... LIMIT ?) ORDER BY num
    assert [m.id for m in last_two] == ["msg_3", "msg_4"]
    assert last_two[0].tool_calls == [{"id": "c3", "name": "readFile"}]
    assert [m.id for m in await chat.unfinished_messages()] == ["msg_4"]
    assert await chat.stale_conversations(before=200.0) == [conv.id]
    await chat.delete_conversation(conv.id)
    assert await chat.get_conversation(conv.id) is None and await chat.list_messages(conv.id) == []


@pytest.mark.asyncio
async def test_the_edit_journal_records_reverts_and_prunes_on_postgresql(store: Any, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    journal = SqliteEditJournal(store)
    ctx = ToolContext(root=workspace, run_id="run-S", edits=journal)
    (workspace / "a.txt").write_bytes(b"before\x00\xff\n")  # bytes, not text: BYTEA
    await call("writeFile", {"path": "a.txt", "content": "by the run\n"}, ctx)
    await call("writeFile", {"path": "sub/new.txt", "content": "new\n"}, ctx)
    assert [e["path"] for e in await journal.edits_for_run("run-S")] == ["a.txt", "sub", "sub/new.txt"]
    assert await journal.recent_paths() == ["sub/new.txt", "a.txt"]  # the folder entry ("sub/") is not a file
    assert await journal.revert_run(workspace, "run-S") == ["a.txt", "sub/new.txt"]
    assert (workspace / "a.txt").read_bytes() == b"before\x00\xff\n" and not (workspace / "sub").exists()
    assert list(await journal.reverted_runs(["run-S", "other"])) == ["run-S"]
    assert await journal.prune(older_than_s=-1) == 3
    assert [tuple(r) for r in await store.query("SELECT COUNT(*) FROM file_edits")] == [(0,)]
    await journal.close()
    assert store.is_open


@pytest.mark.asyncio
async def test_proposals_keep_insertion_order_by_rowid_and_decide_once(store: Any) -> None:
    proposals = SqliteProposals(store)
    made = [Proposal(f"prop_{i}", "run-P", f"call_{i}", "nb.ipynb", i, None, "code", "x = 1", f"x = {i}", "diff",
                     "why", "pending", "2025-01-01T00:00:00Z") for i in (2, 0, 1)]
    for proposal in made:
        await proposals.record(proposal)
    assert [p.id for p in await proposals.for_run("run-P")] == ["prop_2", "prop_0", "prop_1"]  # same created_at
    assert await proposals.decide("prop_0", "applied", "2025-01-01T00:01:00Z") is True
    assert await proposals.decide("prop_0", "discarded", "2025-01-01T00:02:00Z") is False
    got = await proposals.get("prop_0")
    assert got is not None and (got.status, got.cell_index) == ("applied", 0)


@pytest.mark.asyncio
async def test_approvals_round_trip(store: Any) -> None:
    approvals = ApprovalStore(store)
    await approvals.migrate()
    for step in (1, 2):
        approvals.put(Approval(f"appr_{step}", "run-A", step, "msg", "conv", f"call_{step}", "writeFile",
                               {"path": "a.py"}, "--- diff", "write", ApprovalStatus.PENDING, 10.0 + step))
    await store.commit()
    assert [a.id for a in await approvals.list(ApprovalStatus.PENDING)] == ["appr_2", "appr_1"]
    got = await approvals.get("appr_1")
    assert got is not None and got.arguments == {"path": "a.py"} and got.step == 1


@pytest.mark.asyncio
async def test_a_step_postgresql_cannot_run_is_refused_with_the_parts_name(store: Any) -> None:
    bad = Schema("legacy_part", migrations=(("CREATE TABLE t (a TEXT)", "INSERT OR IGNORE INTO t VALUES ('x')"),))
    with pytest.raises(SchemaError, match=r"legacy_part.*migration 1.*INSERT OR"):
        store.register(bad)
    with pytest.raises(SchemaError, match="legacy_part"):
        await store.ensure_schema(bad)
