"""The built-in ``cleanup`` task: daily retention of finished runs (and, optionally, old chats).

Other parts (chat) pass their own steps, so this module does not need to know about them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from polaris_jupyter.jobs import Engine, RetryPolicy, RunContext, ScheduleDef, TaskDef, delete_finished_before

__all__ = ["CLEANUP_TASK_ID", "CleanupStep", "register_cleanup"]

CLEANUP_TASK_ID = "cleanup"
DAY_S = 86400.0

#: An extra cleanup step (e.g. old conversations): ``async (ctx) -> dict`` merged into the output.
CleanupStep = Callable[[RunContext], Awaitable[dict[str, Any]]]


def register_cleanup(
    engine: Engine, *, retention_days: float, cron: str, timezone: str, steps: list[CleanupStep] | None = None
) -> TaskDef:
    """Register ``cleanup`` on ``engine`` with a declarative schedule."""

    async def cleanup(payload: Any, ctx: RunContext) -> dict[str, Any]:
        """Delete finished runs older than the retention period."""
        days = retention_days
        if isinstance(payload, dict) and isinstance(payload.get("retentionDays"), (int, float)):
            days = float(payload["retentionDays"])
        result: dict[str, Any] = {"retentionDays": days, "deletedRuns": 0}
        if days > 0:
            cutoff = engine.clock.now() - days * DAY_S
            result["deletedRuns"] = await delete_finished_before(engine.store, cutoff)
        for step in steps or []:
            result.update(await step(ctx))
        ctx.logger.info("cleanup finished", data=result)
        return result

    definition = TaskDef(
        id=CLEANUP_TASK_ID,
        fn=cleanup,
        retry=RetryPolicy(max_attempts=2),
        schedules=[ScheduleDef(cron, timezone, id="cleanup-daily")],
        description="Delete finished runs (and old conversations) past their retention period.",
    )
    return engine.register(definition)
