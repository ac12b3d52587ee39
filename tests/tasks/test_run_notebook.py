"""``run-notebook`` with a real kernel: parameters land, outputs are saved, a failing cell is
retried then FAILED with its index, a ``while True`` cell ends TIMED_OUT, cancel mid-run, an
idempotent trigger — and after each, no process of the run is left in the process table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from polaris_jupyter.jobs import Engine, RunStatus, TriggerOptions
from polaris_jupyter.tasks.notebook_procs import ProcessRecord, is_running
from polaris_jupyter.tasks.run_notebook import PROCESSES_CHECKPOINT, RUN_NOTEBOOK_TASK_ID
from tests.tasks.conftest import EngineFactory, read_pid, wait_gone, wait_until, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.asyncio]

#: A cell that records the kernel's pid and a child process it starts (in the kernel's group).
RECORD_PIDS = (
    "import os, subprocess\n"
    "child = subprocess.Popen(['sleep', '600'])\n"
    "open('child.pid', 'w').write(str(child.pid))\n"
    "open('kernel.pid', 'w').write(str(os.getpid()))"
)


async def cell_events(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    await engine.store.flush()
    return [e.data for e in await engine.store.run_events(run_id, 0) if e.type == "notebook.cell"]


def recorded(run_checkpoints: dict[str, Any], key: str) -> ProcessRecord:
    record = ProcessRecord.from_json(run_checkpoints[PROCESSES_CHECKPOINT][key])
    assert record is not None
    return record


async def test_parameters_land_and_outputs_are_saved(make_engine: EngineFactory, workspace: Path) -> None:
    write_notebook(
        workspace,
        "reports/daily.ipynb",
        "print(f'report for {city}: {days * 2} days')",
        "import os; open('kernel.pid', 'w').write(str(os.getpid())); os.getcwd()",
        parameters="city = 'Paris'\ndays = 1",
    )
    engine = await make_engine()
    handle = await engine.trigger(
        RUN_NOTEBOOK_TASK_ID,
        {"path": "reports/daily.ipynb", "parameters": {"city": "Zürich", "days": 21}, "outputs": ["ipynb", "html"]},
    )
    result = await handle.result(timeout_s=120)
    assert result.ok, result.error
    prefix = f".polaris/jobs/{handle.id}"
    assert result.output["outputs"] == {"ipynb": f"{prefix}/daily.ipynb", "html": f"{prefix}/daily.html"}
    executed = nbformat.read(workspace / prefix / "daily.ipynb", as_version=4)
    tags = [cell.metadata.get("tags", []) for cell in executed.cells]
    assert tags[0] == ["parameters"] and tags[1] == ["injected-parameters"]  # injected after the tagged cell
    assert "city = " in executed.cells[1].source and "days = 21" in executed.cells[1].source
    printed = "".join(o.get("text", "") for o in executed.cells[2].outputs)
    assert printed == "report for Zürich: 42 days\n"
    assert str(workspace / "reports") in executed.cells[3].outputs[0]["data"]["text/plain"]  # cwd: the notebook's folder
    html = (workspace / prefix / "daily.html").read_text()
    assert "report for Zürich: 42 days" in html and html.lstrip().lower().startswith("<!doctype html")

    events = await cell_events(engine, handle.id)
    assert [e["index"] for e in events] == [0, 1, 2, 3]
    assert {e["total"] for e in events} == {4} and result.output["cells"] == 4
    assert [e["cellId"] for e in events] == [cell.id for cell in executed.cells]
    assert all(e["status"] == "ok" and e["error"] is None and e["durationMs"] >= 0 for e in events)
    assert result.run.metadata["cell"] == 4 and result.run.metadata["total"] == 4
    assert result.run.metadata["outputs"] == result.output["outputs"]
    # The pid the task recorded is the kernel's, and it is gone with the run.
    kernel = recorded(result.run.checkpoints, "kernel")
    assert kernel.pid == read_pid(workspace / "reports" / "kernel.pid")
    await wait_gone(kernel.pid, recorded(result.run.checkpoints, "runner").pid)


async def test_failing_cell_is_retried_then_failed_with_its_index(make_engine: EngineFactory, workspace: Path) -> None:
    write_notebook(workspace, "fails.ipynb", "x = 1", "print('before')\n1 / 0", "print('never')")
    engine = await make_engine()
    handle = await engine.trigger(RUN_NOTEBOOK_TASK_ID, {"path": "fails.ipynb"}, TriggerOptions(max_attempts=2))
    run = (await handle.result(timeout_s=180)).run
    assert run.status is RunStatus.FAILED and run.attempt_count == 2
    assert run.error is not None and run.error["name"] == "NotebookCellError"
    message = run.error["message"]
    assert message.startswith("cell 1 (id ") and "raised ZeroDivisionError: division by zero" in message
    assert "----> 2 1 / 0" in message  # the traceback tail, without terminal colours
    assert "\x1b[" not in message
    assert [a.status for a in await engine.store.attempts(run.id)] == ["FAILED", "FAILED"]
    assert run.metadata["error"] == {
        "cell": 1, "cellId": run.metadata["error"]["cellId"], "ename": "ZeroDivisionError", "evalue": "division by zero"
    }
    events = await cell_events(engine, run.id)
    assert [(e["attempt"], e["index"], e["status"]) for e in events] == [
        (1, 0, "ok"), (1, 1, "error"), (2, 0, "ok"), (2, 1, "error")
    ]  # the cell after the failing one never runs
    assert events[1]["error"]["ename"] == "ZeroDivisionError"
    assert any("ZeroDivisionError" in line for line in events[1]["error"]["traceback"])
    # The partial executed notebook is saved, with the error output and the unexecuted rest.
    partial = nbformat.read(workspace / run.metadata["outputs"]["ipynb"], as_version=4)
    failing = next(c for c in partial.cells if c.get("source") == "print('before')\n1 / 0")
    assert [o["output_type"] for o in failing.outputs] == ["stream", "error"]
    never = next(c for c in partial.cells if c.get("source") == "print('never')")
    assert never.outputs == [] and never.execution_count is None


async def test_cell_timeout_fails_the_attempt_with_the_cell(make_engine: EngineFactory, workspace: Path) -> None:
    write_notebook(workspace, "slow.ipynb", "x = 1", "import time\ntime.sleep(600)")
    engine = await make_engine()
    handle = await engine.trigger(
        RUN_NOTEBOOK_TASK_ID, {"path": "slow.ipynb", "timeoutS": 2}, TriggerOptions(max_attempts=1)
    )
    run = (await handle.result(timeout_s=120)).run
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error["message"].startswith("cell 1 (id ") and "CellTimeoutError" in run.error["message"]


async def test_a_cell_killing_its_kernel_fails_the_attempt_with_the_cell(
    make_engine: EngineFactory, workspace: Path
) -> None:
    write_notebook(workspace, "dies.ipynb", "x = 1", "import os\nos._exit(3)", "print('never')")
    engine = await make_engine()
    handle = await engine.trigger(RUN_NOTEBOOK_TASK_ID, {"path": "dies.ipynb"}, TriggerOptions(max_attempts=1))
    run = (await handle.result(timeout_s=120)).run
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error["message"].startswith("cell 1 (id ") and "DeadKernelError" in run.error["message"]
    assert run.metadata["error"]["cell"] == 1


async def test_while_true_cell_ends_timed_out_with_the_kernel_gone(make_engine: EngineFactory, workspace: Path) -> None:
    write_notebook(workspace, "spin.ipynb", RECORD_PIDS, "while True:\n    pass")
    engine = await make_engine()
    handle = await engine.trigger(RUN_NOTEBOOK_TASK_ID, {"path": "spin.ipynb"}, TriggerOptions(max_duration_s=15))
    run = (await handle.result(timeout_s=120)).run
    assert run.status is RunStatus.TIMED_OUT, run.error
    kernel, runner = recorded(run.checkpoints, "kernel"), recorded(run.checkpoints, "runner")
    assert kernel.pid == read_pid(workspace / "kernel.pid")
    await wait_gone(kernel.pid, runner.pid, read_pid(workspace / "child.pid"))
    events = await cell_events(engine, run.id)
    assert [e["index"] for e in events] == [0]  # the spinning cell never completed


async def test_cancel_mid_run_kills_the_kernel_and_its_children(make_engine: EngineFactory, workspace: Path) -> None:
    write_notebook(workspace, "long.ipynb", RECORD_PIDS, "import time\ntime.sleep(3600)")
    engine = await make_engine()
    handle = await engine.trigger(RUN_NOTEBOOK_TASK_ID, {"path": "long.ipynb"})
    await wait_until(lambda: (workspace / "kernel.pid").exists() and (workspace / "child.pid").exists(), "the pids")
    kernel_pid, child_pid = read_pid(workspace / "kernel.pid"), read_pid(workspace / "child.pid")
    assert is_running(kernel_pid) and is_running(child_pid)
    for _ in range(1200):  # the second cell (the sleep) has started
        if (await engine.get_run(handle.id)).metadata.get("cell") == 2:
            break
        await asyncio.sleep(0.05)
    run = await engine.cancel(handle.id)
    assert run.status is RunStatus.CANCELED
    runner = recorded(run.checkpoints, "runner")
    await wait_gone(kernel_pid, child_pid, runner.pid)
    assert recorded(run.checkpoints, "kernel").pid == kernel_pid
    assert (workspace / run.metadata["outputs"]["ipynb"]).exists()  # saved up to the cancelled cell


async def test_idempotent_trigger_returns_the_same_run(make_engine: EngineFactory, workspace: Path) -> None:
    write_notebook(workspace, "once.ipynb", "open('ran.txt', 'a').write('x')")
    engine = await make_engine()
    options = TriggerOptions(idempotency_key="nightly-2026-01-31", tags=["nightly"])
    first = await engine.trigger(RUN_NOTEBOOK_TASK_ID, {"path": "once.ipynb"}, options)
    second = await engine.trigger(RUN_NOTEBOOK_TASK_ID, {"path": "once.ipynb"}, options)
    assert second.id == first.id and second.is_cached and not first.is_cached
    assert (await first.result(timeout_s=120)).ok
    third = await engine.trigger(RUN_NOTEBOOK_TASK_ID, {"path": "once.ipynb"}, options)  # completed: still the same
    assert third.id == first.id and third.is_cached
    assert (workspace / "ran.txt").read_text() == "x"
    assert (await engine.get_run(first.id)).tags == ["nightly"]


async def test_next_attempt_kills_what_a_crashed_attempt_left(make_engine: EngineFactory, workspace: Path) -> None:
    """The recovery layer on its own: a checkpoint names a stray process group (as a crashed
    attempt's would); the attempt kills it before starting its own kernel."""
    stray = await asyncio.create_subprocess_exec("sleep", "600", start_new_session=True)
    innocent = await asyncio.create_subprocess_exec("sleep", "600", start_new_session=True)
    try:
        write_notebook(workspace, "quick.ipynb", "1 + 1")
        engine = await make_engine()
        reused = {"pid": innocent.pid, "startTicks": (ProcessRecord.of(innocent.pid).start_ticks or 0) + 1}
        checkpoints = {PROCESSES_CHECKPOINT: {"attempt": 1, "kernel": ProcessRecord.of(stray.pid).to_json(), "runner": reused}}
        handle = await engine.trigger(RUN_NOTEBOOK_TASK_ID, {"path": "quick.ipynb"}, checkpoints=checkpoints)
        assert (await handle.result(timeout_s=120)).ok
        assert await asyncio.wait_for(stray.wait(), 30) == -9
        assert is_running(innocent.pid)  # same pid, another start time: another process, left alone
        logs = [e.data for e in await engine.store.run_events(handle.id, 0) if e.type == "run.log"]
        assert any(e["message"].startswith("killed processes") and e["data"]["pids"] == [stray.pid] for e in logs)
    finally:
        for proc in (stray, innocent):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_bad_payloads_fail_at_once_with_the_reason(make_engine: EngineFactory, workspace: Path) -> None:
    (workspace / "broken.ipynb").write_text("{not json")
    engine = await make_engine()
    handle = await engine.trigger(RUN_NOTEBOOK_TASK_ID, {"path": "../outside.ipynb"})
    run = (await handle.result(timeout_s=30)).run
    assert run.status is RunStatus.FAILED and run.attempt_count == 1  # not retried
    assert run.error is not None and "outside the workspace" in run.error["message"]
    handle = await engine.trigger(RUN_NOTEBOOK_TASK_ID, {"path": "broken.ipynb"})
    run = (await handle.result(timeout_s=30)).run
    assert run.error is not None and "'broken.ipynb' is not a readable notebook" in run.error["message"]
    assert json.loads(json.dumps(run.error))  # plain JSON for the wire
