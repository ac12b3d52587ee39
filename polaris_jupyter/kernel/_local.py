"""The in-kernel backend: hosts a :class:`PolarisRuntime` (engine, chat, generation) in this process.

Used where no server extension is reachable (plain IPython, VS Code, nbclient, CI). Same tasks,
same semantics, same SQLite store format as the server. The kernel keeps its own database file
(``<jupyter data dir>/polaris/kernel.db`` unless ``POLARIS_DB_PATH`` says otherwise) and holds
an exclusive lock on it, because two engines must never drive one store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from polaris_jupyter.jobs import (
    EngineError,
    EventFilter,
    RunFilter,
    SubscriberLagging,
    list_runs,
    options_from_json,
)
from polaris_jupyter.kernel._base import Backend, PolarisError

__all__ = ["LocalBackend", "default_kernel_db_path"]


def default_kernel_db_path() -> Path:
    """Where an in-kernel engine keeps its runs (never the server's file while a server is around)."""
    explicit = os.environ.get("POLARIS_DB_PATH")
    if explicit and not os.environ.get("POLARIS_URL"):
        return Path(explicit)
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "polaris" / "kernel.db"


def _engine_error(exc: EngineError) -> PolarisError:
    return PolarisError(str(exc), exc.http_status)


class LocalBackend(Backend):
    """Polaris hosted in this kernel (runs on the kernel's Polaris loop thread)."""

    mode = "local"

    def __init__(self, *, root_dir: str | Path | None = None, db_path: str | Path | None = None) -> None:
        self.root_dir = Path(root_dir or os.getcwd()).resolve()
        self.requested_db_path = Path(db_path) if db_path else None
        self.db_path: Path | None = None
        self.runtime: Any = None
        self._lock_file: IO[str] | None = None

    @property
    def description(self) -> str:
        return f"engine in this kernel (workspace {self.root_dir}, db {self.db_path})"

    def _claim_db(self) -> Path:
        wanted = (self.requested_db_path or default_kernel_db_path()).expanduser().resolve()
        candidates = [wanted, wanted.with_name(f"{wanted.stem}-{os.getpid()}{wanted.suffix}")]
        for path in candidates:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path.with_name(path.name + ".lock"), "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            self._lock_file = handle
            return path
        raise PolarisError(f"the Polaris database {wanted} is in use by another process", 409)

    async def start(self) -> None:
        if self.runtime is not None:
            return
        from polaris_jupyter.config import PolarisConfig
        from polaris_jupyter.runtime import PolarisRuntime

        self.db_path = self._claim_db()
        config = PolarisConfig()
        config.db_path = str(self.db_path)
        runtime = PolarisRuntime(config, root_dir=self.root_dir)
        try:
            await runtime.start()
        except BaseException:
            self._release_lock()
            raise
        self.runtime = runtime

    async def close(self) -> None:
        if self.runtime is not None:
            runtime, self.runtime = self.runtime, None
            await runtime.stop()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    @property
    def engine(self) -> Any:
        if self.runtime is None:
            raise PolarisError("the in-kernel Polaris engine is not running", 503)
        return self.runtime.engine

    @property
    def chat(self) -> Any:
        service = self.runtime.services.get("chat") if self.runtime is not None else None
        if service is None:
            raise PolarisError("chat is not available in this kernel", 503)
        return service

    # -- events ---------------------------------------------------------------------------------
    async def last_event_seq(self) -> int:
        return int(self.engine.bus.last_seq)

    async def events(
        self, *, conversation_id: str | None = None, run_id: str | None = None, since: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        bus = self.engine.bus
        last = since if since is not None else bus.last_seq
        flt = EventFilter(run_id=run_id, conversation_id=conversation_id)
        while True:
            try:
                async for event in bus.subscribe(flt, last):
                    last = event.seq
                    yield event.to_json()
            except SubscriberLagging:
                continue  # resume from the last event we yielded

    # -- tasks, runs, schedules -------------------------------------------------------------------
    async def tasks(self) -> list[dict[str, Any]]:
        engine = self.engine
        return [t.to_json(engine.default_retry) for t in sorted(engine.registry.all(), key=lambda t: t.id)]

    async def trigger(self, task_id: str, payload: Any = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
        engine = self.engine
        try:
            handle = await engine.trigger(task_id, payload, options_from_json(options, engine.clock.now()))
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return {"id": handle.id, "isCached": handle.is_cached}

    async def batch_trigger(self, task_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        engine = self.engine
        now = engine.clock.now()
        try:
            parsed = [(item.get("payload"), options_from_json(item.get("options"), now)) for item in items]
            batch = await engine.batch_trigger(task_id, parsed)
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return {"batchId": batch.batch_id, "runs": [{"id": h.id, "isCached": h.is_cached} for h in batch.runs]}

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
        from polaris_jupyter.jobs._queries import parse_statuses

        try:
            flt = RunFilter(statuses=parse_statuses(status), task_id=task or None, tag=tag or None, conversation_id=conversation or None)
            page = await list_runs(self.engine.store, flt, cursor or None, max(1, min(500, int(limit))))
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return {"data": [r.to_json() for r in page.data], "nextCursor": page.next_cursor}

    async def run(self, run_id: str) -> dict[str, Any]:
        engine = self.engine
        try:
            run = await engine.get_run(run_id)
        except EngineError as exc:
            raise _engine_error(exc) from exc
        body: dict[str, Any] = run.to_json()
        body["attempts"] = [a.to_json() for a in await engine.store.attempts(run_id)]
        body["logs"] = await engine.store.logs(run_id)
        return body

    async def cancel_run(self, run_id: str) -> dict[str, Any]:
        try:
            return dict((await self.engine.cancel(run_id)).to_json())
        except EngineError as exc:
            raise _engine_error(exc) from exc

    async def replay_run(self, run_id: str, resume: bool = False) -> dict[str, Any]:
        try:
            handle = await self.engine.replay(run_id, resume=resume)
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return {"id": handle.id}

    async def revert_run(self, run_id: str, force: bool = False) -> dict[str, Any]:
        try:
            return {"reverted": await self.chat.revert_run(run_id, force=force)}
        except EngineError as exc:
            raise _engine_error(exc) from exc

    async def run_events(self, run_id: str, since: int = 0) -> dict[str, Any]:
        await self.run(run_id)
        events = await self.engine.store.run_events(run_id, since, 10_000)
        return {"events": [e.to_json() for e in events], "lastSeq": events[-1].run_seq if events else since}

    async def schedules(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.engine.schedules.list()]

    async def create_schedule(
        self, task_id: str, cron: str, timezone: str = "UTC", payload: Any = None, external_id: str | None = None
    ) -> dict[str, Any]:
        try:
            schedule = await self.engine.schedules.create(task_id, cron, timezone, payload=payload, schedule_id=external_id)
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return dict(schedule.to_json())

    async def delete_schedule(self, schedule_id: str) -> None:
        schedules = self.engine.schedules
        if schedules.get(schedule_id) is None:
            raise PolarisError(f"no schedule with id {schedule_id!r}", 404)
        await schedules.delete(schedule_id)

    # -- chat ------------------------------------------------------------------------------------
    async def conversations(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in await self.chat.store.list_conversations()]

    async def create_conversation(self, title: str | None = None) -> dict[str, Any]:
        return dict((await self.chat.create_conversation(title)).to_json())

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        try:
            return dict((await self.chat.conversation(conversation_id)).to_json())
        except EngineError as exc:
            raise _engine_error(exc) from exc

    async def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        await self.conversation(conversation_id)
        return await self.chat.messages_json(conversation_id)

    async def post_message(
        self, conversation_id: str, content: str, context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        try:
            message, run_id = await self.chat.post_message(conversation_id, content, context)
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return {"messageId": message.id, "runId": run_id}

    async def cancel_message(self, message_id: str) -> dict[str, Any]:
        try:
            return dict((await self.chat.cancel_message(message_id)).to_json())
        except EngineError as exc:
            raise _engine_error(exc) from exc

    async def retry_message(self, message_id: str) -> dict[str, Any]:
        try:
            message, run_id = await self.chat.retry_message(message_id)
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return {"messageId": message.id, "runId": run_id}

    # -- config and generation ------------------------------------------------------------------
    async def config(self) -> dict[str, Any]:
        return await self.chat.config_snapshot()

    async def set_model(self, provider: str | None = None, model: str | None = None) -> dict[str, Any]:
        if provider is None and model is None:
            raise PolarisError("give a provider, a model, or both")
        try:
            await self.chat.set_model(provider, model)
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return await self.config()

    def _generation(self) -> Any:
        try:
            import polaris_jupyter.tasks.generate as generate
        except ModuleNotFoundError as exc:
            raise PolarisError("project generation is not available in this version of polaris-jupyter", 501) from exc
        return generate

    async def project_kinds(self) -> list[dict[str, Any]]:
        self._generation()
        from polaris_jupyter.tasks.project_kinds import project_kinds

        return [kind.to_json() for kind in project_kinds()]

    async def generate(self, description: str, kind: str, path: str, overwrite: bool = False) -> dict[str, Any]:
        generate = self._generation()
        try:
            run_id = await generate.start_generation(self.runtime, description, kind=kind, path=path, overwrite=overwrite)
        except EngineError as exc:
            raise _engine_error(exc) from exc
        return {"runId": run_id}
