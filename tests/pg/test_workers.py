"""Real worker processes (``python -m polaris_jupyter.worker``) on one PostgreSQL schema:
200 runs executed exactly once across two workers, a worker SIGKILLed mid-run whose run is
retried on the other, events of a worker's run seen live and resumed in this process, and a
worker stopped during a backlog that hands it back and exits."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.jobs import EventFilter, RunStatus, TriggerOptions
from tests.pg.conftest import client_engine
from tests.pg.processes import Workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest_asyncio.fixture
async def client(pg_url: str, pg_schema: str) -> AsyncIterator[Any]:
    async with client_engine(pg_url, pg_schema, ("mark-once", "hold", "chatty")) as engine:
        yield engine


async def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout_s}s: {what}")
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def test_two_workers_execute_200_runs_exactly_once(workers: Workers, client: Any) -> None:
    procs = workers.start(2)
    batch = await client.batch_trigger("mark-once", [({"i": i}, None) for i in range(200)])
    runs = [await client.wait_for(h.id, timeout_s=120) for h in batch.runs]
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 200
    assert sorted(r.output for r in runs) == list(range(200))
    assert all(r.attempt_count == 1 for r in runs)
    markers = sorted(workers.markers.glob("run-*"))
    assert len(markers) == 200  # created exclusively: a second execution would have failed its run
    pids = {m.read_text().split()[0] for m in markers}
    assert pids == {str(p.pid) for p in procs}, "both workers executed runs"
    rows = await client.store.query("SELECT executor_id FROM workers ORDER BY executor_id")
    ids = [r["executor_id"] for r in rows if "-worker-" in r["executor_id"]]
    assert len(ids) == 2 and len(set(ids)) == 2


@pytest.mark.asyncio
async def test_sigkilled_worker_run_is_retried_on_the_other_once(workers: Workers, client: Any) -> None:
    first = workers.start(1)[0]
    handle = await client.trigger("hold")
    await _wait(lambda: any(workers.markers.glob("hold-1-*")), 60, "attempt 1 started")
    assert (workers.markers / f"hold-1-{first.pid}").exists()
    second = workers.start(1)[0]
    first.send_signal(signal.SIGKILL)
    first.wait()
    await _wait(lambda: any(workers.markers.glob("hold-2-*")), 60, "attempt 2 started on the live worker")
    assert (workers.markers / f"hold-2-{second.pid}").exists()
    assert (workers.markers / "holding-2").read_text() == "1", "attempt 2 saw attempt 1's marker only (killed)"
    (workers.markers / "release").write_text("go")
    run = await client.wait_for(handle.id, timeout_s=60)
    assert run.status is RunStatus.COMPLETED and run.attempt_count == 2
    assert run.output == f"attempt 2 on {second.pid}"
    attempts = await client.store.attempts(handle.id)
    assert [a.status for a in attempts] == ["CRASHED", "COMPLETED"]
    assert "died during attempt 1" in (attempts[0].error or {}).get("message", "")
    assert sorted(p.name for p in workers.markers.glob("hold-*")) == sorted(
        [f"hold-1-{first.pid}", f"hold-2-{second.pid}"]
    ), "exactly two attempts ran"


@pytest.mark.asyncio
async def test_events_of_a_workers_run_reach_another_process_and_resume(workers: Workers, client: Any) -> None:
    workers.start(1)
    since = client.bus.last_seq
    seen: list[Any] = []

    async def follow() -> None:
        async for event in client.bus.subscribe(EventFilter(), since=since):
            seen.append(event)
            if event.type == "run.status" and event.data.get("final"):
                return

    follower = asyncio.create_task(follow())
    handle = await client.trigger("chatty", {"steps": 5}, TriggerOptions(tags=["t"]))
    await asyncio.wait_for(follower, 60)
    mine = [e for e in seen if e.run_id == handle.id]
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert [e.seq for e in seen] == list(range(seen[0].seq, seen[0].seq + len(seen))), "gap-free"
    assert [e.run_seq for e in mine] == list(range(1, len(mine) + 1))
    steps = [e.data["step"] for e in mine if e.type == "progress.step"]
    assert steps == [0, 1, 2, 3, 4]
    statuses = [e.data["status"] for e in mine if e.type == "run.status"]
    assert statuses[0] == "QUEUED" and statuses[-2:] == ["EXECUTING", "COMPLETED"]
    # Resume from the middle: exactly the rest, in order.
    middle = mine[len(mine) // 2].seq
    resumed: list[Any] = []
    async for event in client.bus.subscribe(EventFilter(run_id=handle.id), since=middle):
        resumed.append(event)
        if event.type == "run.status" and event.data.get("final"):
            break
    assert [e.seq for e in resumed] == [e.seq for e in mine if e.seq > middle]


@pytest.mark.asyncio
async def test_a_worker_stopped_during_a_backlog_hands_it_back_and_exits(workers: Workers, client: Any) -> None:
    """SIGTERM while a thousand runs or more wait: the worker exits (it used to re-enqueue what it
    handed back onto the queue it was still dequeuing from, and never got out), and every run
    completes exactly once on the next worker."""
    fast = ("--task-modules", "tests.pg.worker_tasks", "--poll-interval", "0.1")  # DBOS keeps dequeuing while it stops
    first = workers.start(1, concurrency=128, args=fast)[0]
    ids = []
    for _ in range(2):  # a batch holds 1,000
        batch = await client.batch_trigger("chatty", [({"steps": 1}, None) for _ in range(1000)])
        ids += [h.id for h in batch.runs]

    async def completed() -> int:
        rows = await client.store.query("SELECT COUNT(*) AS n FROM runs WHERE status = 'COMPLETED'")
        return int(rows[0]["n"])

    done = 0
    for _ in range(1200):
        if (done := await completed()) >= 20:
            break
        await asyncio.sleep(0.05)
    assert 20 <= done < 2000, f"the stop must come during the backlog ({done} done)"
    first.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(first.wait, 60)  # a hang, not a speed: a graceful stop takes < 1 s to ~10 s
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the stopped worker did not exit:\n{workers.log(first)}") from None
    assert first.returncode == 0, workers.log(first)
    left = await client.store.query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
    assert {r["status"] for r in left} <= {"COMPLETED", "QUEUED"}, left  # nothing left EXECUTING
    workers.start(1, concurrency=128)
    runs = [await client.wait_for(run_id, timeout_s=120) for run_id in ids]
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 2000
    assert all(r.attempt_count == 1 for r in runs), "a handed-back attempt does not count"
    rows = await client.store.query("SELECT COUNT(*) AS n FROM attempts WHERE status = 'COMPLETED'")
    assert int(rows[0]["n"]) == 2000, "each run completed once"
