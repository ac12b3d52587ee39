"""What a running task sees: its run, a metadata accessor, a logger, checkpoints, events.

Everything written through the context is persisted with the run and streamed as events, so
the UI can show live progress and a retried attempt can pick up from the last checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from polaris_jupyter.jobs._models import InvalidInput, Run, TriggerOptions

if TYPE_CHECKING:
    from polaris_jupyter.jobs._engine import Engine, RunHandle, RunResult

__all__ = ["Metadata", "RunContext", "RunLogger"]

#: Run metadata is kept small: it is sent with every run listing.
MAX_METADATA_BYTES = 64 * 1024


class Metadata:
    """``ctx.metadata``: a JSON object on the run, updated with set/append/increment/remove."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx

    @property
    def current(self) -> dict[str, Any]:
        return self._ctx.run.metadata

    def get(self, key: str, default: Any = None) -> Any:
        return self.current.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._update(lambda m: m.__setitem__(key, value))

    def remove(self, key: str) -> None:
        self._update(lambda m: m.pop(key, None))

    def append(self, key: str, value: Any) -> None:
        def op(m: dict[str, Any]) -> None:
            existing = m.get(key)
            if existing is None:
                m[key] = [value]
            elif isinstance(existing, list):
                existing.append(value)
            else:
                m[key] = [existing, value]

        self._update(op)

    def increment(self, key: str, by: float = 1) -> None:
        def op(m: dict[str, Any]) -> None:
            current = m.get(key, 0)
            if not isinstance(current, (int, float)):
                raise InvalidInput(f"metadata {key!r} is not a number")
            m[key] = current + by

        self._update(op)

    def decrement(self, key: str, by: float = 1) -> None:
        self.increment(key, -by)

    def _update(self, op: Any) -> None:
        candidate = json.loads(json.dumps(self.current))
        op(candidate)
        size = len(json.dumps(candidate, default=str))
        if size > MAX_METADATA_BYTES:
            raise InvalidInput(f"run metadata would be {size} bytes; the limit is {MAX_METADATA_BYTES}")
        self._ctx.run.metadata = candidate
        self._ctx.engine._metadata_changed(self._ctx.run)


class RunLogger:
    """``ctx.logger``: log lines stored with the run (per attempt) and streamed as events.

    ``sink(level, message, data)`` does the storing, so a context living elsewhere (a task run
    by a kernel, whose lines travel over a socket) uses the same logger.
    """

    def __init__(self, sink: Callable[[str, str, Any], None]) -> None:
        self._sink = sink

    def log(self, level: str, message: str, data: Any = None) -> None:
        self._sink(level, str(message), data)

    def debug(self, message: str, data: Any = None) -> None:
        self.log("debug", message, data)

    def info(self, message: str, data: Any = None) -> None:
        self.log("info", message, data)

    def warn(self, message: str, data: Any = None) -> None:
        self.log("warn", message, data)

    warning = warn

    def error(self, message: str, data: Any = None) -> None:
        self.log("error", message, data)


class RunContext:
    """Passed to every task function as its second argument."""

    def __init__(self, engine: Engine, run: Run, attempt: int) -> None:
        self.engine = engine
        self.run = run
        self.attempt = attempt
        self.metadata = Metadata(self)
        self.logger = RunLogger(lambda level, message, data: engine._log(run, attempt, level, message, data))

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def task_id(self) -> str:
        return self.run.task_id

    @property
    def payload(self) -> Any:
        return self.run.payload

    @property
    def tags(self) -> list[str]:
        return self.run.tags

    # -- checkpoints: durable progress of a multi-step task ------------------------------------
    def checkpoint(self, key: str) -> Any:
        """The value saved under ``key`` by this run (or an earlier attempt / resumed run)."""
        return self.run.checkpoints.get(key)

    async def save_checkpoint(self, key: str, value: Any) -> None:
        """Persist ``value`` under ``key`` and wait until it is on disk."""
        json.dumps(value)
        self.run.checkpoints[key] = value
        await self.engine._persist_now(self.run)

    # -- events -------------------------------------------------------------------------------
    def emit(self, type: str, data: dict[str, Any], *, conversation_id: str | None = None) -> None:
        """Stream a custom event (e.g. ``generation.file``) on this run's stream."""
        self.engine._emit_run_event(self.run, type, data, conversation_id=conversation_id)

    # -- child runs -----------------------------------------------------------------------------
    async def trigger(
        self, task_id: str, payload: Any = None, options: TriggerOptions | None = None
    ) -> RunHandle:
        opts = options or TriggerOptions()
        return await self.engine.trigger(task_id, payload, opts, parent=self)

    async def trigger_and_wait(
        self, task_id: str, payload: Any = None, options: TriggerOptions | None = None
    ) -> RunResult:
        handle = await self.trigger(task_id, payload, options)
        return await handle.result()
