"""Kernel variables: ``inspectVariables`` (a read-only tool) and the same answer for the REST route.

What the user's notebook kernel holds: names, types, shapes or lengths, dtypes, and for a
DataFrame its columns with dtypes and its first rows. The answer comes from a FIXED inspection
snippet (:data:`INSPECT_SNIPPET`, a constant of this module; the model never writes code that
runs here): the only thing added to it is a JSON request (the wanted names, checked to be
identifiers, and the limits), passed as a Python string literal. It runs silently
(``silent=True, store_history=False``: no output, no history entry, no execution count in the
notebook), in at most :data:`INSPECT_TIMEOUT_S` (our own code is interrupted after that), never
in a busy kernel, and prints one JSON document of at most :data:`MAX_INSPECT_BYTES`.
"""

from __future__ import annotations

import json
from typing import Any

from polaris_jupyter.errors import Conflict, InvalidInput, NotFound, Unavailable
from polaris_jupyter.tools._args import check_args, get_str, os_errors_as_tool_errors
from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolResult, cap_text
from polaris_jupyter.tools.notebook import check_ipynb
from polaris_jupyter.tools.notebook_kernel import (
    KernelBusy,
    KernelHandle,
    KernelUnavailable,
    NotebookKernels,
    execute,
)
from polaris_jupyter.tools.sandbox import relative_to_root, resolve_path

__all__ = [
    "INSPECT_SNIPPET",
    "INSPECT_TIMEOUT_S",
    "MAX_INSPECT_BYTES",
    "TOOLS",
    "check_names",
    "inspect_snippet",
    "inspect_variables",
    "render_variables",
    "variables_for_api",
]

INSPECT_TIMEOUT_S = 3.0
MAX_INSPECT_BYTES = 64_000
MAX_NAMES = 100
LIMITS = {"maxVariables": 100, "reprChars": 200, "maxColumns": 50, "headRows": 5, "cellChars": 40,
          "maxBytes": MAX_INSPECT_BYTES}
_MARKER = "__polaris_variables__"

#: The inspection code: defines a function, calls it with the request, removes it again.
INSPECT_SNIPPET = r'''
def _polaris_inspect(request_json):
    import json, reprlib, types
    request = json.loads(request_json)
    limits = request["limits"]
    ns = globals()
    try:
        hidden = set(get_ipython().user_ns_hidden)
    except Exception:
        hidden = set()
    skip = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)
    if request["names"]:
        names = list(request["names"])
    else:
        names = sorted(n for n, v in list(ns.items()) if not n.startswith("_") and n not in hidden
                       and n not in ("In", "Out", "exit", "quit", "get_ipython") and not isinstance(v, skip))
    short = reprlib.Repr()
    short.maxstring = short.maxother = limits["reprChars"]
    short.maxlist = short.maxtuple = short.maxset = short.maxdict = 10
    sized = (str, bytes, list, tuple, dict, set, frozenset, range)
    found, missing, size, truncated = [], [], 0, False
    for name in names[: limits["maxVariables"]]:
        if name not in ns:
            missing.append(name)
            continue
        value = ns[name]
        cls = type(value)
        item = {"name": name, "type": cls.__name__, "module": cls.__module__}
        try:
            shape = getattr(value, "shape", None)
            if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
                item["shape"] = list(shape)
            elif isinstance(value, sized):
                item["length"] = len(value)
            dtype = getattr(value, "dtype", None)
            if dtype is not None and not callable(dtype):
                item["dtype"] = str(dtype)
        except Exception:
            pass
        frame = cls.__name__ == "DataFrame" and all(hasattr(value, a) for a in ("columns", "dtypes", "head"))
        try:
            if frame:
                pairs = list(zip(value.columns, value.dtypes))
                item["columns"] = [{"name": str(c), "dtype": str(d)} for c, d in pairs[: limits["maxColumns"]]]
                item["columnCount"] = len(pairs)
                head = value.head(limits["headRows"])
                if hasattr(head, "to_string"):
                    item["head"] = head.to_string(max_cols=limits["maxColumns"], max_colwidth=limits["cellChars"])
                else:
                    item["head"] = str(head)
            elif cls.__name__ == "Series" and hasattr(value, "head"):
                item["head"] = str(value.head(limits["headRows"]))
            else:
                item["repr"] = short.repr(value)[: limits["reprChars"] + 3]
        except Exception as exc:
            item["error"] = type(exc).__name__ + ": " + str(exc)[:200]
        cost = len(json.dumps(item, default=str))
        if size + cost > limits["maxBytes"]:
            truncated = True
            break
        size += cost
        found.append(item)
    doc = {"variables": found, "total": len(names), "missing": missing, "truncated": truncated
           or len(names) > limits["maxVariables"]}
    print("__polaris_variables__" + json.dumps(doc, default=str))
'''


def check_names(names: Any) -> list[str]:
    """``names`` as a list of Python identifiers (at most :data:`MAX_NAMES`), or InvalidInput."""
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidInput("names must be a list of variable names")
    if len(names) > MAX_NAMES:
        raise InvalidInput(f"names holds {len(names)} names; at most {MAX_NAMES}")
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise InvalidInput(f"not variable names: {', '.join(repr(n[:40]) for n in bad[:5])}")
    return list(dict.fromkeys(names))


def inspect_snippet(names: list[str]) -> str:
    """The code sent to the kernel: the fixed snippet plus the request as a string literal."""
    request = json.dumps({"names": names, "limits": LIMITS})
    return f"{INSPECT_SNIPPET}\ntry:\n    _polaris_inspect({request!r})\nfinally:\n    del _polaris_inspect\n"


