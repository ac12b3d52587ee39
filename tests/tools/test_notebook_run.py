"""runNotebookCell and inspectVariables against a real ipykernel.

The "own kernel" is a kernel this test starts and maps to the notebook's path (as the Jupyter
server's session manager would); a variable defined there is visible to the cell, which proves
the cell ran in it, not in a fresh kernel.
"""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import pytest_asyncio
from jupyter_client.manager import AsyncKernelManager
from nbformat import v4

from polaris_jupyter.errors import InvalidInput
from polaris_jupyter.tools.base import ToolContext, ToolError
from polaris_jupyter.tools.edits import MemoryEditJournal
from polaris_jupyter.tools.notebook_kernel import KernelBusy, KernelHandle, MappedKernels, execute
from polaris_jupyter.tools.variables import INSPECT_SNIPPET, inspect_snippet, variables_for_api
from tests.tools.conftest import snapshot
from tests.tools.test_notebook_cells import run_tool

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture
async def kernel(workspace: Path) -> AsyncIterator[KernelHandle]:
    manager = AsyncKernelManager(kernel_name="python3")
    await manager.start_kernel(cwd=str(workspace))
    try:
        yield KernelHandle(manager.kernel_id or "k", manager)
    finally:
        await manager.shutdown_kernel(now=True)


def write_nb(path: Path, *sources: str) -> None:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [v4.new_code_cell(s) for s in sources]
    path.write_text(nbformat.writes(nb))


def cell(path: Path, index: int) -> Any:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb.cells[index]


@pytest.mark.asyncio
async def test_runs_in_the_notebooks_own_kernel_and_saves_outputs_revertibly(
    workspace: Path, journal: MemoryEditJournal, kernel: KernelHandle
) -> None:
    write_nb(workspace / "nb.ipynb", "import math", "print('total', secret_total)\nsecret_total * 2")
    original = snapshot(workspace)
    await execute(kernel, "secret_total = 21", timeout_s=30)  # the user ran something earlier
    ctx = ToolContext(root=workspace, run_id="run-1", edits=journal, kernels=MappedKernels({"nb.ipynb": kernel}))
    result = await run_tool("runNotebookCell", {"path": "nb.ipynb", "index": 1}, ctx)
    assert "own kernel" in result.text and "stdout: total 21" in result.text and ": 42" in result.text
    assert result.data and result.data["ownKernel"] is True and result.data["status"] == "ok"
    saved = cell(workspace / "nb.ipynb", 1)
    assert saved.execution_count == 2 and [o.output_type for o in saved.outputs] == ["stream", "execute_result"]
    assert saved.outputs[1].data["text/plain"] == "42"
    await journal.revert_run(workspace, "run-1")
    assert snapshot(workspace) == original


@pytest.mark.asyncio
async def test_errors_come_back_with_the_traceback_tail(workspace: Path, ctx: ToolContext, kernel: KernelHandle) -> None:
    write_nb(workspace / "nb.ipynb", "def f(d):\n    return d['price']\nf({})")
    ctx.kernels = MappedKernels({"nb.ipynb": kernel})
    result = await run_tool("runNotebookCell", {"path": "nb.ipynb", "index": 0}, ctx)
    assert "raised KeyError" in result.summary
    assert "error KeyError: 'price'" in result.text and "return d['price']" in result.text and "\x1b" not in result.text
    assert cell(workspace / "nb.ipynb", 0).outputs[0].ename == "KeyError"


@pytest.mark.asyncio
async def test_without_a_session_a_fresh_kernel_runs_the_cell_and_is_shut_down(workspace: Path, ctx: ToolContext) -> None:
    write_nb(workspace / "nb.ipynb", "import os\nprint(os.getcwd())\nprint(undefined_elsewhere)")
    result = await run_tool("runNotebookCell", {"path": "nb.ipynb", "index": 0}, ctx)
    assert result.data and result.data["ownKernel"] is False
    assert "fresh python3 kernel" in result.text and "NameError" in result.text
    assert f"stdout: {workspace}" in result.text  # started in the notebook's folder


@pytest.mark.asyncio
async def test_timeout_interrupts_our_cell_and_the_kernel_lives_on(workspace: Path, ctx: ToolContext, kernel: KernelHandle) -> None:
    write_nb(workspace / "nb.ipynb", "import time\nprint('start', flush=True)\ntime.sleep(120)", "1 + 1")
    ctx.kernels = MappedKernels({"nb.ipynb": kernel})
    result = await run_tool("runNotebookCell", {"path": "nb.ipynb", "index": 0, "timeoutS": 1}, ctx)
    assert result.data and result.data["timedOut"] is True
    assert "timed out and was interrupted" in result.text and "KeyboardInterrupt" in result.text
    after = await run_tool("runNotebookCell", {"path": "nb.ipynb", "index": 1}, ctx)
    assert after.data and after.data["status"] == "ok" and ": 2" in after.text


@pytest.mark.asyncio
async def test_a_cell_edited_while_it_ran_keeps_the_edit(workspace: Path, ctx: ToolContext, kernel: KernelHandle) -> None:
    path = workspace / "nb.ipynb"
    write_nb(path, "x = 1")

    class EditingKernels(MappedKernels):
        async def for_notebook(self, rel_path: str) -> KernelHandle | None:
            write_nb(path, "x = 2  # the user's edit")  # the user saves while the cell runs
            return kernel

    ctx.kernels = EditingKernels()
    result = await run_tool("runNotebookCell", {"path": "nb.ipynb", "index": 0}, ctx)
    assert "not saved" in result.text and result.diff is None
    assert cell(path, 0).source == "x = 2  # the user's edit"


