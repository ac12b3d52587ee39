"""REST handlers for tasks, runs, metrics and schedules (Trigger.dev's API shapes)."""

from __future__ import annotations

from typing import Any

from tornado import web

from polaris_jupyter.jobs import (
    MAX_BATCH_ITEMS,
    RunFilter,
    TaskNotFound,
    list_runs,
    options_from_json,
    task_metrics,
)
from polaris_jupyter.jobs._queries import parse_statuses
from polaris_jupyter.server.base import ApiError, PolarisHandler

__all__ = ["RUN_HANDLERS"]


class TasksHandler(PolarisHandler):
    @web.authenticated
    async def get(self) -> None:
        engine = self.runtime.engine
        tasks = [t.to_json(engine.default_retry) for t in sorted(engine.registry.all(), key=lambda t: t.id)]
        self.send_json({"tasks": tasks})


class TriggerHandler(PolarisHandler):
    @web.authenticated
    async def post(self, task_id: str) -> None:
        engine = self.runtime.engine
        body = self.json_body(required=False)
        options = options_from_json(body.get("options"), engine.clock.now())
        handle = await engine.trigger(task_id, body.get("payload"), options)
        self.send_json({"id": handle.id, "isCached": handle.is_cached})


class BatchTriggerHandler(PolarisHandler):
    @web.authenticated
    async def post(self, task_id: str) -> None:
        engine = self.runtime.engine
        if engine.registry.get(task_id) is None:
            raise TaskNotFound(f"no task with id {task_id!r}")
        body = self.json_body()
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise ApiError(400, "items must be a non-empty list of {payload, options} objects")
        if len(items) > MAX_BATCH_ITEMS:
            raise ApiError(400, f"a batch holds at most {MAX_BATCH_ITEMS} items, got {len(items)}")
        now = engine.clock.now()
        parsed = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise ApiError(400, f"items[{index}] must be an object with payload and options")
            try:
                parsed.append((item.get("payload"), options_from_json(item.get("options"), now)))
            except Exception as exc:
                raise ApiError(400, f"items[{index}]: {exc}") from exc
        batch = await engine.batch_trigger(task_id, parsed)
        self.send_json(
            {"batchId": batch.batch_id, "runs": [{"id": h.id, "isCached": h.is_cached} for h in batch.runs]}
        )


class RunsHandler(PolarisHandler):
    @web.authenticated
    async def get(self) -> None:
        engine = self.runtime.engine
        flt = RunFilter(
            statuses=parse_statuses(self.get_query_argument("status", None)),
            task_id=self.get_query_argument("task", None) or None,
            tag=self.get_query_argument("tag", None) or None,
            conversation_id=self.get_query_argument("conversation", None) or None,
            batch_id=self.get_query_argument("batch", None) or None,
        )
        limit = self.query_int("limit", 50, 1, 500)
        page = await list_runs(engine.store, flt, self.get_query_argument("cursor", None) or None, limit)
        self.send_json({"data": [r.to_json() for r in page.data], "nextCursor": page.next_cursor})


class RunHandler(PolarisHandler):
    @web.authenticated
    async def get(self, run_id: str) -> None:
        engine = self.runtime.engine
        run = await engine.get_run(run_id)
        body: dict[str, Any] = run.to_json()
        body["attempts"] = [a.to_json() for a in await engine.store.attempts(run_id)]
        body["logs"] = await engine.store.logs(run_id)
        self.send_json(body)


class CancelHandler(PolarisHandler):
    @web.authenticated
    async def post(self, run_id: str) -> None:
        run = await self.runtime.engine.cancel(run_id)
        self.send_json(run.to_json())


class ReplayHandler(PolarisHandler):
    @web.authenticated
    async def post(self, run_id: str) -> None:
        body = self.json_body(required=False)
        resume = body.get("resume", False)
        if not isinstance(resume, bool):
            raise ApiError(400, "resume must be true or false")
        handle = await self.runtime.engine.replay(run_id, resume=resume)
        self.send_json({"id": handle.id})


class RunEventsHandler(PolarisHandler):
    @web.authenticated
    async def get(self, run_id: str) -> None:
        engine = self.runtime.engine
        await engine.get_run(run_id)  # 404 for unknown ids
        since = self.query_int("since", 0, 0, 2**62)
        limit = self.query_int("limit", 1000, 1, 10_000)
        events = await engine.store.run_events(run_id, since, limit)
        last = events[-1].run_seq if events else since
        self.send_json({"events": [e.to_json() for e in events], "lastSeq": last})


class MetricsHandler(PolarisHandler):
    @web.authenticated
    async def get(self) -> None:
        engine = self.runtime.engine
        task_id = self.get_query_argument("task", None) or None
        window_h = self.query_int("hours", 0, 0, 24 * 365)
        since = engine.clock.now() - window_h * 3600 if window_h else None
        self.send_json(await task_metrics(engine.store, task_id, since))


class SchedulesHandler(PolarisHandler):
    @web.authenticated
    async def get(self) -> None:
        schedules = self.runtime.engine.schedules.list()
        self.send_json({"data": [s.to_json() for s in schedules]})

    @web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        task_id, cron = body.get("task"), body.get("cron")
        if not isinstance(task_id, str) or not isinstance(cron, str):
            raise ApiError(400, "task and cron are required strings")
        timezone = body.get("timezone", "UTC")
        if not isinstance(timezone, str):
            raise ApiError(400, "timezone must be an IANA zone name")
        schedule = await self.runtime.engine.schedules.create(
            task_id, cron, timezone, payload=body.get("payload"), schedule_id=body.get("externalId") or None
        )
        self.send_json(schedule.to_json(), status=201)


class ScheduleHandler(PolarisHandler):
    @web.authenticated
    async def delete(self, schedule_id: str) -> None:
        schedules = self.runtime.engine.schedules
        if schedules.get(schedule_id) is None:
            raise ApiError(404, f"no schedule with id {schedule_id!r}")
        await schedules.delete(schedule_id)
        self.set_status(204)
        self.finish()


_ID = r"([^/]+)"
RUN_HANDLERS: list[tuple[str, type[PolarisHandler]]] = [
    ("/polaris/api/v1/tasks", TasksHandler),
    (f"/polaris/api/v1/tasks/{_ID}/trigger", TriggerHandler),
    (f"/polaris/api/v1/tasks/{_ID}/batch", BatchTriggerHandler),
    ("/polaris/api/v1/runs", RunsHandler),
    (f"/polaris/api/v1/runs/{_ID}", RunHandler),
    (f"/polaris/api/v1/runs/{_ID}/cancel", CancelHandler),
    (f"/polaris/api/v1/runs/{_ID}/replay", ReplayHandler),
    (f"/polaris/api/v1/runs/{_ID}/events", RunEventsHandler),
    ("/polaris/api/v1/metrics", MetricsHandler),
    ("/polaris/api/v1/schedules", SchedulesHandler),
    (f"/polaris/api/v1/schedules/{_ID}", ScheduleHandler),
]
