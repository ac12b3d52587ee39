"""A trigger's options turned into a new run: defaults from the task, delay, ttl, idempotency.

Pure (no store, no engine state) so both backends build a run the same way; the engine keeps
what needs its state (finding an earlier run with the same idempotency key).
"""

from __future__ import annotations

from typing import Any

from polaris_jupyter.jobs._models import RetryPolicy, Run, RunStatus, TriggerOptions, new_id
from polaris_jupyter.jobs._registry import TaskDef

__all__ = ["new_run", "scoped_key"]


def scoped_key(key: str, scope: str, parent_run_id: str | None, parent_attempt: int | None) -> str:
    """The stored idempotency key: a child's ``run`` / ``attempt`` scope prefixes its parent's
    run (and attempt), so the same key triggered from another run is another run; ``global``
    (and any key triggered outside a run) is kept as given."""
    if parent_run_id is None or scope not in ("run", "attempt"):
        return key
    return f"{parent_run_id}:{parent_attempt if scope == 'attempt' else ''}:{key}"


def new_run(
    definition: TaskDef,
    payload: Any,
    opts: TriggerOptions,
    *,
    now: float,
    policy: RetryPolicy,
    tags: list[str],
    key: str | None,
    key_ttl_s: float,
    parent_run_id: str | None,
    waiting_reason: str | None,
) -> Run:
    """The run a trigger creates: QUEUED, or DELAYED until a delay that is still ahead."""
    delay_until = now + opts.delay_s if opts.delay_s else opts.delay_until
    if delay_until is not None and delay_until <= now:
        delay_until = None
    return Run(
        id=new_id("run"),
        task_id=definition.id,
        status=RunStatus.DELAYED if delay_until else RunStatus.QUEUED,
        payload=payload,
        created_at=now,
        updated_at=now,
        queue=opts.queue or definition.queue.name,
        max_attempts=opts.max_attempts or policy.max_attempts,
        delay_until=delay_until,
        ttl_s=opts.ttl_s if opts.ttl_s is not None else definition.ttl_s,
        idempotency_key=key,
        idempotency_expires_at=None if key is None else now + (opts.idempotency_key_ttl_s or key_ttl_s),
        tags=tags,
        metadata=dict(opts.metadata),
        concurrency_key=opts.concurrency_key,
        parent_run_id=parent_run_id,
        conversation_id=opts.conversation_id,
        max_duration_s=opts.max_duration_s or definition.max_duration_s,
        waiting_reason=waiting_reason,
    )
