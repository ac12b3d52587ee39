"""A run and its DBOS workflow are committed in one transaction: after ``trigger`` (or a batch)
returns, each run is on its DBOS queue; a commit that fails leaves neither the run nor its
workflow behind."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from polaris_jupyter.jobs import RunContext, TaskRegistry, task


def _registry() -> TaskRegistry:
    registry = TaskRegistry()

    @task(id="later", registry=registry)
    async def later(payload: Any, ctx: RunContext) -> None:
        raise AssertionError("nothing executes here")

    return registry


def _workflows(url: str, schema: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f'SELECT workflow_uuid, status, queue_name FROM "{schema}_dbos".workflow_status'
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.mark.asyncio
async def test_a_trigger_commits_its_run_and_its_workflow_together(pg_url: str, pg_schema: str) -> None:
    from polaris_jupyter.jobs.pg import PgEngine

    engine = PgEngine(pg_url, _registry(), schema=pg_schema, execute_tasks=False, role="client")
    await engine.start()
    try:
        handle = await engine.trigger("later")
        batch = await engine.batch_trigger("later", [(i, None) for i in range(50)])
        workflows = _workflows(pg_url, pg_schema)
        expected = {f"{h.id}.1" for h in [handle, *batch.runs]}
        assert expected <= set(workflows)
        assert {workflows[w] for w in expected} == {("ENQUEUED", "polaris.task.later")}
        rows = await engine.store.query("SELECT COUNT(*) AS n FROM runs WHERE dispatched_at IS NULL")
        assert rows[0]["n"] == 0
    finally:
        await engine.stop()


@pytest.mark.asyncio
async def test_a_failed_commit_leaves_neither_the_run_nor_its_workflow(pg_url: str, pg_schema: str) -> None:
    from polaris_jupyter.jobs.pg import PgEngine

    engine = PgEngine(pg_url, _registry(), schema=pg_schema, execute_tasks=False, role="client")
    await engine.start()
    try:
        engine.store.execute("INSERT INTO no_such_table VALUES (1)")  # fails the next commit
        with pytest.raises(psycopg.errors.UndefinedTable):
            await engine.trigger("later")
        assert await engine.store.query("SELECT id FROM runs") == []
        assert _workflows(pg_url, pg_schema) == {}
        handle = await engine.trigger("later")  # the store goes on
        assert set(_workflows(pg_url, pg_schema)) == {f"{handle.id}.1"}
    finally:
        await engine.stop()
