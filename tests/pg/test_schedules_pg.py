"""Cron schedules on PostgreSQL, in one process with a fake clock: a slot another process fired
is never fired again here, even after that run failed and released its idempotency key (the
slot is claimed with a compare-and-set in the run's own transaction); the usual cadence and
restart rules hold; a schedule written by another process is armed here by the keeper's reload,
one deleted elsewhere is dropped."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from polaris_jupyter.jobs import AbortTaskError, FakeClock, RunContext, TaskRegistry, task
from tests.helpers import async_wait_until

START = datetime(2026, 1, 1, 0, 0, 30, tzinfo=ZoneInfo("UTC")).timestamp()  # 00:00:30
SLOT_5 = START + 270  # 00:05:00


async def _runs_of(engine: Any, schedule_id: str) -> list[tuple[str, str]]:
    rows = await engine.store.query(
        "SELECT status, payload FROM runs WHERE schedule_id = ? ORDER BY num", (schedule_id,)
    )
    return [(r["status"], json.loads(r["payload"])["timestamp"]) for r in rows]


async def _settle(engine: Any) -> None:
    for _ in range(10):
        await asyncio.sleep(0.01)
    await engine.drain()


@pytest.mark.asyncio
async def test_a_slot_fired_elsewhere_is_not_fired_again_even_when_its_run_failed(
    make_engine: Any, registry: TaskRegistry
) -> None:
    @task(id="tick", registry=registry)
    async def tick(payload: Any, ctx: RunContext) -> None:
        raise AbortTaskError("fails at once: the firing's idempotency key is released")

    clock = FakeClock(START)
    engine = await make_engine(clock=clock, sweep_s=3600)  # no reload: the compare-and-set alone decides
    schedule = await engine.schedules.create("tick", "*/5 * * * *", "UTC")
    # Another process fired 00:05 first; its run failed (key released). This process's state is stale.
    engine.store.execute("UPDATE schedules SET last_slot = ? WHERE id = ?", (SLOT_5, schedule.id))
    await engine.store.commit()
    clock.advance(300)  # 00:05:30: the 00:05 timer rings here
    await _settle(engine)
    assert await _runs_of(engine, schedule.id) == []
    clock.advance(300)  # 00:10:30
    await _settle(engine)
    assert await _runs_of(engine, schedule.id) == [("FAILED", "2026-01-01T00:10:00Z")]
    await engine.stop()

    again = await make_engine(clock=clock, sweep_s=3600)  # restart at the same instant: nothing new
    await _settle(again)
    assert await _runs_of(again, schedule.id) == [("FAILED", "2026-01-01T00:10:00Z")]
    clock.advance(300)
    await _settle(again)
    assert [ts for _, ts in await _runs_of(again, schedule.id)] == ["2026-01-01T00:10:00Z", "2026-01-01T00:15:00Z"]


@pytest.mark.asyncio
async def test_a_schedule_written_by_another_process_is_armed_here_and_dropped_when_deleted(
    make_engine: Any, registry: TaskRegistry
) -> None:
    @task(id="tock", registry=registry)
    async def tock(payload: Any, ctx: RunContext) -> str:
        return str(payload["timestamp"])

    clock = FakeClock(START)
    engine = await make_engine(clock=clock, sweep_s=0.2)
    engine.store.execute(
        "INSERT INTO schedules (id, task_id, cron, timezone, payload, options, last_slot, created_at, active, declarative) "
        "VALUES (?, 'tock', '*/5 * * * *', 'UTC', NULL, NULL, NULL, ?, 1, 0)",
        ("sched_elsewhere", START),
    )
    await engine.store.commit()
    armed = await async_wait_until(lambda: engine.schedules.get("sched_elsewhere"), what="the reload arms it")
    assert armed.next_slot == SLOT_5
    clock.advance(300)
    await _settle(engine)
    assert await _runs_of(engine, "sched_elsewhere") == [("COMPLETED", "2026-01-01T00:05:00Z")]

    engine.store.execute("DELETE FROM schedules WHERE id = ?", ("sched_elsewhere",))
    await engine.store.commit()
    await async_wait_until(lambda: engine.schedules.get("sched_elsewhere") is None, what="the reload drops it")
    clock.advance(300)
    await _settle(engine)
    assert len(await _runs_of(engine, "sched_elsewhere")) == 1
