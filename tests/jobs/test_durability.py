"""Cron schedules (time zones, no double firing across restarts), recovery of unfinished runs,
and the event bus's gap-free resume."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from polaris_jupyter.jobs import (
    EventFilter,
    FakeClock,
    InvalidInput,
    RetryPolicy,
    RunContext,
    RunStatus,
    TaskRegistry,
    TriggerOptions,
    task,
)
from polaris_jupyter.jobs._schedules import next_slot


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.005)


def test_next_slot_respects_time_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    base = datetime(2026, 6, 1, 12, 0, tzinfo=paris).timestamp()
    slot = next_slot("0 2 * * *", "Europe/Paris", base)
    when = datetime.fromtimestamp(slot, paris)
    assert (when.day, when.hour, when.minute) == (2, 2, 0)
    utc_slot = next_slot("0 2 * * *", "UTC", base)
    assert utc_slot - slot == pytest.approx(2 * 3600)  # Paris is UTC+2 in June


@pytest.mark.asyncio
async def test_cron_fires_each_slot_once_even_across_restarts(make_engine: Any, registry: TaskRegistry, tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, 0, 0, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    clock = FakeClock(start)
    fired: list[dict[str, Any]] = []

    @task(id="tick", registry=registry)
    async def tick(payload: Any, ctx: RunContext) -> None:
        fired.append(payload)

    engine = await make_engine(clock=clock)
    with pytest.raises(InvalidInput):
        await engine.schedules.create("tick", "* * *", "UTC")
    with pytest.raises(InvalidInput):
        await engine.schedules.create("tick", "*/5 * * * *", "Mars/Olympus")
    schedule = await engine.schedules.create("tick", "*/5 * * * *", "UTC")
    clock.advance(5 * 60)  # 00:05:30 → the 00:05 slot
    await settle()
    await engine.drain()
    assert [p["timestamp"] for p in fired] == ["2026-01-01T00:05:00Z"]
    assert fired[0]["lastTimestamp"] is None and fired[0]["scheduleId"] == schedule.id
    clock.advance(5 * 60)
    await settle()
    await engine.drain()
    assert [p["timestamp"] for p in fired][-1] == "2026-01-01T00:10:00Z"
    # Asleep for 12 minutes while running: the missed 00:15 slot is skipped, 00:20 fires once.
    clock.advance(12 * 60)  # 00:22:30
    await settle()
    await engine.drain()
    assert [p["timestamp"] for p in fired][2:] == ["2026-01-01T00:20:00Z"]
    assert fired[1]["lastTimestamp"] == "2026-01-01T00:05:00Z"
    assert fired[2]["lastTimestamp"] == "2026-01-01T00:10:00Z"
    await engine.stop()

    # Restart on the same db at the same instant: the 00:20 slot must not fire again.
    engine2 = await make_engine(clock=clock)
    await settle()
    await engine2.drain()
    assert len(fired) == 3
    # Down for 17 minutes: only the most recent missed slot fires (once), then normal cadence.
    await engine2.stop()
    clock.advance(17 * 60)  # 00:39:30
    engine3 = await make_engine(clock=clock)
    await settle()
    await engine3.drain()
    assert [p["timestamp"] for p in fired][3:] == ["2026-01-01T00:35:00Z"]
    assert fired[3]["catchUp"] is True
    clock.advance(3 * 60)
    await settle()
    await engine3.drain()
    assert [p["timestamp"] for p in fired][4:] == ["2026-01-01T00:40:00Z"]
    runs = sqlite3.connect(tmp_path / "runs.db").execute(
        "SELECT COUNT(*) FROM runs WHERE schedule_id = ?", (schedule.id,)
    ).fetchone()[0]
    assert runs == 5


@pytest.mark.asyncio
async def test_recovery_retries_or_crashes_executing_runs(make_engine: Any, registry: TaskRegistry, tmp_path: Path) -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    attempts: list[int] = []

    @task(id="work", registry=registry, retry=RetryPolicy(max_attempts=2))
    async def work(payload: Any, ctx: RunContext) -> str:
        attempts.append(ctx.attempt)
        await gate.wait()
        return "done"

    engine = await make_engine(clock=clock)
    retried = await engine.trigger("work", 1)
    one_shot = await engine.trigger("work", 2, TriggerOptions(max_attempts=1))
    delayed = await engine.trigger("work", 3, TriggerOptions(delay_s=600))
    while len(attempts) < 2:
        await asyncio.sleep(0.005)
    await engine.store.flush()
    # Simulate a kill -9: copy the db file as it is on disk while both runs are EXECUTING.
    snapshot = tmp_path / "crashed.db"
    src = sqlite3.connect(tmp_path / "runs.db")
    dst = sqlite3.connect(snapshot)
    src.backup(dst)
    src.close()
    dst.close()
    gate.set()
    await engine.stop()

    attempts.clear()
    recovered = await make_engine(clock=clock, db=snapshot)
    first = await recovered.wait_for(retried.id, timeout_s=5)
    assert first.status is RunStatus.COMPLETED and first.attempt_count == 2
    crashed = await recovered.get_run(one_shot.id)
    assert crashed.status is RunStatus.CRASHED
    assert crashed.error and "died" in crashed.error["message"]
    assert (await recovered.get_run(delayed.id)).status is RunStatus.DELAYED
    clock.advance(601)
    assert (await recovered.wait_for(delayed.id, timeout_s=5)).status is RunStatus.COMPLETED
    history = [a.status for a in await recovered.store.attempts(retried.id)]
    assert history == ["CRASHED", "COMPLETED"]


@pytest.mark.asyncio
async def test_graceful_stop_requeues_without_counting_the_attempt(make_engine: Any, registry: TaskRegistry, tmp_path: Path) -> None:
    started = asyncio.Event()
    finish = False

    @task(id="resumable", registry=registry)
    async def resumable(payload: Any, ctx: RunContext) -> int:
        started.set()
        if not finish:
            await asyncio.sleep(3600)
        return ctx.attempt

    engine = await make_engine()
    handle = await engine.trigger("resumable")
    await started.wait()
    await engine.stop()
    finish = True
    again = await make_engine()
    run = await again.wait_for(handle.id, timeout_s=5)
    assert run.status is RunStatus.COMPLETED and run.output == 1


@pytest.mark.asyncio
async def test_event_resume_has_no_gaps_or_duplicates(make_engine: Any, registry: TaskRegistry) -> None:
    @task(id="chatty", registry=registry)
    async def chatty(payload: Any, ctx: RunContext) -> None:
        for i in range(50):
            ctx.emit("custom.tick", {"i": i})
            await asyncio.sleep(0)

    engine = await make_engine()
    seen: list[int] = []

    async def consume(limit: int, since: int | None) -> None:
        async for event in engine.bus.subscribe(EventFilter(), since=since):
            seen.append(event.seq)
            if len(seen) >= limit:
                return

    start_seq = engine.bus.last_seq
    handles = [await engine.trigger("chatty", i) for i in range(4)]
    await consume(60, since=start_seq)  # disconnect part-way
    await engine.drain()
    rest: list[int] = []
    async def consume_rest() -> None:
        async for event in engine.bus.subscribe(EventFilter(), since=seen[-1]):
            rest.append(event.seq)
            if event.seq >= engine.bus.last_seq:
                return

    await asyncio.wait_for(consume_rest(), timeout=5)
    everything = seen + rest
    assert everything == list(range(start_seq + 1, engine.bus.last_seq + 1))
    # Filtered by run: only that run's events, with consecutive per-run numbers.
    per_run = await engine.store.run_events(handles[0].id, 0)
    assert [e.run_seq for e in per_run] == list(range(1, len(per_run) + 1))
    assert sum(1 for e in per_run if e.type == "custom.tick") == 50
