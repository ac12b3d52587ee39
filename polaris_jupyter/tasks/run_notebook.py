"""``run-notebook``: a notebook executed by papermill in a fresh kernel, as a durable run.

Each attempt starts :mod:`~polaris_jupyter.tasks.notebook_runner` in a session of its own; the
runner executes the notebook with papermill (parameters injected after the cell tagged
``parameters``), writes the executed notebook (and its HTML) under ``.polaris/jobs/<run id>/`` and
reports every cell on a pipe that this task reads without blocking the loop. Each cell becomes a
``notebook.cell`` event (index, total, cell id, duration, error) and the run's metadata holds
``{cell, total, outputs}``. A failing cell fails the attempt with the cell index, the error name
and value and the traceback tail (retried per policy; the partial notebook is kept). Retries,
ttl, idempotency, queues, delay, tags and max duration are the engine's, as for any task.

No kernel outlives its run (see :mod:`~polaris_jupyter.tasks.notebook_procs`): cancel and
TIMED_OUT kill the runner's and the kernel's process groups; the processes of every attempt are
a checkpoint, so the attempt that follows a crash of the server kills what the crashed one left.

Wiring (the composition root)::

    register_run_notebook(runtime.engine, runtime.root_dir)

Triggering::

    await engine.trigger("run-notebook", {"path": "reports/daily.ipynb",
                                          "parameters": {"day": "2026-01-31"},
                                          "outputs": ["ipynb", "html"]})
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from polaris_jupyter.jobs import Engine, InvalidInput, QueueDef, RunContext, TaskDef, TaskRegistry
from polaris_jupyter.tasks.notebook_procs import ProcessRecord, kill_group
from polaris_jupyter.tasks.notebook_request import NotebookRequest, parse_request
from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.sandbox import resolve_writable_path

__all__ = [
    "JOBS_FOLDER",
    "RUN_NOTEBOOK_TASK_ID",
    "NotebookCellError",
    "NotebookRunError",
    "RunNotebookSettings",
    "register_run_notebook",
]

RUN_NOTEBOOK_TASK_ID = "run-notebook"
#: Workspace folder holding one folder of outputs per run.
JOBS_FOLDER = ".polaris/jobs"
#: Checkpoint holding the processes of the current attempt (for the attempt after a crash).
PROCESSES_CHECKPOINT = "notebook:processes"
RUNNER_LOG = "runner.log"
_LOG_TAIL_BYTES = 2000
#: Runs the runner with the package importable however this process found it, without
#: changing PYTHONPATH for the kernel (and the notebook's code) the runner starts.
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv.pop(1)); from polaris_jupyter.tasks.notebook_runner import main; sys.exit(main())"


@dataclass(frozen=True)
class RunNotebookSettings:
    """How ``run-notebook`` runs: at most ``concurrency_limit`` notebooks at once (each is a kernel
    process; runs with a concurrency key get a lane each), a default max duration per run, the
    kernel start timeout and the Python that runs papermill."""

    concurrency_limit: int | None = 4
    max_duration_s: float | None = 24 * 3600.0
    start_timeout_s: float = 60.0
    python: str = field(default_factory=lambda: sys.executable)


class NotebookCellError(Exception):
    """A cell raised (or exceeded ``timeoutS``): the message names the cell and the error and
    ends with the traceback tail."""

    def __init__(self, index: int, cell_id: str | None, ename: str, evalue: str, traceback: list[str]) -> None:
        where = f"cell {index}" + (f" (id {cell_id})" if cell_id else "")
        message = f"{where} raised {ename}: {evalue}".rstrip(": ")
        if traceback:
            message += "\n\n" + "\n".join(traceback)
        super().__init__(message)
        self.index, self.cell_id, self.ename, self.evalue, self.traceback = index, cell_id, ename, evalue, traceback


class NotebookRunError(Exception):
    """The notebook could not be run (the kernel died or failed to start, papermill failed)."""


def register_run_notebook(
    target: Engine | TaskRegistry, root_dir: str | Path, settings: RunNotebookSettings | None = None
) -> TaskDef:
    """Register ``run-notebook`` for the workspace ``root_dir`` on an engine (or a registry)."""
    conf = settings or RunNotebookSettings()
    root = Path(root_dir).resolve()

    async def run_notebook(payload: Any, ctx: RunContext) -> dict[str, Any]:
        """Execute a notebook with papermill in a fresh kernel; parameters, ipynb/HTML outputs."""
        request = await asyncio.to_thread(parse_request, root, payload)
        return await NotebookAttempt(ctx, request, root, conf).run()

    async def check_payload(payload: Any) -> None:
        """Refuse at trigger / schedule time what :func:`parse_request` would refuse at run time."""
        await asyncio.to_thread(parse_request, root, payload)

    definition = TaskDef(
        id=RUN_NOTEBOOK_TASK_ID,
        fn=run_notebook,
        queue=QueueDef(RUN_NOTEBOOK_TASK_ID, concurrency_limit=conf.concurrency_limit),
        max_duration_s=conf.max_duration_s,
        description="Execute a notebook with papermill in a fresh kernel; parameters, ipynb/HTML outputs.",
        check_payload=check_payload,
    )
    if isinstance(target, Engine):
        return target.register(definition)
    return target.add(definition)


def _job_paths(root: Path, run_id: str, request: NotebookRequest) -> tuple[Path, dict[str, str]]:
    """The run's output folder (created) and the workspace-relative path of each output."""
    rel_dir = f"{JOBS_FOLDER}/{run_id}"
    try:
        folder = resolve_writable_path(root, rel_dir)
    except ToolError as exc:
        raise InvalidInput(f"cannot write the outputs to {rel_dir}/: {exc}") from None
    folder.mkdir(parents=True, exist_ok=True)
    stem = request.source.stem
    return folder, {fmt: f"{rel_dir}/{stem}.{fmt}" for fmt in request.outputs}


