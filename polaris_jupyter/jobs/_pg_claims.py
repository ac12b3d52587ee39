"""Claims of dispatched runs, batched: what DBOS hands over together is claimed in one transaction.

Each DBOS workflow that reaches this process asks for its run (``claim_run``: a row-locked
compare-and-set). Claimed one by one, every run cost a transaction of its own on the store's
one writer connection (a savepoint, the row lock, the update, the release: four round trips),
and the writer became the bottleneck. Claims that arrive while a batch is in flight wait for
the next one; a batch is one statement for the usual case (a queued run, a due retry:
``claim_runs``) and ``claim_run`` for the rest. A run whose claim is in flight here counts as
running here, so a second workflow of it (a hand-back, a recovery) is a duplicate, never a
second attempt. A run of a task this process does not have is not started (``absent``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from polaris_jupyter.jobs._pg_transitions import claim_run, claim_runs

if TYPE_CHECKING:
    from polaris_jupyter.jobs._pg_engine import PgEngine

__all__ = ["ClaimBatcher"]

log = logging.getLogger("polaris_jupyter.jobs.pg")


class ClaimBatcher:
    """The claim batches of one :class:`PgEngine` (see the module docstring)."""

    def __init__(self, engine: PgEngine) -> None:
        self.engine = engine
        self._pending: list[tuple[str, bool, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._in_flight: collections.Counter[str] = collections.Counter()

    async def claim(self, run_id: str) -> Any:
        """``(outcome, row before)`` of ``claim_run`` for ``run_id``, from the next batch."""
        engine = self.engine
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((run_id, run_id in engine._tasks or self._in_flight[run_id] > 0, fut))
        self._in_flight[run_id] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._batches(), name="polaris-pg-claims")
            engine._side_tasks.add(self._task)
            self._task.add_done_callback(engine._side_done)
        try:
            return await fut
        finally:
            self._in_flight[run_id] -= 1
            if self._in_flight[run_id] <= 0:
                del self._in_flight[run_id]

    async def _batches(self) -> None:
        engine = self.engine
        while self._pending:
            batch, self._pending = self._pending, []
            items = [(run_id, here) for run_id, here, _ in batch]
            common: dict[str, Any] = {"executor_id": engine.executor_id or "", "now": engine.clock.now(),
                      "alive_since": time.time() - engine.dead_after_s,
                      "known": sorted(t.id for t in engine.registry.all()),
                      "gone": {task_id: why for task_id, (why, _) in engine._absent.items()}}
            try:
                results = await engine.store.pg_write(functools.partial(claim_runs, items=items, **common))
            except Exception:
                log.warning("claiming %d runs together failed; claiming them one at a time", len(batch), exc_info=True)
                for run_id, here, fut in batch:
                    try:
                        one = await engine.store.pg_write(functools.partial(claim_run, run_id=run_id, running_here=here,
                                                                            **common))
                    except Exception as exc:
                        if not fut.done():
                            fut.set_exception(exc)
                    else:
                        if not fut.done():
                            fut.set_result(one)
                continue
            for (_, _, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
