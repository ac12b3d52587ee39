"""Wait points: a task that raises Suspend ends its attempt in WAITING, gives its slot back, and
is continued as the same attempt by Engine.resume, by its timeout, or after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.jobs import FakeClock, RunContext, RunStatus, Suspend, TaskRegistry, task, task_metrics
from tests.helpers import async_wait_until

pytestmark = pytest.mark.asyncio


def gated(registry: TaskRegistry, log: list[tuple[str, int]], *, timeout_s: float | None = None,
          cancelled: list[str] | None = None) -> None:
    """A task that waits once, then finishes with what its checkpoint says (``cancelled`` collects
    the runs its on_cancel hook saw). The PostgreSQL wait-point tests use it too."""

    def on_cancel(payload: Any, ctx: RunContext) -> None:
        if cancelled is not None:
            cancelled.append(ctx.run_id)

    @task(id="gated", registry=registry, on_cancel=on_cancel)
    async def run(payload: Any, ctx: RunContext) -> Any:
        log.append(("start", ctx.attempt))
        if ctx.checkpoint("asked") is None:
            await ctx.save_checkpoint("asked", {"question": payload})
            raise Suspend("waiting for a yes", timeout_s=timeout_s)
        return {"answered": ctx.checkpoint("asked")["question"], "attempt": ctx.attempt}

    @task(id="quick", registry=registry)
    async def quick(payload: Any, ctx: RunContext) -> str:
        return "ok"


def racy(registry: TaskRegistry, gate: asyncio.Event, starts: list[int] | None = None) -> None:
    """A task whose decision arrives before it suspends: it waits on ``gate`` between saving its
    checkpoint and raising Suspend (``starts`` collects the attempt of every start)."""

    @task(id="racy", registry=registry)
    async def run(payload: Any, ctx: RunContext) -> str:
        if starts is not None:
            starts.append(ctx.attempt)
        if ctx.checkpoint("asked") is None:
            await ctx.save_checkpoint("asked", True)
            await gate.wait()  # the decision arrives here, before the Suspend
            raise Suspend("waiting")
        return "continued"


async def status_of(engine: Any, run_id: str) -> RunStatus:
    return (await engine.get_run(run_id)).status  # type: ignore[no-any-return]


async def test_waiting_holds_no_slot_and_resume_continues_the_same_attempt(make_engine: Any, registry: TaskRegistry) -> None:
    log: list[tuple[str, int]] = []
    gated(registry, log)
    engine = await make_engine(pool_size=1)
    handle = await engine.trigger("gated", "go?")
    await async_wait_until(lambda: status_of(engine, handle.id), what="run started")
    await async_wait_until(lambda: engine._active[handle.id].status is RunStatus.WAITING, what="WAITING")
    run = await engine.get_run(handle.id)
    assert run.waiting_reason == "waiting for a yes" and not run.status.is_final
    # The one slot is free: another run completes while the first waits.
    other = await engine.trigger_and_wait("quick")
    assert other.ok and engine._executing == 0
    assert engine.resume(handle.id) is True
    result = await handle.result(timeout_s=10)
    assert result.ok and result.output == {"answered": "go?", "attempt": 1}
    assert log == [("start", 1), ("start", 1)]
    attempts = await engine.store.attempts(handle.id)
    assert [(a.number, a.status) for a in attempts] == [(1, "COMPLETED")]
    assert result.run.attempt_count == 1
    assert engine.resume(handle.id) is False  # final: nothing to resume


async def test_resume_before_the_attempt_reaches_its_suspension_is_not_lost(make_engine: Any, registry: TaskRegistry) -> None:
    gate = asyncio.Event()
    racy(registry, gate)
    engine = await make_engine()
    handle = await engine.trigger("racy")
    await async_wait_until(lambda: engine._active[handle.id].status is RunStatus.EXECUTING, what="executing")
    assert engine.resume(handle.id) is True
    gate.set()
    result = await handle.result(timeout_s=10)
    assert result.ok and result.output == "continued"


async def test_the_timeout_continues_the_run_on_the_engine_clock(make_engine: Any, registry: TaskRegistry) -> None:
    log: list[tuple[str, int]] = []
    gated(registry, log, timeout_s=300)
    clock = FakeClock()
    engine = await make_engine(clock=clock)
    handle = await engine.trigger("gated", "q")
    await async_wait_until(lambda: engine._active[handle.id].status is RunStatus.WAITING, what="WAITING")
    run = await engine.get_run(handle.id)
    assert run.next_attempt_at == pytest.approx(clock.now() + 300)
    clock.advance(299)
    for _ in range(20):
        await asyncio.sleep(0.005)
    assert engine._active[handle.id].status is RunStatus.WAITING
    clock.advance(1)
    result = await handle.result(timeout_s=10)
    assert result.ok and log == [("start", 1), ("start", 1)]


async def test_cancel_of_a_waiting_run(make_engine: Any, registry: TaskRegistry) -> None:
    gated(registry, [])
    engine = await make_engine()
    handle = await engine.trigger("gated", "q")
    await async_wait_until(lambda: engine._active[handle.id].status is RunStatus.WAITING, what="WAITING")
    run = await engine.cancel(handle.id)
    assert run.status is RunStatus.CANCELED
    assert (await engine.get_run(handle.id)).status is RunStatus.CANCELED
    assert engine.resume(handle.id) is False


async def test_a_waiting_run_survives_a_restart_and_is_counted_in_metrics(
    make_engine: Any, registry: TaskRegistry, tmp_path: Path
) -> None:
    log: list[tuple[str, int]] = []
    gated(registry, log)
    first = await make_engine(db=tmp_path / "w.db")
    handle = await first.trigger("gated", "q")
    await async_wait_until(lambda: first._active[handle.id].status is RunStatus.WAITING, what="WAITING")
    await first.store.flush()
    metrics = await task_metrics(first.store, "gated")
    assert metrics["tasks"][0]["counts"] == {"WAITING": 1}
    await first.stop()

    second = await make_engine(db=tmp_path / "w.db")
    for _ in range(20):
        await asyncio.sleep(0.005)
    assert (await second.get_run(handle.id)).status is RunStatus.WAITING  # not restarted by recovery
    assert log == [("start", 1)]
    assert second.resume(handle.id) is True
    result = await second.wait_for(handle.id, timeout_s=10)
    assert result.status is RunStatus.COMPLETED and result.output["attempt"] == 1
    assert log == [("start", 1), ("start", 1)]
