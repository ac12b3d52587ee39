"""``run.status`` events say whether the status is final, from the one definition of the final
set (``FINAL_STATUSES``), so clients (the sidebar, kernels, the generation waiter) need no copy."""

from __future__ import annotations

from typing import Any

import pytest

from polaris_jupyter.jobs import FINAL_STATUSES, RetryPolicy, RunContext, RunStatus, TaskRegistry, task


def test_the_final_set_is_the_statuses_that_end_a_run() -> None:
    assert {s.value for s in FINAL_STATUSES} == {"COMPLETED", "FAILED", "CANCELED", "CRASHED", "TIMED_OUT", "EXPIRED"}
    assert all(s.is_final == (s in FINAL_STATUSES) for s in RunStatus)


@pytest.mark.asyncio
async def test_every_run_status_event_carries_final(make_engine: Any, registry: TaskRegistry) -> None:
    @task(id="fails-once", registry=registry, retry=RetryPolicy(max_attempts=2, min_timeout_s=0.01, randomize=False))
    async def fails_once(payload: Any, ctx: RunContext) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    engine = await make_engine()
    handle = await engine.trigger("fails-once", {})
    result = await handle.result(timeout_s=10)
    assert result.ok
    await engine.store.commit()
    statuses = [e.data for e in await engine.store.run_events(handle.id, 0) if e.type == "run.status"]
    seen = [(d["status"], d["final"]) for d in statuses]
    assert ("QUEUED", False) in seen and ("REATTEMPTING", False) in seen
    assert seen[-1] == ("COMPLETED", True)
    assert all(final is RunStatus(status).is_final for status, final in seen)
