"""The process that executes one notebook for ``run-notebook``: papermill plus progress lines.

Started by the task as ``python -m polaris_jupyter.tasks.notebook_runner <fd>`` in a session of
its own; it reads its job (JSON) from stdin and writes one JSON object per line to file
descriptor ``fd`` (never to stdout, where the kernel's own low-level output may land):

- ``{"event": "kernel", "pid", "startTicks"}`` once the kernel process exists;
- ``{"event": "start", "total"}`` when papermill begins (``total`` counts the injected cell);
- ``{"event": "cell.start", "index", "cellId", "cellType"}`` and ``{"event": "cell.end", ...
  "durationMs", "status", "executionCount", "error"}`` around every cell;
- one final line: ``done`` (with ``outputs``), ``failed`` (a cell raised or timed out: ``index``,
  ``cellId``, ``ename``, ``evalue``, ``traceback``) or ``crash`` (anything else).

It asks for SIGTERM when its parent dies and then kills the kernel's process group, and its
kernel is started with SIGKILL-on-parent-death, so neither outlives a killed Jupyter server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from typing import IO, Any

from polaris_jupyter.tasks.notebook_procs import ProcessRecord, die_with_parent, kill_group, pdeathsig_preexec

__all__ = ["main"]

#: Lines of a cell's traceback kept in events and errors (the end is where the cause is).
TRACEBACK_TAIL_LINES = 25
TRACEBACK_TAIL_CHARS = 4000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

_channel: IO[str] | None = None
_kernel: ProcessRecord | None = None


def emit(event: str, **data: Any) -> None:
    """Write one progress line to the task (flushed at once: it is read live)."""
    if _channel is None:
        return
    _channel.write(json.dumps({"event": event, **data}, default=str) + "\n")
    _channel.flush()


def traceback_tail(lines: Any) -> list[str]:
    """The last lines of a kernel traceback, without terminal colours, bounded in size."""
    text = _ANSI.sub("", "\n".join(str(line) for line in (lines or [])))
    tail = text.splitlines()[-TRACEBACK_TAIL_LINES:]
    while tail and sum(len(line) + 1 for line in tail) > TRACEBACK_TAIL_CHARS:
        tail = tail[1:]
    return tail


def cell_error(cell: Any) -> dict[str, Any] | None:
    """The error output of an executed cell (``SystemExit(0)`` is not an error), or None."""
    for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
        if output.get("output_type") != "error":
            continue
        if output.get("ename") == "SystemExit" and str(output.get("evalue", "")) in ("", "0"):
            continue
        return {
            "ename": str(output.get("ename", "Error")),
            "evalue": str(output.get("evalue", "")),
            "traceback": traceback_tail(output.get("traceback")),
        }
    return None


def _build_engine() -> Any:
    """A papermill engine whose execution manager reports every cell (imported lazily: the
    signal handlers must be in place before the slow imports)."""
    from jupyter_client.manager import AsyncKernelManager
    from papermill.engines import NBClientEngine, NotebookExecutionManager

    class ReportingKernelManager(AsyncKernelManager):  # type: ignore[misc]
        """Starts the kernel with SIGKILL-on-parent-death and reports its pid."""

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            global _kernel
            preexec = pdeathsig_preexec(signal.SIGKILL)
            if preexec is not None:
                kw["preexec_fn"] = preexec
            await super()._async_launch_kernel(kernel_cmd, **kw)
            pid = getattr(self.provisioner, "pid", None)
            if isinstance(pid, int):
                _kernel = ProcessRecord.of(pid)
                emit("kernel", **_kernel.to_json())

    class ReportingManager(NotebookExecutionManager):  # type: ignore[misc]
        started_at: dict[int, float]
        current_index: int = -1
        current_id: str | None = None

        def notebook_start(self, **kwargs: Any) -> None:
            super().notebook_start(**kwargs)
            self.started_at = {}
            emit("start", total=len(self.nb.cells))

        def cell_start(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
            index = -1 if cell_index is None else cell_index
            self.current_index, self.current_id = index, cell.get("id")
            self.started_at[index] = time.monotonic()
            emit("cell.start", index=index, cellId=cell.get("id"), cellType=cell.get("cell_type"))
            super().cell_start(cell, cell_index, **kwargs)

        def cell_complete(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
            super().cell_complete(cell, cell_index, **kwargs)
            index = -1 if cell_index is None else cell_index
            began = self.started_at.get(index, time.monotonic())
            error = cell_error(cell)
            emit(
                "cell.end",
                index=index,
                cellId=cell.get("id"),
                cellType=cell.get("cell_type"),
                durationMs=round((time.monotonic() - began) * 1000, 3),
                status="error" if error else "ok",
                executionCount=cell.get("execution_count"),
                error=error,
            )

    class ReportingEngine(NBClientEngine):  # type: ignore[misc]
        """papermill's nbclient engine with :class:`ReportingManager` as execution manager."""

        manager: ReportingManager | None = None

        @classmethod
        def execute_notebook(cls, nb: Any, kernel_name: str, output_path: Any = None, progress_bar: bool = False,
                             log_output: bool = False, autosave_cell_every: int = 30, **kwargs: Any) -> Any:
            manager = ReportingManager(nb, output_path=output_path, progress_bar=False, log_output=log_output,
                                       autosave_cell_every=autosave_cell_every)
            cls.manager = manager
            manager.notebook_start()
            try:
                kwargs.setdefault("kernel_manager_class", ReportingKernelManager)
                cls.execute_managed_notebook(manager, kernel_name, log_output=log_output, **kwargs)
            finally:
                manager.notebook_complete()
            return manager.nb

    return ReportingEngine


