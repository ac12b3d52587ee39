"""Task and queue definitions, and the ``@task`` decorator that registers them."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polaris_jupyter.jobs._models import InvalidInput, RetryPolicy

if TYPE_CHECKING:
    from polaris_jupyter.jobs._context import RunContext

__all__ = ["QueueDef", "ScheduleDef", "TaskDef", "TaskRegistry", "default_registry", "queue", "task"]

TaskFn = Callable[[Any, "RunContext"], Awaitable[Any]]
Hook = Callable[..., Any]
#: Refuses a payload (raises ``InvalidInput``) before a run or a schedule of the task is created.
PayloadCheck = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class QueueDef:
    """A named queue. ``concurrency_limit=None`` means only the global pool bounds it.

    Runs that carry a ``concurrency_key`` get a lane of their own per key, each with this limit.
    """

    name: str
    concurrency_limit: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "concurrencyLimit": self.concurrency_limit}


@dataclass(frozen=True)
class ScheduleDef:
    """A declarative cron schedule attached to a task definition."""

    cron: str
    timezone: str = "UTC"
    id: str | None = None


@dataclass
class TaskDef:
    """A task: an async function ``(payload, ctx)`` plus how its runs are retried and queued.

    ``check_payload``, when set, lets the API refuse a payload the task would refuse (a 400 at
    trigger or schedule time, instead of a failed run); the task still validates when it runs."""

    id: str
    fn: TaskFn
    retry: RetryPolicy | None = None
    queue: QueueDef = field(default_factory=lambda: QueueDef("default"))
    max_duration_s: float | None = None
    ttl_s: float | None = None
    on_start: Hook | None = None
    on_success: Hook | None = None
    on_failure: Hook | None = None
    on_cancel: Hook | None = None
    schedules: list[ScheduleDef] = field(default_factory=list)
    description: str = ""
    check_payload: PayloadCheck | None = None

    def to_json(self, default_retry: RetryPolicy) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "queue": self.queue.to_json(),
            "retry": (self.retry or default_retry).to_json(),
            "maxDurationS": self.max_duration_s,
            "ttlS": self.ttl_s,
            "schedules": [{"cron": s.cron, "timezone": s.timezone} for s in self.schedules],
        }


class TaskRegistry:
    """Task definitions by id. The engine reads it at trigger time, so tasks may be added late."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskDef] = {}
        self._queues: dict[str, QueueDef] = {"default": QueueDef("default")}

    def add(self, definition: TaskDef) -> TaskDef:
        if not definition.id or not isinstance(definition.id, str):
            raise InvalidInput("a task needs a non-empty string id")
        if not inspect.iscoroutinefunction(definition.fn):
            raise InvalidInput(f"task {definition.id!r}: the function must be `async def`")
        self._tasks[definition.id] = definition
        self._queues.setdefault(definition.queue.name, definition.queue)
        return definition

    def remove(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    def get(self, task_id: str) -> TaskDef | None:
        return self._tasks.get(task_id)

    def all(self) -> list[TaskDef]:
        return list(self._tasks.values())

    async def check_payload(self, task_id: str, payload: Any) -> None:
        """Raise ``InvalidInput`` if the task's :attr:`TaskDef.check_payload` refuses ``payload``."""
        definition = self._tasks.get(task_id)
        if definition is not None and definition.check_payload is not None:
            await definition.check_payload(payload)

    def queue(self, name: str) -> QueueDef:
        return self._queues.get(name) or QueueDef(name)

    def add_queue(self, q: QueueDef) -> QueueDef:
        self._queues[q.name] = q
        return q


default_registry = TaskRegistry()


def queue(name: str, *, concurrency_limit: int | None = None, registry: TaskRegistry | None = None) -> QueueDef:
    """Declare a named queue with a concurrency limit (shared by every task that names it)."""
    return (registry or default_registry).add_queue(QueueDef(name, concurrency_limit))


def task(
    id: str,
    *,
    retry: RetryPolicy | dict[str, Any] | None = None,
    queue: QueueDef | str | None = None,
    max_duration_s: float | None = None,
    ttl_s: float | None = None,
    on_start: Hook | None = None,
    on_success: Hook | None = None,
    on_failure: Hook | None = None,
    on_cancel: Hook | None = None,
    cron: str | None = None,
    timezone: str = "UTC",
    registry: TaskRegistry | None = None,
) -> Callable[[TaskFn], TaskDef]:
    """Register an async function as a task.

    Example::

        @task(id="resize", retry=RetryPolicy(max_attempts=5), queue="images")
        async def resize(payload, ctx):
            ctx.logger.info("resizing", data={"file": payload["file"]})
            return {"ok": True}
    """
    reg = registry or default_registry
    if isinstance(retry, dict):
        retry = RetryPolicy.from_json(retry)
    if isinstance(queue, str):
        qdef = reg.queue(queue)
    else:
        qdef = queue or QueueDef("default")

    def decorate(fn: TaskFn) -> TaskDef:
        definition = TaskDef(
            id=id,
            fn=fn,
            retry=retry,
            queue=qdef,
            max_duration_s=max_duration_s,
            ttl_s=ttl_s,
            on_start=on_start,
            on_success=on_success,
            on_failure=on_failure,
            on_cancel=on_cancel,
            schedules=[ScheduleDef(cron, timezone)] if cron else [],
            description=(inspect.getdoc(fn) or "").split("\n")[0],
        )
        return reg.add(definition)

    return decorate
