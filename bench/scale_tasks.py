"""The no-op task bench/scale.py's workers execute (``--task-modules bench.scale_tasks``)."""

from __future__ import annotations

from typing import Any

from polaris_jupyter.jobs import RunContext, task


@task(id="scale-noop")
async def scale_noop(payload: Any, ctx: RunContext) -> None:
    return None