@pytest.mark.asyncio
async def test_refusals(workspace: Path, ctx: ToolContext) -> None:
    nb = v4.new_notebook()
    nb.cells = [v4.new_markdown_cell("# t"), v4.new_code_cell("  ")]
    (workspace / "nb.ipynb").write_text(nbformat.writes(nb))

    class BusyManager:
        execution_state = "busy"

    ctx.kernels = MappedKernels({"nb.ipynb": KernelHandle("k-busy", BusyManager())})
    before = snapshot(workspace)
    for args, message in [
        ({"path": "nb.ipynb", "index": 0}, "markdown cell"),
        ({"path": "nb.ipynb", "index": 1}, "empty"),
        ({"path": "nb.ipynb", "index": 5}, "no cell 5"),
        ({"path": "nb.ipynb", "index": 0, "timeoutS": 0}, "at least 1"),
    ]:
        with pytest.raises(ToolError, match=message):
            await run_tool("runNotebookCell", args, ctx)
    write_nb(workspace / "nb.ipynb", "1")
    before = snapshot(workspace)
    with pytest.raises(KernelBusy, match="busy"):
        await run_tool("runNotebookCell", {"path": "nb.ipynb", "index": 0}, ctx)
    with pytest.raises(ToolError, match="busy"):
        await run_tool("inspectVariables", {"path": "nb.ipynb"}, ctx)
    assert snapshot(workspace) == before


@pytest.mark.asyncio
async def test_inspect_variables_describes_frames_arrays_and_leaves_no_trace(
    workspace: Path, ctx: ToolContext, kernel: KernelHandle
) -> None:
    write_nb(workspace / "nb.ipynb", "x")
    setup = ("import numpy as np, pandas as pd\n"
             "df = pd.DataFrame({'price': [1.5, 2.5], 'name': ['a', 'b']})\n"
             "arr = np.zeros((3, 4))\nitems = list(range(1000))\ncount = 7\n")
    assert (await execute(kernel, setup, timeout_s=60)).status == "ok"
    ctx.kernels = MappedKernels({"nb.ipynb": kernel})
    result = await run_tool("inspectVariables", {"path": "nb.ipynb"}, ctx)
    doc = result.data
    assert doc is not None
    by_name = {v["name"]: v for v in doc["variables"]}
    assert set(by_name) == {"df", "arr", "items", "count"}  # no modules (np, pd), no IPython internals
    assert by_name["df"]["shape"] == [2, 2] and [c["name"] for c in by_name["df"]["columns"]] == ["price", "name"]
    assert by_name["df"]["columns"][0]["dtype"] == "float64" and "2.5" in by_name["df"]["head"]
    assert by_name["arr"]["shape"] == [3, 4] and by_name["arr"]["dtype"] == "float64"
    assert by_name["items"]["length"] == 1000 and by_name["count"]["repr"] == "7"
    assert "df: DataFrame shape (2, 2)" in result.text and "columns: price float64" in result.text
    only = await run_tool("inspectVariables", {"path": "nb.ipynb", "names": ["count", "ghost"]}, ctx)
    assert only.data and [v["name"] for v in only.data["variables"]] == ["count"] and only.data["missing"] == ["ghost"]
    # silent: no execution count used, no history, the helper function is gone
    probe = await execute(kernel, "import json; print(json.dumps([len(In), '_polaris_inspect' in globals()]))",
                          timeout_s=30)
    assert probe.execution_count == 2
    history_len, leaked = json.loads(probe.stdout())
    assert history_len == 3 and leaked is False  # In[0] is '', then the setup and this probe


@pytest.mark.asyncio
async def test_inspection_code_is_the_fixed_snippet_and_names_are_only_data(workspace: Path, kernel: KernelHandle) -> None:
    code = inspect_snippet(["a", "b"])
    assert code.startswith(INSPECT_SNIPPET)
    (call,) = ast.parse(code[len(INSPECT_SNIPPET):]).body  # try: _polaris_inspect("<json>") finally: del ...
    assert isinstance(call, ast.Try) and len(call.body) == 1 and isinstance(call.body[0], ast.Expr)
    (argument,) = call.body[0].value.args  # type: ignore[attr-defined]
    assert isinstance(argument, ast.Constant) and json.loads(argument.value)["names"] == ["a", "b"]
    kernels = MappedKernels({"nb.ipynb": kernel})
    for names in (["x); import os; os.system('touch pwned'"], ["a b"], "df", [1]):
        with pytest.raises(InvalidInput, match="variable names"):
            await variables_for_api(kernels, root=workspace, kernel_id=kernel.kernel_id, names=names)
    assert not (workspace / "pwned").exists()
    doc = await variables_for_api(kernels, root=workspace, path="nb.ipynb", names=[])
    assert doc["kernelId"] == kernel.kernel_id and doc["variables"] == []


@pytest.mark.asyncio
async def test_a_kernel_busy_for_a_moment_is_waited_for_not_refused() -> None:
    """A comm message (the notebook ChatPanel's Send) keeps the kernel busy for milliseconds: a
    run asked meanwhile waits for idle; one busy beyond the grace is refused."""

    class Reached(Exception):
        pass

    class BrieflyBusy:
        execution_state = "busy"

        def client(self) -> Any:
            raise Reached  # past the busy check: the run would start here

    manager = BrieflyBusy()
    asyncio.get_running_loop().call_later(0.2, setattr, manager, "execution_state", "idle")
    with pytest.raises(Reached):
        await execute(KernelHandle("k-brief", manager), "1", timeout_s=5)
    manager.execution_state = "busy"
    with pytest.raises(KernelBusy):
        await execute(KernelHandle("k-busy", manager), "1", timeout_s=5)
