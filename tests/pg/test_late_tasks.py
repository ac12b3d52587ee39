"""Tasks registered while the engine runs (a kernel's, through the kernel-worker socket) on
PostgreSQL: DBOS listens only to the queues a process named when it launched. A Jupyter server
that executes tasks runs them through a queue of its own (``jobs/_pg_local.py``); a process
without one (a worker, ``execute_tasks=False``) refuses the trigger with a 503 that says why
and what to do, writing nothing, unless a live worker executes that task (then it runs there)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.errors import Unavailable
from polaris_jupyter.jobs import RunContext, RunStatus, TaskDef, TaskRegistry
from tests.pg.processes import Workers

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(180)]


async def _noop(payload: Any, ctx: RunContext) -> str:
    return "ran here"


async def test_a_task_registered_after_start_is_refused_at_trigger_time(make_engine: Any, registry: TaskRegistry) -> None:
    engine = await make_engine()
    engine.register(TaskDef(id="kernel-task", fn=_noop))  # what KernelWorkers.claim does
    with pytest.raises(Unavailable, match=r"'kernel-task' was defined after this process started.*task-modules") as err:
        await engine.trigger("kernel-task", {"x": 1})
    assert err.value.http_status == 503
    with pytest.raises(Unavailable):
        await engine.batch_trigger("kernel-task", [({"x": 2}, None)])
    rows = await engine.store.query("SELECT COUNT(*) AS n FROM runs WHERE task_id = ?", ("kernel-task",))
    assert int(rows[0]["n"]) == 0  # nothing left QUEUED


async def test_a_server_that_executes_tasks_runs_it_on_its_own_queue(make_engine: Any, registry: TaskRegistry) -> None:
    engine = await make_engine(role="server")
    engine.register(TaskDef(id="kernel-task", fn=_noop))
    handle = await engine.trigger("kernel-task", {"x": 1})
    run = await engine.wait_for(handle.id, timeout_s=30)
    assert run.status is RunStatus.COMPLETED and run.output == "ran here"
    assert engine.dispatcher.queue_of(run) == f"polaris.local.{engine.executor_id}"


@pytest.mark.slow
async def test_it_runs_when_a_live_worker_executes_that_task(
    make_engine: Any, registry: TaskRegistry, pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    engine = await make_engine(execute_tasks=False)
    engine.register(TaskDef(id="mark-once", fn=_noop))  # the worker's module defines it too
    markers = tmp_path / "markers"
    markers.mkdir()
    workers = Workers(pg_url, pg_schema, markers)
    try:
        await asyncio.to_thread(workers.start, 1)
        handle = await engine.trigger("mark-once", {"i": 7})
        run = await engine.wait_for(handle.id, timeout_s=60)
        assert run.status is RunStatus.COMPLETED and run.output == 7  # the worker's task ran, not ours
        assert (markers / "run-7").exists()
    finally:
        await asyncio.to_thread(workers.stop)
