"""What both kernel backends offer: the operations of the route table as async Python methods.

The typed methods are written once, here, over one primitive :meth:`Backend.call` (an operation
id of ``polaris_jupyter.api.ROUTES`` with its wire-form parameters). The remote backend sends
the call over HTTP to the server extension; the local one hands it to the ``PolarisAPI`` of an
engine hosted in this kernel. Both validate with the same schemas and return the same JSON, so
the magics, widgets and notebooks never care which backend they talk to, and the two modes
cannot drift.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from polaris_jupyter.errors import PolarisError
from polaris_jupyter.jobs import FINAL_STATUSES

__all__ = ["FINAL_RUN_STATUSES", "Backend", "PolarisError", "trigger_options"]

#: The final run statuses as wire strings (derived from the engine's one definition).
FINAL_RUN_STATUSES = frozenset(s.value for s in FINAL_STATUSES)
JSON = Any


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

    @abc.abstractmethod
    async def call(
        self, op: str, *, path: dict[str, str] | None = None, query: dict[str, Any] | None = None, body: Any = None
    ) -> JSON:
        """Run operation ``op`` of the route table; raises the ``polaris_jupyter.errors`` family."""

    # -- events ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def events(
        self, *, conversation_id: str | None = None, run_id: str | None = None, since: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Events after ``since`` (default: from now on), forever; resumes by seq after a drop."""

    async def last_event_seq(self) -> int:
        """The sequence number of the newest event (a position to resume from)."""
        return int((await self.call("health")).get("lastEventSeq") or 0)

    # -- tasks, runs, schedules -------------------------------------------------------------------
    async def tasks(self) -> list[dict[str, Any]]:
        return list((await self.call("list_tasks"))["tasks"])

    async def trigger(self, task_id: str, payload: Any = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"payload": payload}
        if options:
            body["options"] = options
        return dict(await self.call("trigger", path={"taskId": task_id}, body=body))

    async def batch_trigger(self, task_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(await self.call("batch_trigger", path={"taskId": task_id}, body={"items": items}))

    async def runs(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        tag: str | None = None,
        conversation: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        query = {"status": status, "task": task, "tag": tag, "conversation": conversation, "cursor": cursor, "limit": limit}
        return dict(await self.call("list_runs", query=query))

    async def run(self, run_id: str) -> dict[str, Any]:
        return dict(await self.call("get_run", path={"runId": run_id}))

    async def cancel_run(self, run_id: str) -> dict[str, Any]:
        return dict(await self.call("cancel_run", path={"runId": run_id}))

    async def replay_run(self, run_id: str, resume: bool = False) -> dict[str, Any]:
        return dict(await self.call("replay_run", path={"runId": run_id}, body={"resume": resume}))

    async def revert_run(self, run_id: str, force: bool = False) -> dict[str, Any]:
        return dict(await self.call("revert_run", path={"runId": run_id}, body={"force": force}))

    async def run_events(self, run_id: str, since: int = 0) -> dict[str, Any]:
        return dict(await self.call("run_events", path={"runId": run_id}, query={"since": since, "limit": 10_000}))

    async def schedules(self) -> list[dict[str, Any]]:
        return list((await self.call("list_schedules"))["data"])

    async def create_schedule(
        self, task_id: str, cron: str, timezone: str = "UTC", payload: Any = None, external_id: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {"task": task_id, "cron": cron, "timezone": timezone, "payload": payload}
        if external_id:
            body["externalId"] = external_id
        if options:
            body["options"] = options
        return dict(await self.call("create_schedule", body=body))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self.call("delete_schedule", path={"scheduleId": schedule_id})

    # -- chat ------------------------------------------------------------------------------------
    async def conversations(self) -> list[dict[str, Any]]:
        return list((await self.call("list_conversations"))["data"])

    async def create_conversation(self, title: str | None = None) -> dict[str, Any]:
        return dict(await self.call("create_conversation", body={"title": title} if title else {}))

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        return dict(await self.call("get_conversation", path={"conversationId": conversation_id}))

    async def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        return list((await self.call("list_messages", path={"conversationId": conversation_id}))["data"])

    async def post_message(
        self, conversation_id: str, content: str, context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"content": content}
        if context:
            body["context"] = context
        return dict(await self.call("post_message", path={"conversationId": conversation_id}, body=body))

    async def cancel_message(self, message_id: str) -> dict[str, Any]:
        return dict(await self.call("cancel_message", path={"messageId": message_id}))

    async def retry_message(self, message_id: str) -> dict[str, Any]:
        return dict(await self.call("retry_message", path={"messageId": message_id}))

    async def mention_files(self, query: str = "", limit: int = 20) -> list[str]:
        return list((await self.call("mention_files", query={"query": query, "limit": limit}))["paths"])

    # -- config and generation ------------------------------------------------------------------
    async def config(self) -> dict[str, Any]:
        return dict(await self.call("get_config"))

    async def set_model(self, provider: str | None = None, model: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in (("provider", provider), ("model", model)) if v is not None}
        return dict(await self.call("set_model", body=body))

    async def project_kinds(self) -> list[dict[str, Any]]:
        return list((await self.call("list_project_kinds"))["kinds"])

    async def generate(self, description: str, kind: str, path: str, overwrite: bool = False) -> dict[str, Any]:
        body = {"description": description, "kind": kind, "path": path, "overwrite": overwrite}
        return dict(await self.call("generate", body=body))

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
