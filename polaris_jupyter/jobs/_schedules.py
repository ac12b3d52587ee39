"""Cron schedules with time zones: each firing is a run; no slot fires twice, even across restarts.

The slot a schedule fired last is written in the same transaction as the run it created, so
after a crash the schedule resumes from exactly there. A slot missed while the server was down
fires once on start (marked ``catchUp``); older missed slots are skipped, as cron does.

A schedule carries the ``payload`` its task receives (inside the firing's envelope, under
``payload``) and trigger ``options`` applied to every firing (``maxAttempts``, ``maxDuration``,
``ttl``, ``queue``, ``concurrencyKey``, ``tags``, ``metadata``); the idempotency key and the delay
of a firing are the schedule's own, so those options are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from polaris_jupyter.jobs._models import Conflict, InvalidInput, TaskNotFound, TriggerOptions, iso, new_id
from polaris_jupyter.jobs._options import MAX_TAGS, options_from_json
from polaris_jupyter.jobs._schema import AddColumn, Schema

if TYPE_CHECKING:
    from polaris_jupyter.jobs._engine import Engine

__all__ = ["SCHEDULES_SCHEMA", "Schedule", "ScheduleManager", "next_slot", "schedule_options", "validate_cron"]

#: The ``schedules`` table, registered with the engine's store (version 1: the unversioned shape;
#: version 2: the trigger ``options`` of each firing).
SCHEDULES_SCHEMA = Schema(
    "schedules",
    migrations=(
        (
            "CREATE TABLE IF NOT EXISTS schedules (id TEXT PRIMARY KEY, task_id TEXT NOT NULL, cron TEXT NOT NULL, "
            "timezone TEXT NOT NULL, payload TEXT, last_slot REAL, created_at REAL, active INTEGER NOT NULL DEFAULT 1, "
            "declarative INTEGER NOT NULL DEFAULT 0)",
        ),
        (AddColumn("schedules", "options", "TEXT"),),
    ),
)
#: Trigger options a firing sets itself: a schedule may not carry them.
_FIRING_OWNED_OPTIONS = ("delay", "idempotencyKey", "idempotencyKeyTTL", "idempotencyKeyScope")


def validate_cron(expr: str, timezone: str) -> None:
    if not isinstance(expr, str) or len(expr.split()) != 5:
        raise InvalidInput(f"cron must have 5 fields (minute hour day month weekday), got {expr!r}")
    if not croniter.is_valid(expr):
        raise InvalidInput(f"cron expression {expr!r} is not valid")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {timezone!r}; use an IANA name such as 'Europe/Paris'") from exc


def schedule_options(options: Any, now: float) -> TriggerOptions:
    """The trigger options of a schedule's firings, checked (``options_from_json`` rules, and
    none of the options a firing owns)."""
    if options is not None and not isinstance(options, dict):
        raise InvalidInput("options must be a JSON object such as {\"maxAttempts\": 2}")
    owned = sorted(set(options or {}) & set(_FIRING_OWNED_OPTIONS))
    if owned:
        raise InvalidInput(f"a schedule cannot set {owned[0]!r}: each firing has its own idempotency key and runs at its slot")
    checked = options_from_json(options, now)
    if len(checked.tags) >= MAX_TAGS:
        raise InvalidInput(f"a schedule may carry at most {MAX_TAGS - 1} tags: each firing adds schedule:<id>")
    return checked


def next_slot(expr: str, timezone: str, after: float) -> float:
    base = datetime.fromtimestamp(after, ZoneInfo(timezone))
    return float(croniter(expr, base).get_next(float))


def prev_slot(expr: str, timezone: str, before: float) -> float:
    base = datetime.fromtimestamp(before, ZoneInfo(timezone))
    return float(croniter(expr, base).get_prev(float))


class Schedule:
    def __init__(self, row: dict[str, Any]) -> None:
        self.id: str = row["id"]
        self.task_id: str = row["task_id"]
        self.cron: str = row["cron"]
        self.timezone: str = row["timezone"]
        self.payload: Any = json.loads(row["payload"]) if row.get("payload") else None
        self.options: dict[str, Any] | None = json.loads(row["options"]) if row.get("options") else None
        self.last_slot: float | None = row.get("last_slot")
        self.created_at: float = row["created_at"]
        self.active: bool = bool(row.get("active", 1))
        self.declarative: bool = bool(row.get("declarative", 0))
        self.next_slot: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "taskId": self.task_id,
            "cron": self.cron,
            "timezone": self.timezone,
            "active": self.active,
            "declarative": self.declarative,
            "lastTimestamp": iso(self.last_slot),
            "nextRun": iso(self.next_slot),
            "payload": self.payload,
            "options": self.options,
        }


class ScheduleManager:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._schedules: dict[str, Schedule] = {}
        engine.store.register(SCHEDULES_SCHEMA)

    async def start(self) -> None:
        await self.engine.store.ensure_schema(SCHEDULES_SCHEMA)  # a no-op unless the store was open before
        rows = await self.engine.store.query("SELECT * FROM schedules")
        for row in rows:
            self._schedules[row["id"]] = Schedule(dict(row))
        for definition in self.engine.registry.all():
            for sdef in definition.schedules:
                await self.create(
                    definition.id, sdef.cron, sdef.timezone, schedule_id=sdef.id or f"{definition.id}@{sdef.cron}@{sdef.timezone}", declarative=True
                )
        now = self.engine.clock.now()
        for schedule in self._schedules.values():
            if schedule.active:
                self._arm(schedule, now, startup=True)

    def list(self) -> list[Schedule]:
        return list(self._schedules.values())

    def get(self, schedule_id: str) -> Schedule | None:
        return self._schedules.get(schedule_id)

    async def create(
        self,
        task_id: str,
        cron: str,
        timezone: str = "UTC",
        *,
        payload: Any = None,
        options: dict[str, Any] | None = None,
        schedule_id: str | None = None,
        declarative: bool = False,
    ) -> Schedule:
        """Create (or update, when ``schedule_id`` exists) a schedule and arm it; ``options`` are
        the trigger options of every firing (see :func:`schedule_options`)."""
        validate_cron(cron, timezone)
        schedule_options(options, self.engine.clock.now())
        if self.engine.registry.get(task_id) is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        sid = schedule_id or new_id("sched")
        existing = self._schedules.get(sid)
        now = self.engine.clock.now()
        row = {
            "id": sid,
            "task_id": task_id,
            "cron": cron,
            "timezone": timezone,
            "payload": json.dumps(payload) if payload is not None else None,
            "options": json.dumps(options) if options else None,
            "last_slot": existing.last_slot if existing else None,
            "created_at": existing.created_at if existing else now,
            "active": 1,
            "declarative": int(declarative),
        }
        self.engine.store.execute(
            "INSERT INTO schedules (id, task_id, cron, timezone, payload, options, last_slot, created_at, active, declarative) "
            "VALUES (:id, :task_id, :cron, :timezone, :payload, :options, :last_slot, :created_at, :active, :declarative) "
            "ON CONFLICT(id) DO UPDATE SET task_id=excluded.task_id, cron=excluded.cron, timezone=excluded.timezone, "
            "payload=excluded.payload, options=excluded.options, active=1",
            row,  # type: ignore[arg-type]
        )
        await self.engine.store.commit()
        schedule = Schedule(row)
        self._schedules[sid] = schedule
        if self.engine.timers.started:
            self._arm(schedule, now, startup=False)
        return schedule

    async def delete(self, schedule_id: str) -> None:
        """Delete a schedule made at run time; one declared in code is refused (Conflict), as it
        would be declared again at the next start."""
        schedule = self._schedules.get(schedule_id)
        if schedule is None:
            raise InvalidInput(f"no schedule with id {schedule_id!r}")
        if schedule.declarative:
            raise Conflict(
                f"schedule {schedule_id!r} is declared in code by task {schedule.task_id!r}: deleting it would not "
                "last, the server declares it again at its next start; change or remove it where the task is "
                "defined (or in its settings)"
            )
        del self._schedules[schedule_id]
        self.engine.store.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,))
        await self.engine.store.commit()

    def _arm(self, schedule: Schedule, now: float, *, startup: bool = False) -> None:
        base = max(schedule.last_slot or schedule.created_at, schedule.created_at)
        slot = next_slot(schedule.cron, schedule.timezone, base)
        if slot <= now:
            # Missed (server down, laptop asleep): fire the most recent slot once, skip older ones.
            slot = prev_slot(schedule.cron, schedule.timezone, now + 1e-6)
        schedule.next_slot = slot
        self.engine.timers.add(slot, schedule.id, "cron")

    async def fire(self, schedule_id: str) -> None:
        schedule = self._schedules.get(schedule_id)
        if schedule is None or not schedule.active or schedule.next_slot is None:
            return
        slot = schedule.next_slot
        now = self.engine.clock.now()
        if (schedule.last_slot is not None and slot <= schedule.last_slot) or next_slot(
            schedule.cron, schedule.timezone, slot
        ) <= now:
            self._arm(schedule, now)  # a later slot is already due: fire only the most recent one
            return
        payload = {
            "type": "DECLARATIVE" if schedule.declarative else "IMPERATIVE",
            "scheduleId": schedule.id,
            "timestamp": iso(slot),
            "lastTimestamp": iso(schedule.last_slot),
            "timezone": schedule.timezone,
            "catchUp": slot < now - 60,
            "payload": schedule.payload,
        }
        last_before = schedule.last_slot
        schedule.last_slot = slot

        def record_slot() -> None:
            self.engine.store.execute(
                "UPDATE schedules SET last_slot = ? WHERE id = ?", (slot, schedule.id)
            )

        try:
            options = schedule_options(schedule.options, now)
        except InvalidInput:  # stored by an older version under other rules: fire with none
            options = TriggerOptions()
        options.idempotency_key = f"schedule:{schedule.id}:{slot:.0f}"
        options.tags = [*options.tags, f"schedule:{schedule.id}"]
        try:
            await self._trigger_firing(schedule, payload, options, record_slot)
        except TaskNotFound:
            schedule.last_slot = last_before
            schedule.next_slot = None
            return
        self._arm(schedule, now, startup=False)

    async def _trigger_firing(
        self, schedule: Schedule, payload: dict[str, Any], options: TriggerOptions, record_slot: Callable[[], None]
    ) -> None:
        """Create the firing's run, its slot recorded in the same transaction. A backend whose
        processes all fire the same schedules overrides this so one of them wins each slot
        (PostgreSQL: ``_pg_schedules.py``)."""
        await self.engine.trigger(
            schedule.task_id, payload, options, schedule_id=schedule.id, before_commit=record_slot
        )
