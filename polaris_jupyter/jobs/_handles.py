"""What a trigger hands back: a run's handle, a batch's handles, a finished run's result.

Kept apart from the engine so that code holding a handle (a task's context, the kernel bridge)
depends on this small surface, not on the engine's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polaris_jupyter.jobs._models import Run, RunStatus

if TYPE_CHECKING:
    from polaris_jupyter.jobs._engine import Engine

__all__ = ["BatchHandle", "RunHandle", "RunResult"]


@dataclass
class RunResult:
    """What ``trigger_and_wait`` returns: ``ok`` with ``output``, or the ``error``."""

    ok: bool
    output: Any
    error: dict[str, Any] | None
    run: Run


class RunHandle:
    """A triggered run: its id plus ``status()``, ``result()`` and ``cancel()``.

    ``is_cached`` is True when an idempotency key matched an earlier run: this handle is that
    run's, and nothing new was created.
    """

    def __init__(self, engine: Engine, run_id: str, *, is_cached: bool = False) -> None:
        self.engine = engine
        self.id = run_id
        self.is_cached = is_cached

    async def status(self) -> RunStatus:
        return (await self.engine.get_run(self.id)).status

    async def result(self, timeout_s: float | None = None) -> RunResult:
        run = await self.engine.wait_for(self.id, timeout_s=timeout_s)
        return RunResult(run.status is RunStatus.COMPLETED, run.output, run.error, run)

    async def cancel(self) -> Run:
        return await self.engine.cancel(self.id)

    def __repr__(self) -> str:
        return f"RunHandle({self.id!r})"


@dataclass
class BatchHandle:
    """The runs of one ``batch_trigger`` (same order as its items), under one batch id."""

    batch_id: str
    runs: list[RunHandle]