def _open_log(folder: Path, attempt: int) -> IO[bytes]:
    handle = open(folder / RUNNER_LOG, "ab")  # closed by the attempt
    handle.write(f"--- attempt {attempt} ---\n".encode())
    handle.flush()
    return handle


def _log_tail(folder: Path) -> str:
    try:
        with open(folder / RUNNER_LOG, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - _LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _kill_recorded(records: Any) -> list[int]:
    """Kill the process groups a previous attempt recorded (if still theirs); blocking."""
    killed = []
    for key in ("kernel", "runner"):
        record = ProcessRecord.from_json(records.get(key)) if isinstance(records, dict) else None
        if record is not None and kill_group(record):
            killed.append(record.pid)
    return killed


class NotebookAttempt:
    """One attempt of a ``run-notebook`` run: the runner process and its progress stream."""

    def __init__(self, ctx: RunContext, request: NotebookRequest, root: Path, settings: RunNotebookSettings) -> None:
        self.ctx = ctx
        self.request = request
        self.root = root
        self.settings = settings
        self.runner: ProcessRecord | None = None
        self.kernel: ProcessRecord | None = None
        self.total = 0
        self.final: dict[str, Any] | None = None

    async def run(self) -> dict[str, Any]:
        ctx, request = self.ctx, self.request
        left = await asyncio.to_thread(_kill_recorded, ctx.checkpoint(PROCESSES_CHECKPOINT))
        if left:
            ctx.logger.warn("killed processes a previous attempt left running", data={"pids": left})
        folder, outputs = await asyncio.to_thread(_job_paths, self.root, ctx.run_id, request)
        ctx.metadata.set("outputs", outputs)
        if ctx.metadata.get("error") is not None:  # left by a failed earlier attempt
            ctx.metadata.remove("error")
        if request.parameters and not request.has_parameters_cell:
            ctx.logger.warn("the notebook has no cell tagged 'parameters'; papermill injects them at the top")
        ctx.logger.info(f"executing {request.path} with kernel {request.kernel}", data={"outputs": outputs})
        started = time.monotonic()
        log = await asyncio.to_thread(_open_log, folder, ctx.attempt)
        try:
            await self._execute(folder, outputs, log)
        finally:
            log.close()
        duration_ms = round((time.monotonic() - started) * 1000, 3)
        return {"path": request.path, "kernel": request.kernel, "outputs": outputs, "cells": self.total,
                "durationMs": duration_ms}

    async def _execute(self, folder: Path, outputs: dict[str, str], log: IO[bytes]) -> None:
        job = {
            "input": str(self.request.source),
            "outputs": {fmt: str(self.root / rel) for fmt, rel in outputs.items()},
            "parameters": self.request.parameters,
            "kernel": self.request.kernel,
            "cwd": str(self.request.cwd),
            "cellTimeoutS": self.request.cell_timeout_s,
            "startTimeoutS": self.settings.start_timeout_s,
            "parentPid": os.getpid(),
        }
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                self.settings.python, "-c", _BOOTSTRAP, _PACKAGE_PARENT, str(write_fd),
                stdin=asyncio.subprocess.PIPE, stdout=log, stderr=log, pass_fds=(write_fd,),
                start_new_session=True, cwd=str(self.request.cwd),
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.runner = ProcessRecord.of(proc.pid)
        reader = asyncio.StreamReader(limit=1 << 22)
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport: asyncio.BaseTransport | None = None
        try:
            transport, _ = await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
            await self._save_processes()
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(json.dumps(job).encode())
                await proc.stdin.drain()
                proc.stdin.close()
            while line := await reader.readline():
                await self._on_line(line)
            code = await proc.wait()
        finally:
            if transport is not None:
                transport.close()
            else:
                pipe.close()
            await self._stop(proc)
        await self._outcome(code, folder)

    async def _on_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            event = message.pop("event")
        except (ValueError, KeyError, AttributeError):
            self.ctx.logger.warn("unreadable progress line from the notebook runner", data={"line": line[:200].decode("utf-8", "replace")})
            return
        if event == "kernel":
            self.kernel = ProcessRecord.from_json(message)
            await self._save_processes()
            self.ctx.logger.info(f"kernel {self.request.kernel} started (pid {message.get('pid')})")
        elif event == "start":
            self.total = int(message.get("total") or 0)
            self.ctx.metadata.set("total", self.total)
            self.ctx.metadata.set("cell", 0)
        elif event == "cell.start":
            self.ctx.metadata.set("cell", int(message.get("index", -1)) + 1)
        elif event == "cell.end":
            self.ctx.emit("notebook.cell", {"total": self.total, "attempt": self.ctx.attempt, **message})
        else:
            self.final = {"event": event, **message}

    async def _save_processes(self) -> None:
        records: dict[str, Any] = {"attempt": self.ctx.attempt}
        if self.runner is not None:
            records["runner"] = self.runner.to_json()
        if self.kernel is not None:
            records["kernel"] = self.kernel.to_json()
        await self.ctx.save_checkpoint(PROCESSES_CHECKPOINT, records)

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        """Kill what is still running (cancel, TIMED_OUT, a runner that died): the kernel's group
        first (its parent, the runner, is alive, so the pid cannot have been reused), then the
        runner's, then reap the runner."""
        if proc.returncode is None or self.final is None:
            if self.kernel is not None:
                kill_group(self.kernel)
            if proc.returncode is None and self.runner is not None:
                kill_group(self.runner, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()

    async def _outcome(self, code: int, folder: Path) -> None:
        final = self.final or {}
        if final.get("event") == "done" and code == 0:
            return
        if final.get("event") == "failed":
            index = int(final.get("index", -1))
            error = {"cell": index, "cellId": final.get("cellId"), "ename": final.get("ename"), "evalue": final.get("evalue")}
            self.ctx.metadata.set("error", error)
            raise NotebookCellError(index, final.get("cellId"), str(final.get("ename") or "Error"),
                                    str(final.get("evalue") or ""), list(final.get("traceback") or []))
        if final.get("event") == "crash":
            raise NotebookRunError(f"{final.get('name')}: {final.get('message')}")
        tail = await asyncio.to_thread(_log_tail, folder)
        raise NotebookRunError(f"the notebook runner exited with code {code}" + (f":\n{tail}" if tail else ""))
