"""Tasks the server tests load through ``PolarisConfig.task_modules``."""

from __future__ import annotations

import asyncio
from typing import Any

from polaris_jupyter.jobs import RetryPolicy, RunContext, task


@task(id="test-echo")
async def echo(payload: Any, ctx: RunContext) -> Any:
    """Return the payload."""
    ctx.logger.info("echoing", data={"payload": payload})
    ctx.metadata.set("echoed", True)
    return payload


@task(id="test-sleep", retry=RetryPolicy(max_attempts=3, min_timeout_s=0.05, randomize=False))
async def sleep(payload: Any, ctx: RunContext) -> dict[str, Any]:
    """Sleep for payload['s'] seconds (default: an hour)."""
    seconds = float((payload or {}).get("s", 3600))
    ctx.logger.info("sleeping", data={"s": seconds, "attempt": ctx.attempt})
    await asyncio.sleep(seconds)
    return {"slept": seconds, "attempt": ctx.attempt}
