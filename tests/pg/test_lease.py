"""A worker whose heartbeat stalls stops its own attempt (self-fencing), so a run never goes on
in two attempts at once: paused past the others' takeover (its run already retried elsewhere),
or paused past its lease only (nobody took over yet: it releases the run, which is retried)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.jobs import RunStatus
from tests.helpers import async_wait_until
from tests.pg.conftest import client_engine
from tests.pg.processes import Workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
TASKS = ("--task-modules", "tests.pg.worker_tasks")


@pytest_asyncio.fixture
async def client(pg_url: str, pg_schema: str) -> AsyncIterator[Any]:
    async with client_engine(pg_url, pg_schema, ("hold",), dead_after_s=60) as engine:
        yield engine


def _marker(workers: Workers, pattern: str) -> list[str]:
    return sorted(p.name for p in workers.markers.glob(pattern))


async def _finish(workers: Workers, client: Any, run_id: str) -> Any:
    (workers.markers / "release").write_text("go")
    run = await client.wait_for(run_id, timeout_s=60)
    attempts = await client.store.attempts(run_id)
    return run, attempts


@pytest.mark.asyncio
async def test_paused_past_the_takeover_the_worker_stops_its_attempt_when_it_wakes(workers: Workers, client: Any) -> None:
    paused = (await asyncio.to_thread(workers.start, 1, args=(*TASKS, "--dead-after", "4")))[0]
    handle = await client.trigger("hold")
    await async_wait_until(lambda: _marker(workers, "hold-1-*"), timeout_s=60, what="attempt 1 started")
    live = (await asyncio.to_thread(workers.start, 1, args=(*TASKS, "--dead-after", "4")))[0]
    paused.send_signal(signal.SIGSTOP)
    try:
        await async_wait_until(lambda: _marker(workers, "hold-2-*"), timeout_s=60, what="attempt 2 on the live worker")
    finally:
        paused.send_signal(signal.SIGCONT)
    await async_wait_until(lambda: _marker(workers, "stopped-1-*"), timeout_s=30, what="the woken worker stopped attempt 1")
    assert _marker(workers, "stopped-1-*") == [f"stopped-1-{paused.pid}"] and _marker(workers, "hold-2-*") == [f"hold-2-{live.pid}"]
    run, attempts = await _finish(workers, client, handle.id)
    assert (run.status, run.attempt_count, run.output) == (RunStatus.COMPLETED, 2, f"attempt 2 on {live.pid}")
    assert [a.status for a in attempts] == ["CRASHED", "COMPLETED"]
    assert "lost its lease" in workers.log(paused)
    assert paused.poll() is None, "the fenced worker goes on serving"


@pytest.mark.asyncio
async def test_paused_past_its_lease_only_the_worker_releases_the_run_for_a_retry(workers: Workers, client: Any) -> None:
    # Its lease: 4 s - 2 heartbeats = 2 s. The other worker only declares it dead after 60 s.
    paused = (await asyncio.to_thread(workers.start, 1, args=(*TASKS, "--dead-after", "4")))[0]
    handle = await client.trigger("hold")
    await async_wait_until(lambda: _marker(workers, "hold-1-*"), timeout_s=60, what="attempt 1 started")
    await asyncio.to_thread(workers.start, 1, args=(*TASKS, "--dead-after", "60"))
    paused.send_signal(signal.SIGSTOP)
    await asyncio.sleep(3.5)  # past its lease, far from anyone's takeover
    paused.send_signal(signal.SIGCONT)
    await async_wait_until(lambda: _marker(workers, "stopped-1-*"), timeout_s=30, what="attempt 1 stopped by its own worker")
    await async_wait_until(lambda: _marker(workers, "hold-2-*"), timeout_s=60, what="the released run's attempt 2")
    run, attempts = await _finish(workers, client, handle.id)
    assert (run.status, run.attempt_count) == (RunStatus.COMPLETED, 2)
    assert [a.status for a in attempts] == ["CRASHED", "COMPLETED"]
    assert "lost its lease" in (attempts[0].error or {}).get("message", "")
    assert len(_marker(workers, "hold-*")) == 2, "exactly two attempts ran"
