"""Cron schedules when several processes share one PostgreSQL schema: each slot fires once.

Every process (servers and workers) keeps the schema's schedules and arms their slots on its
own clock, exactly as the embedded engine does (``_schedules.py``: catch-up of the most recent
missed slot, the firing's envelope and options), so a schedule fires as long as any process is
up. What several processes add:

- **one winner per slot**: a firing claims its slot with a compare-and-set on the schedule's
  row (``last_slot`` below the slot, definition unchanged, still active) in the transaction
  that inserts its run (:meth:`PgEngine.trigger_if`). The other processes' claims of that
  slot change nothing, whatever became of the winning run: a run that failed at once releases
  its idempotency key, never its slot. A restart reads ``last_slot`` and fires only slots after
  it (or the most recent missed one, once).
- **the others learn**: each keeper sweep (every ``sweep_s``) reloads the table, so a schedule
  created, changed or deleted by one process is armed, re-armed or dropped in every other
  within seconds; slots fired elsewhere advance ``last_slot`` here too.

Cron stays ours rather than DBOS's ``create_schedule``: the engine's semantic suite drives
schedules with a fake clock, the catch-up rule is "the most recent missed slot once", and a
firing is a run with our envelope; DBOS still dispatches each firing's run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from polaris_jupyter.jobs._models import TriggerOptions
from polaris_jupyter.jobs._schedules import Schedule, ScheduleManager

if TYPE_CHECKING:
    from polaris_jupyter.jobs._pg_engine import PgEngine
    from polaris_jupyter.jobs._pg_store import PgConnection

__all__ = ["PgScheduleManager"]

log = logging.getLogger("polaris_jupyter.jobs.pg")
_CLAIM_SLOT = (
    "UPDATE schedules SET last_slot = ? WHERE id = ? AND active = 1 AND task_id = ? AND cron = ? AND timezone = ? "
    "AND (last_slot IS NULL OR last_slot < ?) RETURNING id"
)


def _definition(schedule: Schedule) -> tuple[Any, ...]:
    """What arms a schedule (a change re-arms it); ``last_slot`` only moves forward."""
    return (schedule.task_id, schedule.cron, schedule.timezone, schedule.active, schedule.payload,
            schedule.options, schedule.declarative)


class PgScheduleManager(ScheduleManager):
    """The schema's schedules in one process of many (see the module docstring)."""

    engine: PgEngine

    async def _trigger_firing(
        self, schedule: Schedule, payload: dict[str, Any], options: TriggerOptions, record_slot: Callable[[], None]
    ) -> None:
        slot = schedule.next_slot
        assert slot is not None

        def claim(c: PgConnection) -> bool:
            row = c.execute(_CLAIM_SLOT, (slot, schedule.id, schedule.task_id, schedule.cron, schedule.timezone, slot))
            return row.fetchone() is not None

        handle = await self.engine.trigger_if(
            claim, schedule.task_id, payload, options, schedule_id=schedule.id, before_commit=record_slot
        )
        if handle is None:
            log.info("schedule %s: slot %s was fired by another process", schedule.id, payload["timestamp"])

    async def reload(self) -> None:
        """Bring this process's schedules in line with the table (other processes' changes)."""
        known_before = set(self._schedules)  # one created here during the read is not "deleted"
        rows = await self.engine.store.query("SELECT * FROM schedules")
        now = self.engine.clock.now()
        seen: set[str] = set()
        for row in rows:
            fresh = Schedule(dict(row))
            seen.add(fresh.id)
            known = self._schedules.get(fresh.id)
            if known is None or _definition(known) != _definition(fresh):
                if known is not None and (known.last_slot or 0) > (fresh.last_slot or 0):
                    fresh.last_slot = known.last_slot
                self._schedules[fresh.id] = fresh
                if fresh.active:
                    self._arm(fresh, now)
            elif fresh.last_slot is not None and (known.last_slot is None or fresh.last_slot > known.last_slot):
                known.last_slot = fresh.last_slot  # fired elsewhere: this process's timer will skip it
        for schedule_id in [s for s in known_before if s not in seen and s in self._schedules]:
            del self._schedules[schedule_id]  # deleted elsewhere; its armed timer finds nothing
