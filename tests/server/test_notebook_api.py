"""Notebooks and their kernels on a real Jupyter server: the variables routes read the kernel of
an open notebook's session (found through the server's session manager), runNotebookCell runs in
that same kernel, and the proposal routes and context validation answer clear 4xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat import v4

from polaris_jupyter.tools.base import ToolContext
from polaris_jupyter.tools.notebook_kernel import ServerKernels, execute
from polaris_jupyter.tools.notebook_run import TOOLS as RUN_TOOLS
from tests.helpers import rest as call

pytestmark = pytest.mark.slow


async def open_notebook(jp_fetch: Any, root: Path, name: str, *sources: str) -> str:
    """Write a notebook and open a session for it (as JupyterLab does); the session's kernel id."""
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [v4.new_code_cell(s) for s in sources]
    (root / name).write_text(nbformat.writes(nb))
    body = {"path": name, "name": name, "type": "notebook", "kernel": {"name": "python3"}}
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    return str(json.loads(response.body)["kernel"]["id"])


async def test_variables_of_an_open_notebooks_kernel(jp_fetch: Any, polaris: Any, jp_root_dir: Path) -> None:
    kernel_id = await open_notebook(jp_fetch, jp_root_dir, "shop.ipynb", "x")
    kernels = polaris.notebook_kernels
    assert isinstance(kernels, ServerKernels)  # wired by the server extension
    handle = await kernels.for_notebook("shop.ipynb")
    assert handle is not None and handle.kernel_id == kernel_id
    setup = "import numpy as np\nprices = {'pear': 3, 'fig': 5}\ngrid = np.ones((2, 3))\n"
    assert (await execute(handle, setup, timeout_s=60)).status == "ok"

    status, doc = await call(jp_fetch, "kernels", kernel_id, "variables", method="POST", body={})
    assert status == 200, doc
    by_name = {v["name"]: v for v in doc["variables"]}
    assert set(by_name) == {"prices", "grid"} and by_name["grid"]["shape"] == [2, 3]
    assert by_name["prices"]["length"] == 2 and doc["kernelId"] == kernel_id

    status, doc = await call(jp_fetch, "notebook-variables", method="POST",
                             body={"path": "shop.ipynb", "names": ["prices", "nothing"]})
    assert status == 200, doc
    assert [v["name"] for v in doc["variables"]] == ["prices"] and doc["missing"] == ["nothing"]
    assert doc["path"] == "shop.ipynb"

    for path, body, code, message in [
        (("kernels", "no-such-kernel", "variables"), {}, 404, "no running kernel"),
        (("notebook-variables",), {"path": "closed.ipynb"}, 404, "not open"),
        (("notebook-variables",), {"path": "../outside.ipynb"}, 400, "outside"),
        (("kernels", kernel_id, "variables"), {"names": ["import os"]}, 400, "not variable names"),
        (("kernels", kernel_id, "variables"), {"names": "prices"}, 400, "names"),
        (("kernels", kernel_id, "variables"), {"code": "1"}, 400, "unknown field"),
    ]:
        status, error = await call(jp_fetch, *path, method="POST", body=body)
        assert status == code and message in error["message"], (path, body, status, error)


async def test_run_notebook_cell_runs_in_the_sessions_kernel(jp_fetch: Any, polaris: Any, jp_root_dir: Path) -> None:
    await open_notebook(jp_fetch, jp_root_dir, "calc.ipynb", "print(base * 2)")
    handle = await polaris.notebook_kernels.for_notebook("calc.ipynb")
    assert (await execute(handle, "base = 21", timeout_s=60)).status == "ok"
    ctx = ToolContext(root=jp_root_dir, run_id="run-x", edits=polaris.journal, kernels=polaris.notebook_kernels)
    [tool] = RUN_TOOLS
    result = await tool.fn({"path": "calc.ipynb", "index": 0}, ctx)
    assert result.data["ownKernel"] is True and "stdout: 42" in result.text  # type: ignore[union-attr]
    saved = nbformat.read(jp_root_dir / "calc.ipynb", as_version=4).cells[0]
    assert saved.outputs[0].text == "42\n" and saved.execution_count == 2


async def test_proposal_routes_and_context_validation_answer_4xx(jp_fetch: Any, polaris: Any, jp_root_dir: Path) -> None:
    assert (await call(jp_fetch, "runs", "run_nope", "proposals"))[0] == 404
    for action in ("apply", "discard"):
        status, error = await call(jp_fetch, "proposals", "prop_nope", action, method="POST")
        assert status == 404 and "no proposal" in error["message"]
    status, conv = await call(jp_fetch, "conversations", method="POST", body={})
    assert status == 201
    (jp_root_dir / "a.py").write_text("x = 1\n")
    for body, message in [
        ({"content": "fix it", "intent": "fix", "context": {"items": [{"kind": "file", "path": "a.py"}]}}, "needs the cell"),
        ({"content": "hi", "context": {"items": [{"kind": "file", "path": "../etc/passwd"}]}}, "outside"),
        ({"content": "hi", "context": {"items": [{"kind": "cell", "path": "a.ipynb", "cellIndex": -1}]}}, "cellIndex"),
    ]:
        status, error = await call(jp_fetch, "conversations", conv["id"], "messages", method="POST", body=body)
        assert status == 400 and message in error["message"], (body, error)
