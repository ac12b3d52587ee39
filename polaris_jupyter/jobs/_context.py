"""What a task running in the server's engine sees: its run, metadata, a logger, checkpoints, events.

:class:`RunContext` is the engine's implementation of :class:`~polaris_jupyter.jobs.TaskContext`
(``jobs/context.py`` holds the contract and the metadata, log, checkpoint and event rules it
shares with the context of a task defined in a kernel). Everything written through it is
persisted with the run and streamed as events, so the UI can show live progress and a retried
attempt can pick up from the last checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from polaris_jupyter.jobs._models import Run, TriggerOptions
from polaris_jupyter.jobs._options import options_from_json
from polaris_jupyter.jobs.context import (
    EVENT_PREFIXES_RESERVED_FOR_ENGINE,
    MetadataChange,
    RunLogger,
    RunMetadata,
    TaskContext,
    check_checkpoint,
    check_event,
)

if TYPE_CHECKING:
    from polaris_jupyter.jobs._engine import Engine
    from polaris_jupyter.jobs._handles import RunHandle, RunResult

__all__ = ["RunContext"]


class RunContext:
    """Passed to every task function the engine runs, as its second argument."""

    def __init__(self, engine: Engine, run: Run, attempt: int) -> None:
        self.engine = engine
        self.run = run
        self.attempt = attempt
        self.metadata = RunMetadata(run.metadata, self._metadata_changed)
        self.logger = RunLogger(lambda level, message, data: engine._log(run, attempt, level, message, data))

    def _metadata_changed(self, change: MetadataChange) -> None:
        self.run.metadata = change.metadata
        self.engine._metadata_changed(self.run)

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def task_id(self) -> str:
        return self.run.task_id

    @property
    def max_attempts(self) -> int:
        return self.run.max_attempts

    @property
    def payload(self) -> Any:
        return self.run.payload

    @property
    def tags(self) -> list[str]:
        return self.run.tags

    @property
    def stopping(self) -> bool:
        """The process is shutting down: a ``CancelledError`` now interrupts the attempt (the run
        resumes after the restart, as after a crash) rather than cancelling the run."""
        return self.engine.stopping

    # -- checkpoints: durable progress of a multi-step task ------------------------------------
    def checkpoint(self, key: str) -> Any:
        """The value saved under ``key`` by this run (or an earlier attempt / resumed run)."""
        return self.run.checkpoints.get(key)

    async def save_checkpoint(self, key: str, value: Any) -> None:
        """Persist ``value`` under ``key`` and wait until it is on disk."""
        self.run.checkpoints[check_checkpoint(key, value)] = value
        await self.engine._persist_now(self.run)

    # -- events -------------------------------------------------------------------------------
    def emit(
        self,
        type: str,
        data: dict[str, Any],
        *,
        conversation_id: str | None = None,
        reserved: tuple[str, ...] = EVENT_PREFIXES_RESERVED_FOR_ENGINE,
    ) -> None:
        """Stream a custom event (e.g. ``generation.file``) on this run's stream.

        ``reserved`` are the type prefixes refused (see ``check_event``); the server applies a
        kernel's ``emit`` frame with the kernel's wider set."""
        check_event(type, data, reserved)
        self.engine._emit_run_event(self.run, type, data, conversation_id=conversation_id)

    # -- child runs -----------------------------------------------------------------------------
    async def trigger(
        self, task_id: str, payload: Any = None, options: TriggerOptions | Mapping[str, Any] | None = None
    ) -> RunHandle:
        """Trigger a child run (it records this run as its parent); ``options`` is a
        ``TriggerOptions`` or its JSON form, as in a kernel-defined task."""
        if options is None or isinstance(options, TriggerOptions):
            opts = options or TriggerOptions()
        else:
            opts = options_from_json(dict(options) if isinstance(options, Mapping) else options, self.engine.clock.now())
        return await self.engine.trigger(task_id, payload, opts, parent=self)

    async def trigger_and_wait(
        self, task_id: str, payload: Any = None, options: TriggerOptions | Mapping[str, Any] | None = None
    ) -> RunResult:
        handle = await self.trigger(task_id, payload, options)
        return await handle.result()


if TYPE_CHECKING:  # mypy proves the engine's context keeps the contract

    def _conforms(ctx: RunContext) -> TaskContext:
        return ctx
