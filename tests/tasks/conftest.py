"""Fixtures for ``run-notebook`` tests: a workspace, notebooks written into it, and engines with
the task registered (stopped after the test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
import pytest_asyncio

from polaris_jupyter.jobs import Engine, RetryPolicy, TaskRegistry
from polaris_jupyter.tasks.notebook_procs import is_running
from polaris_jupyter.tasks.run_notebook import register_run_notebook

EngineFactory = Callable[..., Awaitable[Engine]]
#: How long a test waits for observable state (a pid file, a process gone); never asserted on.
WAIT_S = 60.0


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def write_notebook(root: Path, rel: str, *cells: str, parameters: str | None = None) -> Path:
    """A python3 notebook of code cells; ``parameters`` becomes a cell tagged ``parameters``
    placed first."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in cells)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest_asyncio.fixture
async def make_engine(tmp_path: Path, workspace: Path) -> AsyncIterator[EngineFactory]:
    engines: list[Engine] = []

    async def factory(*, db: Path | None = None, **kw: Any) -> Engine:
        engine = Engine(
            db or tmp_path / "runs.db",
            TaskRegistry(),
            pool_size=4,
            default_retry=kw.pop("default_retry", RetryPolicy(min_timeout_s=0.01, max_timeout_s=0.05)),
            **kw,
        )
        register_run_notebook(engine, workspace)
        await engine.start()
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        await engine.stop()


async def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll observable state (files, the process table) until ``predicate`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"still waiting after {timeout_s}s for {what}")
        await asyncio.sleep(0.05)


async def wait_gone(*pids: int) -> None:
    """Every pid leaves the process table (a zombie counts as gone: it runs nothing)."""
    await wait_until(lambda: not any(is_running(pid) for pid in pids), f"pids {pids} to exit")


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())
