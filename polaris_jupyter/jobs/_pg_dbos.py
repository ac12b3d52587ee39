"""DBOS as the scale-out engine's dispatcher: one generic workflow, one DBOS queue per queue.

A run is dispatched by enqueueing the workflow ``polaris.run(run_id)`` on a DBOS queue with the
workflow id ``<run id>.<attempt>``, inside the store's transaction that writes the run
(``DBOSClient.enqueue_in_transaction`` on the store's writer connection, ``_pg_store.py``):
enqueueing the same id twice is a no-op (DBOS keeps the existing workflow), so timers and
sweeps in several processes may all dispatch a due run. A run suspended at a wait point
(WAITING) ends its workflow; its resume, a row-locked compare-and-set in any process, enqueues
a continuation ``<run id>.<attempt>.w<token>`` in the same transaction. DBOS
gives durable queueing, global and per-partition concurrency (a queue with a limit is
partitioned by concurrency key: one lane per key, as in the embedded engine), per-executor
concurrency, cancel of queued work, and executor recovery: a dead executor's PENDING workflows
are put back on their queue with the public ``resume_workflow``, and DBOS re-runs a restarted
executor's own. The workflow itself only hands the run to this process's engine, on the
engine's event loop; attempts, retries, ttl and statuses are the engine's (``_pg_engine.py``).

Queue names: a task on the default queue (no limit) gets a DBOS queue of its own
(``polaris.task.<id>``) so a worker only dequeues tasks it has; a named queue
(``polaris.queue.<name>``) must be served by processes that have every task naming it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, EnqueueOptions

from polaris_jupyter.jobs._models import Run

if TYPE_CHECKING:
    from polaris_jupyter.jobs._pg_engine import PgEngine

__all__ = ["WORKFLOW_NAME", "DbosDispatcher", "dbos_queue_name"]

WORKFLOW_NAME = "polaris.run"
#: The DBOS application name of every polaris-jupyter process (workflows are owned by it).
APP_NAME = "polaris-jupyter"
log = logging.getLogger("polaris_jupyter.jobs.pg")
#: The one engine of this process that DBOS hands runs to (DBOS itself is a process singleton).
_engine: PgEngine | None = None


@DBOS.workflow(name=WORKFLOW_NAME)
async def polaris_run(run_id: str) -> str:
    """Execute (one attempt of) ``run_id`` on this process's engine; returns what happened."""
    engine = _engine
    if engine is None or engine.loop is None:
        raise RuntimeError("no polaris-jupyter engine runs in this process")
    future = asyncio.run_coroutine_threadsafe(engine.execute_dispatched(run_id), engine.loop)
    return await asyncio.wrap_future(future)


def dbos_queue_name(queue: str, task_id: str) -> str:
    return f"polaris.task.{task_id}" if queue == "default" else f"polaris.queue.{queue}"


def workflow_id(run: Run, *, handback: bool = False) -> str:
    """``<run>.<attempt about to start>``; a hand-back (graceful stop) gets a fresh suffix."""
    base = f"{run.id}.{run.attempt_count + 1}"
    return f"{base}.h{secrets.token_hex(4)}" if handback else base


