"""Kernel-defined tasks on PostgreSQL: a real ``jupyter server`` on a PostgreSQL schema, a kernel's
task bridge connected to it. The kernel-task suite of the embedded engine
(tests/kernel/test_kernel_tasks.py) runs unchanged against it: runs execute in the kernel
through the server that kernel is connected to (its own DBOS queue, ``jobs/_pg_local.py``),
retries, cancel, children, and runs that wait while no kernel defines the task and go on when
one claims it again. A worker on the same schema never takes such a run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from polaris_jupyter.kernel import disconnect
from tests.kernel.test_kernel_tasks import (
    KernelTasks,
    attach,
    rest_trigger,
    start_live,
    test_a_kernel_task_triggers_children_like_a_server_task,  # noqa: F401  (collected here, on this live server)
    test_kernel_tasks_run_in_the_kernel,  # noqa: F401
    test_runs_wait_while_no_kernel_defines_the_task,  # noqa: F401
)
from tests.live_server import LiveServer
from tests.pg.processes import Workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str, pg_schema: str) -> Iterator[LiveServer]:
    server = start_live(tmp_path, monkeypatch, tmp_path / "unused.db", f"--PolarisConfig.database_url={pg_url}",
                        f"--PolarisConfig.database_schema={pg_schema}")
    yield server
    server.stop()


def test_a_worker_on_the_schema_never_takes_a_kernel_run(live: LiveServer, pg_url: str, pg_schema: str,
                                                         tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    workers = Workers(pg_url, pg_schema, markers)
    client = attach(live, KernelTasks())
    try:
        [worker] = workers.start(1)
        client.serve_tasks()
        run_ids = [rest_trigger(live, "kb-echo", {"n": n}) for n in range(8)]
        for run_id in run_ids:
            assert live.wait_run(run_id, {"COMPLETED", "FAILED"})["status"] == "COMPLETED"
        with psycopg.connect(pg_url) as conn:
            owners = {row[0] for row in conn.execute(
                f'SELECT executor_id FROM "{pg_schema}".runs WHERE id = ANY(%s)', (run_ids,))}
        assert len(owners) == 1 and workers.executor_id(worker) not in owners and "-server-" in owners.pop()
    finally:
        disconnect()
        workers.stop()
