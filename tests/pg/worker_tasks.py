"""Tasks the worker processes of tests/pg/test_workers.py execute (``--task-modules``).

Each writes marker files in ``$POLARIS_TEST_MARKERS`` so the test can count executions from
outside the workers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from polaris_jupyter.jobs import AbortTaskError, RetryPolicy, RunContext, task


def _markers() -> Path:
    return Path(os.environ["POLARIS_TEST_MARKERS"])


@task(id="mark-once")
async def mark_once(payload: Any, ctx: RunContext) -> int:
    """Create ``<i>`` exclusively: a second execution of the same run would fail here."""
    with (_markers() / f"run-{payload['i']}").open("x") as f:
        f.write(f"{os.getpid()} {ctx.run_id} {ctx.attempt}\n")
    await asyncio.sleep(0.01)
    return int(payload["i"])


@task(id="hold", retry=RetryPolicy(max_attempts=3, min_timeout_s=0.1, randomize=False))
async def hold(payload: Any, ctx: RunContext) -> str:
    """Record the attempt, then wait for ``release`` (the test kills the worker meanwhile)."""
    (_markers() / f"hold-{ctx.attempt}-{os.getpid()}").write_text(ctx.run_id)
    running = list(_markers().glob("holding-*"))
    (_markers() / f"holding-{ctx.attempt}").write_text(str(len(running)))
    try:
        while not (_markers() / "release").exists():
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        (_markers() / f"stopped-{ctx.attempt}-{os.getpid()}").write_text("cancelled")
        (_markers() / f"holding-{ctx.attempt}").unlink(missing_ok=True)
        raise
    (_markers() / f"holding-{ctx.attempt}").unlink()
    return f"attempt {ctx.attempt} on {os.getpid()}"


@task(id="chatty")
async def chatty(payload: Any, ctx: RunContext) -> dict[str, int]:
    """Stream events and logs the way a generation does."""
    for step in range(int(payload["steps"])):
        ctx.emit("progress.step", {"step": step})
        ctx.logger.info("step", data={"step": step})
        ctx.metadata.set("step", step)
        await asyncio.sleep(0.01)
    return {"steps": int(payload["steps"])}


@task(id="tick-fail")
async def tick_fail(payload: Any, ctx: RunContext) -> None:
    """A schedule's firing that fails at once (releasing its idempotency key): one marker per run."""
    stamp = str(payload["timestamp"]).replace(":", "")
    (_markers() / f"tick-{stamp}-{ctx.run_id}").write_text(str(os.getpid()))
    raise AbortTaskError("a firing that fails at once")