def _escape_braces(path: str) -> str:
    """papermill formats paths with the parameters (``out_{x}.ipynb``); ours are literal."""
    return path.replace("{", "{{").replace("}", "}}")


def _export_html(ipynb_path: str, html_path: str) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(ipynb_path, as_version=4))
    with open(html_path, "w", encoding="utf-8") as handle:
        handle.write(body)


def run(job: dict[str, Any]) -> int:
    """Execute the notebook described by ``job``; the exit code says how it ended."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    engine = _build_engine()
    papermill_engines.register("polaris-reporting", engine)
    outputs: dict[str, str] = job["outputs"]
    failure: dict[str, Any] | None = None
    try:
        papermill.execute_notebook(
            _escape_braces(job["input"]),
            _escape_braces(outputs["ipynb"]),
            parameters=job.get("parameters") or None,
            engine_name="polaris-reporting",
            kernel_name=job.get("kernel"),
            progress_bar=False,
            cwd=job.get("cwd"),
            start_timeout=job.get("startTimeoutS", 60),
            execution_timeout=job.get("cellTimeoutS"),
        )
    except PapermillExecutionError as exc:
        failure = {"ename": exc.ename, "evalue": exc.evalue, "traceback": traceback_tail(exc.traceback)}
    except (CellTimeoutError, DeadKernelError) as exc:  # the cell ran too long, or killed its kernel
        lines = str(exc).strip().splitlines()
        failure = {"ename": type(exc).__name__, "evalue": lines[0] if lines else "", "traceback": []}
    manager = engine.manager
    if "html" in outputs and os.path.exists(outputs["ipynb"]):
        _export_html(outputs["ipynb"], outputs["html"])
    if failure is not None:
        index, cell_id = (manager.current_index, manager.current_id) if manager is not None else (-1, None)
        emit("failed", index=index, cellId=cell_id, **failure)
        return 1
    emit("done", outputs=outputs)
    return 0


def _on_sigterm(signum: int, frame: Any) -> None:
    """The task (or the death of the Jupyter server) asks us to stop: take the kernel along."""
    if _kernel is not None:
        kill_group(_kernel)
    os._exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    global _channel
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m polaris_jupyter.tasks.notebook_runner <progress fd>  (job JSON on stdin)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    job = json.loads(sys.stdin.read())
    die_with_parent(signal.SIGTERM, expected_parent=job.get("parentPid"))
    fd = int(args[0])
    os.set_inheritable(fd, False)  # not for the kernel or what the notebook starts
    _channel = os.fdopen(fd, "w", encoding="utf-8", buffering=1)
    try:
        return run(job)
    except BaseException as exc:  # reported to the task, which fails the attempt with it
        emit("crash", name=type(exc).__name__, message=str(exc).strip()[:TRACEBACK_TAIL_CHARS])
        return 2
    finally:
        if _kernel is not None:  # a kernel's stray children do not outlive the run
            kill_group(_kernel)


if __name__ == "__main__":
    sys.exit(main())
