"""The host of the engine is killed with SIGKILL mid-notebook (a real subprocess host): on
restart the run is retried, and no process of the crashed attempt is left running."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from polaris_jupyter.jobs import RunStatus
from polaris_jupyter.tasks.notebook_procs import ProcessRecord, is_running
from polaris_jupyter.tasks.run_notebook import PROCESSES_CHECKPOINT
from tests.tasks.conftest import EngineFactory, read_pid, wait_gone, wait_until, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.asyncio]
REPO = Path(__file__).resolve().parents[2]

#: Attempt n writes kernel-n.pid and child-n.pid; the first attempt then sleeps until killed.
CELLS = (
    "import os, subprocess, time\n"
    "n = 1 + len([f for f in os.listdir('.') if f.startswith('kernel-')])\n"
    "child = subprocess.Popen(['sleep', '600'])\n"
    "open(f'child-{n}.pid', 'w').write(str(child.pid))\n"
    "open(f'kernel-{n}.pid', 'w').write(str(os.getpid()))",
    "if n == 1:\n    time.sleep(3600)",
)


@pytest_asyncio.fixture
async def host(tmp_path: Path, workspace: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A host process serving one run of ``crash.ipynb``; yields it and the run id."""
    write_notebook(workspace, "crash.ipynb", *CELLS)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.tasks.notebook_host", str(tmp_path / "runs.db"), str(workspace),
        json.dumps({"path": "crash.ipynb"}), cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    try:
        yield proc, json.loads(line)["runId"]
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def stored_processes(db: Path, run_id: str) -> dict[str, ProcessRecord | None]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT checkpoints FROM runs WHERE id = ?", (run_id,)).fetchone()
    records = (json.loads(row[0]) if row and row[0] else {}).get(PROCESSES_CHECKPOINT, {})
    return {key: ProcessRecord.from_json(records.get(key)) for key in ("runner", "kernel")}


async def recover(make_engine: EngineFactory, tmp_path: Path, workspace: Path, run_id: str) -> None:
    engine = await make_engine(db=tmp_path / "runs.db")
    run = await engine.wait_for(run_id, timeout_s=180)
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.attempt_count == 2
    assert [a.status for a in await engine.store.attempts(run_id)] == ["CRASHED", "COMPLETED"]
    assert read_pid(workspace / "kernel-2.pid") != read_pid(workspace / "kernel-1.pid")


async def test_host_killed_mid_notebook_takes_the_kernel_along_and_the_run_is_retried(
    host: tuple[asyncio.subprocess.Process, str], make_engine: EngineFactory, tmp_path: Path, workspace: Path
) -> None:
    proc, run_id = host
    await wait_until(lambda: (workspace / "kernel-1.pid").exists(), "the first attempt's kernel")
    kernel, child = read_pid(workspace / "kernel-1.pid"), read_pid(workspace / "child-1.pid")
    assert is_running(kernel) and is_running(child)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    # Nobody cleans up from the host: the runner (SIGTERM on its parent's death) kills the
    # kernel's group, the kernel's child included.
    await wait_gone(kernel, child)
    await recover(make_engine, tmp_path, workspace, run_id)
    await wait_gone(read_pid(workspace / "kernel-2.pid"), read_pid(workspace / "child-2.pid"))


async def test_what_a_crash_leaves_is_killed_by_the_next_attempt(
    host: tuple[asyncio.subprocess.Process, str], make_engine: EngineFactory, tmp_path: Path, workspace: Path
) -> None:
    """The runner is killed together with the host, so it cannot clean up (as where there is no
    parent-death signal): the kernel's child survives the crash, and the next attempt, reading
    the crashed attempt's processes from its checkpoint, kills it."""
    proc, run_id = host
    await wait_until(lambda: (workspace / "kernel-1.pid").exists(), "the first attempt's kernel")
    await wait_until(lambda: stored_processes(tmp_path / "runs.db", run_id)["kernel"] is not None, "the checkpoint")
    records = stored_processes(tmp_path / "runs.db", run_id)
    assert records["kernel"] is not None and records["kernel"].pid == read_pid(workspace / "kernel-1.pid")
    assert records["runner"] is not None
    child = read_pid(workspace / "child-1.pid")
    proc.send_signal(signal.SIGSTOP)  # the host cannot react to its runner's death
    os.kill(records["runner"].pid, signal.SIGKILL)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    await wait_gone(records["runner"].pid, records["kernel"].pid)  # the kernel died with its runner
    assert is_running(child)  # ... but what the kernel started is an orphan now
    await recover(make_engine, tmp_path, workspace, run_id)
    await wait_gone(child)