class DbosDispatcher:
    """Launches DBOS for one engine and enqueues, cancels and recovers its workflows."""

    def __init__(
        self, engine: PgEngine, *, url: str, system_schema: str, app_version: str, poll_s: float
    ) -> None:
        self.engine = engine
        self.url = url
        self.system_schema = system_schema
        self.app_version = app_version
        self.poll_s = poll_s
        self._queues: set[str] = set()
        self._launched = False
        self._client: DBOSClient | None = None

    @property
    def can_enqueue(self) -> bool:
        """The client is there (launched and not destroyed): runs can be enqueued from here."""
        return self._client is not None

    def _limit(self, queue: str) -> int | None:
        return self.engine.registry.queue(queue).concurrency_limit

    def listened_queues(self) -> list[str]:
        """The DBOS queues of this process's tasks (none when it does not execute tasks)."""
        if not self.engine.execute_tasks:
            return []
        local = [self.engine.local.queue] if self.engine.local.serves else []
        return sorted({dbos_queue_name(t.queue.name, t.id) for t in self.engine.registry.all()}) + local

    async def launch(self) -> None:
        global _engine
        if _engine is not None and _engine is not self.engine:
            raise RuntimeError("a PostgreSQL engine already runs in this process (DBOS is one per process)")
        _engine = self.engine
        config: Any = {
            "name": APP_NAME,
            "system_database_url": self.url,
            "dbos_system_schema": self.system_schema,
            "executor_id": self.engine.executor_id,
            "application_version": self.app_version,
            "log_level": "WARNING",
            "sys_db_pool_size": 20,
            # No "SELECT 1" before every checkout (DBOS checks out a connection several times per
            # workflow): a connection the server dropped fails its statement, SQLAlchemy discards
            # the pool's stale connections and DBOS retries connection errors (its db_retry).
            "db_engine_kwargs": {"pool_pre_ping": False},
            "notification_listener_polling_interval_sec": 0.1,
        }
        listened = self.listened_queues()

        def start() -> None:
            DBOS(config=config)
            DBOS.listen_queues(listened)
            DBOS.launch()

        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            try:
                await loop.run_in_executor(pool, start)
            except BaseException:
                await loop.run_in_executor(pool, DBOS.destroy)
                _engine = None
                raise
        self._launched = True
        store = self.engine.store
        self._client = DBOSClient(system_database_engine=store.sa_engine, dbos_system_schema=self.system_schema,
                                  application_name=APP_NAME, lazy=True)
        store.enqueuer = self._enqueue_in
        for task in self.engine.registry.all():  # every queue known before the first trigger
            name = dbos_queue_name(task.queue.name, task.id)
            await self.ensure_queue(task.queue.name, task.id, executing=name in listened)
        if self.engine.local.serves:  # tasks registered after start (_pg_local.py)
            await DBOS.register_queue_async(self.engine.local.queue, worker_concurrency=self.engine.pool_size,
                                            polling_interval_sec=self.poll_s, on_conflict="always_update")
            self._queues.add(self.engine.local.queue)

    async def stop_dequeuing(self) -> None:
        """Destroy this process's DBOS (no more workflows are dequeued here), keeping the
        client: runs can still be enqueued (the hand-back of a graceful stop) until :meth:`destroy`."""
        global _engine
        if self._launched:
            loop = asyncio.get_running_loop()
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                await loop.run_in_executor(pool, DBOS.destroy)
            # DBOS made its own executor this loop's default and shut it down: give one back.
            loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio"))
            self._launched = False
        if _engine is self.engine:
            _engine = None

    async def destroy(self) -> None:
        """Stop dequeuing and drop the client: nothing is enqueued from this process any more."""
        await self.stop_dequeuing()
        self.engine.store.enqueuer = None
        self._client = None  # its engine is the store's: nothing of its own to close

    async def ensure_queue(self, queue: str, task_id: str, *, executing: bool = False) -> str:
        """Register the DBOS queue of ``queue``/``task_id`` once; executing processes set its
        limits, others only create it when missing."""
        if self.engine.local.is_local(task_id):
            return self.engine.local.queue
        name = dbos_queue_name(queue, task_id)
        if name in self._queues:
            return name
        limit = self._limit(queue)
        await DBOS.register_queue_async(
            name,
            worker_concurrency=self.engine.pool_size,
            partition_concurrency=limit,
            polling_interval_sec=self.poll_s,
            on_conflict="always_update" if executing else "never_update",
        )
        self._queues.add(name)
        return name

    def queue_of(self, run: Run) -> str:
        """The DBOS queue of the run: its task's, or this process's own for a task registered
        after start (``_pg_local.py``)."""
        if self.engine.local.is_local(run.task_id):
            return self.engine.local.queue
        return dbos_queue_name(run.queue, run.task_id)

    def has_queue(self, run: Run) -> bool:
        """Whether the run's DBOS queue is registered (then :meth:`dispatch` needs no await)."""
        return self.queue_of(run) in self._queues

    def _options(self, run: Run, wf_id: str) -> EnqueueOptions:
        queue_name = self.queue_of(run)
        options: EnqueueOptions = {
            "workflow_name": WORKFLOW_NAME,
            "queue_name": queue_name,
            "workflow_id": wf_id,
            "app_version": self.app_version,
        }
        if self._limit(run.queue) is not None and queue_name == dbos_queue_name(run.queue, run.task_id):
            options["queue_partition_key"] = f"k:{run.concurrency_key or ''}"
        return options

    def dispatch(self, run: Run, *, handback: bool = False) -> None:
        """Enqueue the run's next attempt in the store's next commit (its queue is registered)."""
        self.engine.store.dispatch(self._options(run, workflow_id(run, handback=handback)), run.id)

    def enqueue_continuation(self, run: Run) -> None:
        """Enqueue the continuation of a released WAITING run (the same attempt) in the write
        transaction running now (writer thread): ``<run>.<attempt>.w<token>``, a fresh id per
        resume, since one attempt may wait and go on several times."""
        wf_id = f"{run.id}.{run.attempt_count}.w{secrets.token_hex(4)}"
        self.engine.store.enqueue_now(self._options(run, wf_id), run.id)

    async def enqueue(self, run: Run, *, handback: bool = False) -> None:
        """Register the run's queue if needed, dispatch it, and commit."""
        await self.ensure_queue(run.queue, run.task_id)
        self.dispatch(run, handback=handback)
        await self.engine.store.commit()

    def _enqueue_in(self, conn: sa.Connection, items: Sequence[tuple[EnqueueOptions, str]]) -> None:
        """The store's enqueuer (writer thread, inside the batch's transaction)."""
        client = self._client
        if client is None:
            raise RuntimeError("DBOS is not launched in this process: runs cannot be enqueued")
        for options, run_id in items:
            client.enqueue_in_transaction(conn, options, run_id)

    async def cancel(self, run: Run) -> None:
        """Drop the run's waiting workflow from its DBOS queue (best effort: a workflow that is
        dequeued anyway finds the run final and does nothing)."""
        with contextlib.suppress(Exception):
            await DBOS.cancel_workflow_async(workflow_id(run))

    async def recover(self, executor_id: str) -> int:
        """Put the PENDING workflows of the dead ``executor_id`` back on their queues."""
        pending = await DBOS.list_workflows_async(
            status="PENDING", executor_id=executor_id, load_input=False, load_output=False
        )
        for status in pending:
            await DBOS.resume_workflow_async(status.workflow_id, queue_name=status.queue_name)
        if pending:
            log.warning("executor %s is gone: %d of its runs go back to the queue", executor_id, len(pending))
        return len(pending)
