"""``runNotebookCell``: execute one code cell and return its outputs summarised.

The cell runs in the notebook's OWN kernel when the notebook is open in Jupyter (its session
is found through ``ToolContext.kernels``), so it sees the user's variables as a run from the
notebook would; otherwise in a fresh kernel of the notebook's kernelspec, started for the call
(without the server's secrets in its environment) and shut down after it. A busy kernel is
refused, the run is bounded by a timeout that interrupts our code (never a user's), and the
outputs are stored in the cell through the edit journal (revertible like any notebook edit)
unless the cell changed while it ran. The model gets text, errors with their traceback's tail
and images as ``image/png 640×480``, capped, with secrets masked.

The tool executes code: ``tools/permissions.py`` classifies it as ``execute`` (it asks in the
ask and auto-edit modes and is not offered in plan mode).
"""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode

from polaris_jupyter.tools._args import check_args, get_int, get_str, os_errors_as_tool_errors
from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolResult
from polaris_jupyter.tools.notebook import CELL_ARGS, cell_ref, load_notebook, notebook_schema, save_notebook
from polaris_jupyter.tools.notebook_format import cell_source, find_cell, summarise_outputs
from polaris_jupyter.tools.notebook_kernel import Execution, execute, fresh_kernel
from polaris_jupyter.tools.terminal import mask, scrubbed_env, secret_values

__all__ = ["DEFAULT_CELL_TIMEOUT_S", "MAX_CELL_TIMEOUT_S", "TOOLS"]

DEFAULT_CELL_TIMEOUT_S = 60
MAX_CELL_TIMEOUT_S = 600
#: Characters of output summary the model gets for one run.
MAX_SUMMARY_CHARS = 6000


async def _store_outputs(ctx: ToolContext, rel: str, position: int, cell_id: str | None, code: str,
                         execution: Execution) -> tuple[str | None, str]:
    """Put the outputs into the cell as it is on disk now; (diff, note) — no write (diff None)
    when the cell was changed, moved away or deleted while it ran."""
    target, _, before, nb = await load_notebook(ctx, rel, writable=True)
    assert nb is not None
    try:
        now = find_cell(nb, rel, None if cell_id else position, cell_id)
    except ToolError:
        return None, "The outputs were not saved: the cell was deleted while it ran."
    cell = nb.cells[now]
    if cell_source(cell) != code:
        return None, "The outputs were not saved in the notebook: the cell was edited while it ran."
    cell["outputs"] = [NotebookNode(o) for o in execution.outputs]
    cell["execution_count"] = execution.execution_count
    diff = await save_notebook(ctx, target, rel, before, nb)
    return diff, f"The outputs are saved in cell {now} of {rel}."


def _report(rel: str, position: int, where: str, execution: Execution, note: str, secrets: list[str]) -> tuple[str, str]:
    """(text for the model, one-line summary for the card)."""
    if execution.timed_out:
        verdict = "timed out" + (" and was interrupted" if execution.interrupted else "")
    elif execution.status == "error":
        names = [o.get("ename", "") for o in execution.outputs if o.get("output_type") == "error"]
        verdict = f"raised {names[-1] if names else 'an error'}"
    else:
        verdict = "ran" if execution.status == "ok" else f"ended with status {execution.status}"
    count = f" [{execution.execution_count}]" if execution.execution_count is not None else ""
    summary, cut = summarise_outputs(execution.outputs, max_chars=MAX_SUMMARY_CHARS)
    lines = [f"Cell {position}{count} of {rel} {verdict} in {where} ({execution.elapsed_ms / 1000:.1f} s)."]
    lines.append("Outputs:\n" + summary if execution.outputs else "No outputs.")
    if cut or execution.dropped_outputs:
        lines.append(f"[outputs truncated; {execution.dropped_outputs} outputs over the size limit were dropped]")
    lines.append(note)
    return mask("\n".join(lines), secrets), f"Cell {position} of {rel} {verdict}"


async def run_notebook_cell(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("runNotebookCell", args, ("path", "index", "cellId", "timeoutS"), ("path",))
    index, cell_id = cell_ref(args)
    default_s = int(ctx.settings.get("cell_timeout_s") or DEFAULT_CELL_TIMEOUT_S)
    timeout_s = get_int(args, "timeoutS", default=default_s, min_value=1, max_value=MAX_CELL_TIMEOUT_S)
    assert timeout_s is not None
    _, rel, _, nb = await load_notebook(ctx, get_str(args, "path"), writable=True)
    assert nb is not None
    position = find_cell(nb, rel, index, cell_id)
    cell = nb.cells[position]
    if cell.cell_type != "code":
        raise ToolError(f"cell {position} of {rel} is a {cell.cell_type} cell; only code cells run")
    code = cell_source(cell)
    if not code.strip():
        raise ToolError(f"cell {position} of {rel} is empty; there is nothing to run")
    handle = await ctx.kernels.for_notebook(rel) if ctx.kernels is not None else None
    if handle is not None:
        execution = await execute(handle, code, timeout_s=timeout_s)
        where = f"the notebook's own kernel ({handle.kernel_id})"
    else:
        kernel_name = str((nb.metadata.get("kernelspec") or {}).get("name") or "python3")
        folder = (ctx.root / rel).parent
        async with fresh_kernel(kernel_name, cwd=folder, env=scrubbed_env(ctx.env)) as fresh:
            execution = await execute(fresh, code, timeout_s=timeout_s)
        where = (f"a fresh {kernel_name} kernel (the notebook is not open in Jupyter, so variables of "
                 "its other cells are not defined there)")
    diff, note = await _store_outputs(ctx, rel, position, cell.get("id"), code, execution)
    text, summary = _report(rel, position, where, execution, note, secret_values(ctx.env))
    return ToolResult(text, summary=summary, diff=diff, data={
        "path": rel, "index": position, "status": execution.status, "timedOut": execution.timed_out,
        "executionCount": execution.execution_count, "outputs": len(execution.outputs),
        "ownKernel": handle is not None,
    })


TOOLS: list[Tool] = [
    Tool(
        name="runNotebookCell",
        description=(
            "Run one code cell of a notebook (by 0-based index or cellId) and get its outputs summarised. Runs in "
            "the notebook's own kernel when it is open in Jupyter (so it sees the user's variables), else in a fresh "
            "kernel. The outputs are saved in the cell. timeoutS bounds the run (default 60, at most 600)."
        ),
        parameters=notebook_schema(
            {**CELL_ARGS, "timeoutS": {"type": "integer", "minimum": 1, "maximum": MAX_CELL_TIMEOUT_S,
                                       "description": "Seconds before the run is interrupted."}},
            ["path"],
        ),
        fn=os_errors_as_tool_errors(run_notebook_cell),
        group="notebook",
    ),
]
