"""Tasks registered while a process runs (a kernel's, through the kernel-worker socket) on PostgreSQL.

DBOS dequeues only the queues a process named before it launched (``DBOS.listen_queues``), so a
task registered later cannot get a queue of its own that anyone listens to. A Jupyter server
that executes tasks therefore listens, from launch, to one queue of its own,
``polaris.local.<executor id>``; a task registered after start is *local* to that server: its
runs are dispatched to that queue, so they execute only in the process its kernel is connected
to, never on a worker or another server. The executor id is stable (a restarted server takes
its id back), so what was on the queue is dequeued again after a restart.

Only processes that have a task dispatch its runs (timers, sweeps, recovery): another process
never sends a local task's run to a queue nobody listens to. While no kernel defines the task,
its due runs are held with a reason (as on SQLite); when a kernel claims it again,
:meth:`LocalTasks.adopt` dispatches what waited. Not applied to local tasks: a queue's
concurrency limit (one lane per key is a partitioned DBOS queue, fixed at launch). Processes
that do not execute tasks (``execute_tasks=False``) and workers have no local queue: there a
task registered after start is refused at trigger time unless a live worker executes it.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from polaris_jupyter.errors import Unavailable
from polaris_jupyter.jobs._models import Run, RunStatus
from polaris_jupyter.jobs._rows import row_to_run

if TYPE_CHECKING:
    from polaris_jupyter.jobs._pg_engine import PgEngine

__all__ = ["LocalTasks"]

LOCAL_PREFIX = "polaris.local."


class LocalTasks:
    """The tasks registered in one :class:`PgEngine` after it started, and their queue."""

    def __init__(self, engine: PgEngine) -> None:
        self.engine = engine
        #: Tasks registered after start (they stay late when their kernel goes away).
        self.late: set[str] = set()

    @property
    def serves(self) -> bool:
        """Whether this process has a local queue (a Jupyter server that executes tasks)."""
        return self.engine.execute_tasks and self.engine.role == "server"

    @property
    def queue(self) -> str:
        return f"{LOCAL_PREFIX}{self.engine.executor_id}"

    def is_local(self, task_id: str) -> bool:
        return task_id in self.late and self.serves

    def registered(self, task_id: str) -> None:
        """A task was registered; after start, it is late (and its waiting runs are adopted)."""
        if not self.engine._started:
            return
        self.late.add(task_id)
        if self.serves:
            self.engine._own(self.adopt(task_id), f"polaris-adopt-{task_id}")

    async def check_servable(self, task_id: str) -> None:
        """Refuse to trigger a late task nobody can execute, rather than leave a run QUEUED
        that no process will ever dequeue."""
        if task_id not in self.late or self.serves:
            return
        engine = self.engine
        rows = await engine.store.query("SELECT tasks FROM workers WHERE last_seen > ? AND executor_id <> ?",
                                        (time.time() - engine.dead_after_s, engine.executor_id))
        if any(task_id in json.loads(r["tasks"] or "[]") for r in rows):
            return
        raise Unavailable(
            f"task {task_id!r} was defined after this process started (a task defined in a kernel?) and nothing "
            "executes it: on PostgreSQL a task defined in a kernel runs only in a Jupyter server that executes "
            "tasks (execute_tasks), and a worker runs the tasks of its --task-modules. Define it in a module "
            "listed in task_modules or a worker's --task-modules, or enable execute_tasks on this server."
        )

    def held(self, run: Run) -> bool:
        """Whether a due run of a local task must wait (no kernel defines it now): it keeps a reason."""
        absent = self.engine._absent.get(run.task_id)
        if not self.is_local(run.task_id) or absent is None or self.engine.registry.get(run.task_id) is not None:
            return False
        if run.waiting_reason != absent[0]:
            run.waiting_reason = absent[0]
            self.engine.store.execute("UPDATE runs SET waiting_reason = ? WHERE id = ? AND status IN ('QUEUED','DELAYED',"
                                      "'REATTEMPTING')", (absent[0], run.id))
        return True

    async def adopt(self, task_id: str) -> None:
        """A kernel (again) defines ``task_id``: its runs that wait go on here. Queued runs are
        dispatched afresh to this process's queue (a second workflow of a run is refused by the
        claim, so nothing runs twice); due delays and retries get their timers."""
        engine = self.engine
        rows = await engine.store.query(
            "SELECT * FROM runs WHERE task_id = ? AND status IN ('QUEUED','DELAYED','REATTEMPTING') ORDER BY num",
            (task_id,),
        )
        now = engine.clock.now()
        for row in rows:
            run = row_to_run(row)
            if run.waiting_reason is not None:
                run.waiting_reason = None
                engine.store.execute("UPDATE runs SET waiting_reason = NULL WHERE id = ?", (run.id,))
            if run.status is RunStatus.QUEUED:
                engine.dispatcher.dispatch(run, handback=True)
            elif run.status is RunStatus.DELAYED:
                engine.timers.add(run.delay_until or now, run.id, "delay")
            else:
                engine.timers.add(run.next_attempt_at or now, run.id, "retry")
        await engine.store.commit()
