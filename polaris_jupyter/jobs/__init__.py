"""The durable background-job engine (Trigger.dev semantics, in Python).

Example::

    from polaris_jupyter.jobs import Engine, RetryPolicy, task

    @task(id="hello", retry=RetryPolicy(max_attempts=5))
    async def hello(payload, ctx):
        ctx.logger.info("hi", data=payload)
        return {"greeting": f"hello {payload['name']}"}

    async with Engine("runs.db") as engine:
        result = await engine.trigger_and_wait("hello", {"name": "Ada"})
"""

from __future__ import annotations

from polaris_jupyter.jobs._clock import Clock, FakeClock, SystemClock
from polaris_jupyter.jobs._context import RunContext
from polaris_jupyter.jobs._engine import MAX_BATCH_ITEMS, Engine
from polaris_jupyter.jobs._events import EventBus, EventFilter, SubscriberLagging
from polaris_jupyter.jobs._failures import call_hook, is_retryable, retry_delay_s
from polaris_jupyter.jobs._handles import BatchHandle, RunHandle, RunResult
from polaris_jupyter.jobs._models import (
    FINAL_STATUSES,
    AbortTaskError,
    Attempt,
    Conflict,
    EngineError,
    Event,
    InvalidInput,
    RetryPolicy,
    Run,
    RunNotFound,
    RunStatus,
    Suspend,
    TaskNotFound,
    TriggerOptions,
    iso,
    new_id,
)
from polaris_jupyter.jobs._options import options_from_json, options_to_json, parse_duration_s
from polaris_jupyter.jobs._queries import (
    RunFilter,
    RunPage,
    delete_finished_before,
    delete_rows_of_deleted_runs,
    list_runs,
    parse_statuses,
    task_metrics,
)
from polaris_jupyter.jobs._registry import (
    QueueDef,
    ScheduleDef,
    TaskDef,
    TaskRegistry,
    default_registry,
    queue,
    task,
)
from polaris_jupyter.jobs._schema import AddColumn, Schema, SchemaError
from polaris_jupyter.jobs._store import SqliteStore
from polaris_jupyter.jobs.context import RunLogger, RunMetadata, TaskContext

__all__ = [
    "FINAL_STATUSES",
    "MAX_BATCH_ITEMS",
    "AbortTaskError",
    "AddColumn",
    "Attempt",
    "BatchHandle",
    "Clock",
    "Conflict",
    "Engine",
    "EngineError",
    "Event",
    "EventBus",
    "EventFilter",
    "FakeClock",
    "InvalidInput",
    "QueueDef",
    "RetryPolicy",
    "Run",
    "RunContext",
    "RunFilter",
    "RunHandle",
    "RunLogger",
    "RunMetadata",
    "RunNotFound",
    "RunPage",
    "RunResult",
    "RunStatus",
    "ScheduleDef",
    "Schema",
    "SchemaError",
    "SqliteStore",
    "SubscriberLagging",
    "Suspend",
    "SystemClock",
    "TaskContext",
    "TaskDef",
    "TaskNotFound",
    "TaskRegistry",
    "TriggerOptions",
    "call_hook",
    "default_registry",
    "delete_finished_before",
    "delete_rows_of_deleted_runs",
    "is_retryable",
    "iso",
    "list_runs",
    "new_id",
    "options_from_json",
    "options_to_json",
    "parse_duration_s",
    "parse_statuses",
    "queue",
    "retry_delay_s",
    "task",
    "task_metrics",
]