async def inspect_variables(handle: KernelHandle, names: list[str], *, timeout_s: float = INSPECT_TIMEOUT_S) -> dict[str, Any]:
    """The kernel's variables as a JSON document (see the module docstring). Raises KernelBusy,
    KernelUnavailable (no answer in time) or ToolError (not a Python kernel, broken answer)."""
    execution = await execute(handle, inspect_snippet(names), timeout_s=timeout_s, silent=True, store_history=False,
                              max_output_bytes=4 * MAX_INSPECT_BYTES, language="python")
    if execution.timed_out:
        raise KernelUnavailable(f"the kernel did not answer the variable inspection within {timeout_s:g} s")
    line = next((ln for ln in reversed(execution.stdout().splitlines()) if ln.startswith(_MARKER)), None)
    if line is None:
        errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in execution.outputs if o.get("output_type") == "error"]
        raise ToolError(f"the variable inspection gave no answer ({'; '.join(errors) or execution.status})")
    doc: dict[str, Any] = json.loads(line[len(_MARKER):])
    doc["kernelId"] = handle.kernel_id
    doc["elapsedMs"] = round(execution.elapsed_ms, 1)
    return doc


def render_variables(doc: dict[str, Any], where: str) -> str:
    """The inspection as text for the model (and the chat's context block)."""
    found = doc.get("variables") or []
    lines = [f"Variables in {where} ({len(found)} of {doc.get('total', len(found))} shown):"]
    for item in found:
        head = f"{item['name']}: {item['type']}"
        if item.get("shape") is not None:
            head += f" shape {tuple(item['shape'])}"
        if item.get("length") is not None:
            head += f" length {item['length']}"
        if item.get("dtype"):
            head += f" dtype {item['dtype']}"
        if item.get("repr") is not None:
            head += f" = {item['repr']}"
        lines.append(head)
        if item.get("columns"):
            more = item.get("columnCount", 0) - len(item["columns"])
            cols = ", ".join(f"{c['name']} {c['dtype']}" for c in item["columns"])
            lines.append(f"  columns: {cols}" + (f" (+{more} more)" if more > 0 else ""))
        if item.get("head"):
            lines.append("  head:\n    " + str(item["head"]).replace("\n", "\n    "))
        if item.get("error"):
            lines.append(f"  (could not be described: {item['error']})")
    if doc.get("missing"):
        lines.append(f"Not defined in the kernel: {', '.join(doc['missing'])}")
    if doc.get("truncated"):
        lines.append("[more variables exist than shown; ask for them by name]")
    return "\n".join(lines)


async def _handle_for(kernels: NotebookKernels | None, *, kernel_id: str | None, path: str | None) -> KernelHandle:
    if kernels is None:
        raise ToolError("no Jupyter kernels are reachable here (variables exist only in a notebook's running kernel)")
    if kernel_id is not None:
        handle = await kernels.by_id(kernel_id)
        if handle is None:
            raise NotFound(f"no running kernel with id {kernel_id!r}")
        return handle
    assert path is not None
    handle = await kernels.for_notebook(path)
    if handle is None:
        raise NotFound(f"{path!r} is not open with a running kernel; open it (and run its cells) first")
    return handle


async def variables_for_api(kernels: NotebookKernels | None, *, root: Any, kernel_id: str | None = None,
                            path: str | None = None, names: Any = None) -> dict[str, Any]:
    """The REST answer: the errors of the Polaris family (404 unknown kernel or notebook not
    open, 409 busy, 503 no answer in time, 400 bad names or not a Python kernel)."""
    wanted = check_names(names)
    try:
        rel = None
        if kernel_id is None:
            if path is None:
                raise InvalidInput("give a kernelId or a notebook path")
            rel = relative_to_root(root, resolve_path(root, path))
            check_ipynb(rel)
        handle = await _handle_for(kernels, kernel_id=kernel_id, path=rel)
        doc = await inspect_variables(handle, wanted)
    except KernelBusy as exc:
        raise Conflict(str(exc)) from None
    except KernelUnavailable as exc:
        raise Unavailable(str(exc), retry_after_s=1) from None
    except ToolError as exc:
        raise (Unavailable(str(exc)) if kernels is None else InvalidInput(str(exc))) from None
    doc["path"] = rel
    return doc


async def inspect_variables_tool(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("inspectVariables", args, ("path", "names"), ("path",))
    try:
        names = check_names(args.get("names"))
    except InvalidInput as exc:
        raise ToolError(str(exc)) from None
    rel = relative_to_root(ctx.root, resolve_path(ctx.root, get_str(args, "path"), must_exist=True))
    check_ipynb(rel)
    try:
        handle = await _handle_for(ctx.kernels, kernel_id=None, path=rel)
    except NotFound as exc:
        raise ToolError(str(exc)) from None
    doc = await inspect_variables(handle, names)
    text, truncated = cap_text(render_variables(doc, f"the kernel of {rel}"))
    return ToolResult(text, summary=f"Inspected {len(doc.get('variables') or [])} variables of {rel}",
                      truncated=truncated or bool(doc.get("truncated")), data=doc)


TOOLS: list[Tool] = [
    Tool(
        name="inspectVariables",
        description=(
            "List the variables of a notebook's running kernel (read-only): name, type, shape or length, dtype, a "
            "short repr, and for a DataFrame its columns, dtypes and first rows. Give names to see only those."
        ),
        parameters={
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "The notebook (.ipynb) whose kernel to inspect."},
                "names": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_NAMES,
                          "description": "Variable names to describe (default: all the user's variables)."},
            },
            "required": ["path"],
            "additionalProperties": False,
        },
        fn=os_errors_as_tool_errors(inspect_variables_tool),
        group="notebook",
    ),
]
