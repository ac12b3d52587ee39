"""Wait points (approvals) on PostgreSQL: a run suspended in WAITING by one process is resumed
by a decision made in another, exactly once, as the same attempt, on whichever executor is
alive; a resume that arrives before the suspension is kept on the row; the suspension's
timeout continues it; and a decision stored before everything stopped is resumed at the next
start. Engine level with a task that waits, then chat level with a real worker process, the
scripted model, and the approvals service in this process as the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from polaris_jupyter.chat.approvals import ApprovalStatus
from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import FakeClock, RunStatus, TaskRegistry
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.helpers import async_wait_until
from tests.jobs.test_waitpoints import gated, racy
from tests.pg.processes import Workers
from tests.pg.test_chat_on_workers import _isolated_env

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(300)]


async def row_of(engine: Any, run_id: str) -> Any:
    rows = await engine.store.query("SELECT status, waiting_reason, attempt_count, executor_id FROM runs WHERE id = ?",
                                    (run_id,))
    return rows[0]


async def waiting(engine: Any, run_id: str) -> None:
    async def check() -> Any:
        row = await row_of(engine, run_id)
        return row["status"] == "WAITING" and row["waiting_reason"]
    await async_wait_until(check, timeout_s=60, what=f"run {run_id} WAITING")


# -- the engine ---------------------------------------------------------------------------------
async def test_a_waiting_run_holds_no_slot_and_two_resumes_continue_it_once(make_engine: Any, registry: TaskRegistry) -> None:
    log: list[tuple[str, int]] = []
    gated(registry, log)
    engine = await make_engine(pool_size=1)
    handle = await engine.trigger("gated", "go?")
    await waiting(engine, handle.id)
    assert (await engine.get_run(handle.id)).waiting_reason == "waiting for a yes"
    other = await engine.trigger_and_wait("quick")  # the one slot is free while it waits
    assert other.ok and engine._executing == 0
    # Two servers deciding at once: the row decides, one continuation is enqueued.
    outcomes = await asyncio.gather(engine.resume_waiting(handle.id), engine.resume_waiting(handle.id))
    assert sorted(outcomes) == ["already", "resumed"]
    result = await handle.result(timeout_s=30)
    assert result.ok and result.output == {"answered": "go?", "attempt": 1}
    assert log == [("start", 1), ("start", 1)]
    assert [(a.number, a.status) for a in await engine.store.attempts(handle.id)] == [(1, "COMPLETED")]
    assert await engine.resume_waiting(handle.id) == "final"
    assert await engine.resume_waiting("run_unknown") == "missing"


async def test_a_resume_that_arrives_before_the_suspension_is_kept_on_the_row(make_engine: Any, registry: TaskRegistry) -> None:
    gate = asyncio.Event()
    starts: list[int] = []
    racy(registry, gate, starts)
    engine = await make_engine()
    handle = await engine.trigger("racy")
    await async_wait_until(lambda: len(starts) == 1, what="executing")
    assert await engine.resume_waiting(handle.id) == "requested"
    gate.set()
    result = await handle.result(timeout_s=30)
    assert result.ok and result.output == "continued" and starts == [1, 1]


async def test_the_timeout_continues_the_run_on_the_engine_clock(make_engine: Any, registry: TaskRegistry) -> None:
    log: list[tuple[str, int]] = []
    gated(registry, log, timeout_s=300)
    clock = FakeClock()
    engine = await make_engine(clock=clock)
    handle = await engine.trigger("gated", "q")
    await waiting(engine, handle.id)
    assert (await engine.get_run(handle.id)).next_attempt_at == pytest.approx(clock.now() + 300)
    clock.advance(299)
    await engine.keeper.sweep()  # what every process's sweep does: nothing is due yet
    assert (await row_of(engine, handle.id))["status"] == "WAITING" and log == [("start", 1)]
    clock.advance(1)
    result = await handle.result(timeout_s=30)
    assert result.ok and log == [("start", 1), ("start", 1)]


async def test_a_waiting_run_survives_a_restart_and_a_cancel_cleans_up(make_engine: Any, registry: TaskRegistry) -> None:
    log: list[tuple[str, int]] = []
    cancelled: list[str] = []
    gated(registry, log, cancelled=cancelled)
    first = await make_engine()
    resumed = await first.trigger("gated", "q")
    dropped = await first.trigger("gated", "r")
    await waiting(first, resumed.id)
    await waiting(first, dropped.id)
    await first.stop()

    second = await make_engine()
    await second.keeper.sweep()
    assert (await row_of(second, resumed.id))["status"] == "WAITING"  # not restarted by recovery
    assert await second.resume_waiting(resumed.id) == "resumed"
    run = await second.wait_for(resumed.id, timeout_s=30)
    assert run.status is RunStatus.COMPLETED and run.output == {"answered": "q", "attempt": 1}
    # Cancel of a run suspended half way through an attempt: its on_cancel hook runs (as embedded).
    assert (await second.cancel(dropped.id)).status is RunStatus.CANCELED
    assert cancelled == [dropped.id]
    assert await second.resume_waiting(dropped.id) == "final"
    assert sorted(log) == [("start", 1)] * 3


# -- chat: approvals decided here, the turn on a worker process -----------------------------------
WRITE = {"path": "notes/hello.txt", "content": "hello\n"}


@pytest_asyncio.fixture
async def model() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer(default=None) as server:
        yield server


class Deployment:
    """This process as a Jupyter server that executes nothing, and worker processes that do."""

    def __init__(self, url: str, schema: str, tmp_path: Path, model: ScriptedModelServer) -> None:
        self.url, self.schema = url, schema
        self.workspace = tmp_path / "ws"
        self.workspace.mkdir()
        markers = tmp_path / "markers"
        markers.mkdir()
        self.workers = Workers(url, schema, markers)
        self.worker_env = _isolated_env(
            tmp_path / "worker", OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="sk-worker",
            OPENAI_MODEL="scripted-1", POLARIS_PROVIDER="openai", POLARIS_PERMISSION_MODE="ask",
        )
        self.runtime: PolarisRuntime | None = None

    async def start_server(self) -> PolarisRuntime:
        config = PolarisConfig(database_url=self.url, database_schema=self.schema, execute_tasks=False,
                               permission_mode="ask")
        self.runtime = PolarisRuntime(config, root_dir=self.workspace, registry=TaskRegistry())
        await self.runtime.start()
        return self.runtime

    async def stop_server(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
            self.runtime = None

    async def start_worker(self) -> str:
        [proc] = await asyncio.to_thread(self.workers.start, 1, args=("--workspace", str(self.workspace)),
                                         env=self.worker_env)
        return self.workers.executor_id(proc)

    async def stop_workers(self) -> None:
        await asyncio.to_thread(self.workers.stop)

    def row(self, run_id: str) -> tuple[Any, ...]:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                f'SELECT status, attempt_count, executor_id, waiting_reason FROM "{self.schema}".runs WHERE id = %s',
                (run_id,),
            ).fetchone()
        assert row is not None
        return tuple(row)

    async def ask(self) -> tuple[str, str]:
        assert self.runtime is not None
        chat = self.runtime.chat
        conv = await chat.create_conversation()
        await chat.set_permission_mode(conv.id, "ask")
        message, run_id = await chat.post_message(conv.id, "write the file")
        await async_wait_until(lambda: self.row(run_id)[0] == "WAITING" and self.row(run_id)[3], timeout_s=90,
                               what="the turn waits for its approval")
        return message.id, run_id

    async def finished(self, run_id: str) -> tuple[Any, ...]:
        await async_wait_until(lambda: RunStatus(self.row(run_id)[0]).is_final, timeout_s=90, what="run final")
        return self.row(run_id)


@pytest_asyncio.fixture
async def deployment(pg_url: str, pg_schema: str, tmp_path: Path, model: ScriptedModelServer) -> AsyncIterator[Deployment]:
    env = Deployment(pg_url, pg_schema, tmp_path, model)
    try:
        yield env
    finally:
        await env.stop_workers()
        await env.stop_server()


@pytest.mark.slow
async def test_a_decision_on_the_server_resumes_the_turn_on_another_live_worker(
    deployment: Deployment, model: ScriptedModelServer
) -> None:
    model.enqueue(Response.tool("writeFile", WRITE, text="Writing it."), Response(text="Done."))
    runtime = await deployment.start_server()
    first = await deployment.start_worker()
    message_id, run_id = await deployment.ask()
    status, attempts, suspended_by, _reason = deployment.row(run_id)
    assert (status, attempts, suspended_by) == ("WAITING", 1, first)
    [approval] = await runtime.chat.approvals.list("pending")
    assert approval.run_id == run_id and approval.tool_name == "writeFile"
    target = deployment.workspace / "notes" / "hello.txt"
    assert not target.exists()

    await deployment.stop_workers()  # the worker that suspended it is gone; another one is alive
    second = await deployment.start_worker()
    decided = await runtime.chat.approvals.decide(approval.id, "approve")
    assert decided.status is ApprovalStatus.APPROVED
    status, attempts, executor, _reason = await deployment.finished(run_id)
    assert (status, attempts, executor) == ("COMPLETED", 1, second)  # the same attempt, on the live worker
    assert target.read_text() == "hello\n"
    assert len(model.chat_requests) == 2  # the held step's model call was not made again
    final = await runtime.chat.store.get_message(message_id)
    assert final is not None and final.content == "Writing it.\n\nDone."
    assert [c["status"] for c in final.tool_calls] == ["succeeded"]
    assert [(a.number, a.status) for a in await runtime.engine.store.attempts(run_id)] == [(1, "COMPLETED")]


@pytest.mark.slow
async def test_a_decision_stored_before_everything_stopped_is_resumed_at_the_next_start(
    deployment: Deployment, model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model.enqueue(Response.tool("writeFile", WRITE), Response(text="Done after the restart."))
    runtime = await deployment.start_server()
    await deployment.start_worker()
    _message_id, run_id = await deployment.ask()
    [approval] = await runtime.chat.approvals.list("pending")
    # The server dies between committing the decision and resuming the run.
    monkeypatch.setattr(runtime.engine, "resume", lambda run_id: False)
    await runtime.chat.approvals.decide(approval.id, "approve")
    await asyncio.sleep(0.5)  # nothing resumes it (no wall-clock assertion: the row must not move)
    assert deployment.row(run_id)[0] == "WAITING"
    await deployment.stop_workers()
    await deployment.stop_server()

    await deployment.start_worker()
    await deployment.start_server()  # its approvals service finds the decided wait and resumes it
    status, attempts, _executor, _reason = await deployment.finished(run_id)
    assert (status, attempts) == ("COMPLETED", 1)
    assert (deployment.workspace / "notes" / "hello.txt").read_text() == "hello\n"
    assert len(model.chat_requests) == 2
