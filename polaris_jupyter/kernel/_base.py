"""What both kernel backends offer: the REST contract of notes/API.md as async Python methods.

Every method returns the same JSON shapes (camelCase dicts) whether it went over HTTP to the
server extension or straight to an engine hosted in this kernel, so the magics, widgets and
notebooks never care which backend they talk to.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

__all__ = ["FINAL_RUN_STATUSES", "Backend", "PolarisError", "trigger_options"]

FINAL_RUN_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED", "CRASHED", "TIMED_OUT", "EXPIRED"})


class PolarisError(Exception):
    """A request Polaris refused or could not serve; ``status`` is the HTTP-style code."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


_OPTION_NAMES = {
    "delay": "delay",
    "ttl": "ttl",
    "idempotency_key": "idempotencyKey",
    "idempotency_key_ttl": "idempotencyKeyTTL",
    "tags": "tags",
    "metadata": "metadata",
    "concurrency_key": "concurrencyKey",
    "queue": "queue",
    "max_attempts": "maxAttempts",
    "max_duration": "maxDuration",
}


def trigger_options(**options: Any) -> dict[str, Any]:
    """Python keyword options (``delay="10s"``, ``idempotency_key=...``) → the REST ``options`` JSON."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        key = _OPTION_NAMES.get(name)
        if key is None:
            raise PolarisError(f"unknown trigger option {name!r}; use one of {', '.join(sorted(_OPTION_NAMES))}")
        out[key] = value
    return out


class Backend(abc.ABC):
    """The async API of Polaris as seen from a kernel; runs on the kernel's Polaris loop thread."""

    mode: ClassVar[str]

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """One line for humans: where the engine lives."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # -- events ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def last_event_seq(self) -> int:
        """The sequence number of the newest event (a position to resume from)."""

    @abc.abstractmethod
    def events(
        self, *, conversation_id: str | None = None, run_id: str | None = None, since: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Events after ``since`` (default: from now on), forever; resumes by seq after a drop."""

    # -- tasks, runs, schedules -------------------------------------------------------------------
    @abc.abstractmethod
    async def tasks(self) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def trigger(self, task_id: str, payload: Any = None, options: dict[str, Any] | None = None) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def batch_trigger(self, task_id: str, items: list[dict[str, Any]]) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def runs(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        tag: str | None = None,
        conversation: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def run(self, run_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def cancel_run(self, run_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def replay_run(self, run_id: str, resume: bool = False) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def revert_run(self, run_id: str, force: bool = False) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def run_events(self, run_id: str, since: int = 0) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def schedules(self) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def create_schedule(
        self, task_id: str, cron: str, timezone: str = "UTC", payload: Any = None, external_id: str | None = None
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def delete_schedule(self, schedule_id: str) -> None: ...

    # -- chat ------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def conversations(self) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def create_conversation(self, title: str | None = None) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def conversation(self, conversation_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def messages(self, conversation_id: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def post_message(
        self, conversation_id: str, content: str, context: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def cancel_message(self, message_id: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def retry_message(self, message_id: str) -> dict[str, Any]: ...

    # -- config and generation ------------------------------------------------------------------
    @abc.abstractmethod
    async def config(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def set_model(self, provider: str | None = None, model: str | None = None) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def project_kinds(self) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def generate(self, description: str, kind: str, path: str, overwrite: bool = False) -> dict[str, Any]: ...

    # -- shared helpers ------------------------------------------------------------------------
    async def wait_run(self, run_id: str, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait until the run is final (COMPLETED, FAILED, ...) and return it."""
        async with asyncio.timeout(timeout_s):
            since = await self.last_event_seq()
            run = await self.run(run_id)
            if run["status"] in FINAL_RUN_STATUSES:
                return run
            stream = self.events(run_id=run_id, since=since)
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                async for event in stream:
                    if event.get("type") == "run.status" and event["data"].get("status") in FINAL_RUN_STATUSES:
                        break
            return await self.run(run_id)
