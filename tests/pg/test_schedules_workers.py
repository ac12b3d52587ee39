"""A schedule served by two real worker processes (and the process that made it): each slot
fires once, even when one worker was paused across the slot and resumes with a stale view
after the slot's run already failed (releasing its idempotency key), and after both restart.

Real cron slots are minutes, so this test waits for the next minute boundary (up to a minute)."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.helpers import async_wait_until
from tests.pg.conftest import client_engine
from tests.pg.processes import Workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest_asyncio.fixture
async def client(pg_url: str, pg_schema: str) -> AsyncIterator[Any]:
    async with client_engine(pg_url, pg_schema, ("tick-fail",)) as engine:
        yield engine


async def _firings(client: Any, schedule_id: str) -> dict[str, list[str]]:
    """Slot timestamp → statuses of the runs created for it."""
    rows = await client.store.query(
        "SELECT status, payload FROM runs WHERE schedule_id = ? ORDER BY num", (schedule_id,)
    )
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(json.loads(row["payload"])["timestamp"], []).append(row["status"])
    return out


async def _beats(client: Any, executor_id: str, count: int) -> None:
    """Wait until ``executor_id`` has heartbeaten ``count`` more times (its loop runs again)."""
    async def seen() -> float:
        rows = await client.store.query("SELECT last_seen FROM workers WHERE executor_id = ?", (executor_id,))
        return float(rows[0]["last_seen"]) if rows else 0.0

    for _ in range(count):
        before = await seen()
        await async_wait_until(functools.partial(_later, seen, before), timeout_s=30, what=f"a heartbeat of {executor_id}")


async def _later(seen: Any, before: float) -> Any:  # (float | None; Any for async_wait_until)
    now = await seen()
    return now if now > before else None


@pytest.mark.asyncio
async def test_each_slot_fires_once_across_two_workers_a_pause_and_a_restart(workers: Workers, client: Any) -> None:
    schedule = await client.schedules.create("tick-fail", "* * * * *", "UTC")
    first, second = await asyncio.to_thread(workers.start, 2)
    second_id = workers.executor_id(second)
    slot = (int(time.time()) // 60 + 1) * 60
    if slot - time.time() < 5:  # too close to arm a pause before it: take the next one
        slot += 60
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(slot))

    await async_wait_until(lambda: time.time() >= slot - 2, timeout_s=70, poll_s=0.1, what="just before the slot")
    second.send_signal(signal.SIGSTOP)  # paused across the slot: it wakes with a stale view
    try:
        await async_wait_until(lambda: _slot_failed(client, schedule.id, stamp), timeout_s=60, what="the slot's run failed")
    finally:
        second.send_signal(signal.SIGCONT)
    await _beats(client, second_id, 2)  # it ran its overdue timer meanwhile
    assert (await _firings(client, schedule.id))[stamp] == ["FAILED"]

    # Restart both workers on the same schema: the fired slot never fires again.
    await asyncio.to_thread(workers.stop)
    third, fourth = await asyncio.to_thread(workers.start, 2)
    await _beats(client, workers.executor_id(fourth), 2)
    firings = await _firings(client, schedule.id)
    assert firings[stamp] == ["FAILED"]
    assert all(len(statuses) == 1 for statuses in firings.values()), firings  # any later slot: once too
    markers = sorted(p.name for p in workers.markers.glob("tick-*"))
    slots = [name.split("-")[1] for name in markers]
    assert len(slots) == len(set(slots)) == len(firings), markers


async def _slot_failed(client: Any, schedule_id: str, stamp: str) -> Any:  # (list[str] | None)
    statuses = (await _firings(client, schedule_id)).get(stamp)
    return statuses if statuses == ["FAILED"] else None
