"""The payload of ``run-notebook``, validated: every mistake a user can make gets a clear message.

``{path, parameters?, kernel?, cwd?, outputs?: ["ipynb", "html"], timeoutS?}``

- ``path``: a ``.ipynb`` file inside the workspace (the sandbox's path checks: no ``..``, no
  absolute paths, no symlinks out);
- ``parameters``: a JSON object whose keys are identifiers; papermill injects them in a cell after
  the one tagged ``parameters`` (at the top when there is none);
- ``kernel``: an installed kernel name (default: the notebook's own kernelspec, else ``python3``);
- ``cwd``: a folder inside the workspace to execute in (default: the notebook's folder);
- ``outputs``: formats to produce; the executed ``.ipynb`` is always kept (it is also the partial
  result of a failed attempt), ``html`` adds an nbconvert export;
- ``timeoutS``: the longest one *cell* may run (papermill's execution timeout; the attempt then
  fails and is retried per policy). A limit for the whole run is the trigger's ``maxDuration``,
  which ends the run ``TIMED_OUT``.

:func:`parse_request` touches the disk: call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import keyword
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from polaris_jupyter.jobs import InvalidInput
from polaris_jupyter.tasks.notebook_schedule import unwrap_scheduled
from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.sandbox import relative_to_root, resolve_path

__all__ = [
    "DEFAULT_KERNEL",
    "OUTPUT_FORMATS",
    "PAYLOAD_FIELDS",
    "NotebookRequest",
    "inspect_parameters",
    "parse_request",
]

OUTPUT_FORMATS = ("ipynb", "html")
PAYLOAD_FIELDS = ("path", "parameters", "kernel", "cwd", "outputs", "timeoutS")
DEFAULT_KERNEL = "python3"
PARAMETERS_TAG = "parameters"


@dataclass(frozen=True)
class NotebookRequest:
    """A checked ``run-notebook`` payload, with absolute paths resolved inside the workspace."""

    path: str
    source: Path
    cwd: Path
    kernel: str
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("ipynb",)
    cell_timeout_s: float | None = None
    has_parameters_cell: bool = False


def _workspace_path(root: Path, value: Any, name: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty workspace-relative path")
    try:
        return resolve_path(root, value, must_exist=True)
    except ToolError as exc:
        raise InvalidInput(f"{name}: {exc}") from None


def _parameters(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"parameters must be a JSON object of name → value, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise InvalidInput(f"parameter name {key!r} is not a valid identifier (letters, digits, _; not a keyword)")
    return dict(value)


def _outputs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ("ipynb",)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"outputs must be a non-empty list drawn from {list(OUTPUT_FORMATS)}")
    unknown = [v for v in value if v not in OUTPUT_FORMATS]
    if unknown:
        raise InvalidInput(f"outputs: unknown format {unknown[0]!r}; supported: {', '.join(OUTPUT_FORMATS)}")
    return tuple(f for f in OUTPUT_FORMATS if f == "ipynb" or f in value)


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"timeoutS must be a positive number of seconds, got {value!r}")
    return float(value)


def _kernel(value: Any, nb: Any) -> str:
    if value is None:
        spec = nb.get("metadata", {}).get("kernelspec", {})
        value = spec.get("name") if isinstance(spec, dict) else None
        value = value if isinstance(value, str) and value else DEFAULT_KERNEL
    elif not isinstance(value, str) or not value.strip():
        raise InvalidInput("kernel must be a kernel name such as 'python3'")
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().find_kernel_specs()
    if value not in installed:
        names = ", ".join(sorted(installed)) or "none"
        raise InvalidInput(f"kernel {value!r} is not installed; installed kernels: {names}")
    return str(value)


def _read_notebook(source: Path, rel: str) -> Any:
    try:
        return nbformat.read(source, as_version=4)
    except (OSError, ValueError, nbformat.ValidationError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"{rel!r} is not a readable notebook: {detail[:300]}") from None


def parse_request(root: Path, payload: Any) -> NotebookRequest:
    """Validate a ``run-notebook`` payload against the workspace ``root``; raise :class:`InvalidInput`.

    A schedule's firing is accepted too: its envelope carries the notebook payload inside."""
    payload, _ = unwrap_scheduled(payload)
    if not isinstance(payload, dict):
        raise InvalidInput('the payload must be an object such as {"path": "analysis.ipynb"}')
    unknown = sorted(set(payload) - set(PAYLOAD_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown payload field {unknown[0]!r}; allowed: {', '.join(PAYLOAD_FIELDS)}")
    if "path" not in payload:
        raise InvalidInput("path is required: the workspace-relative path of the notebook to run")
    source = _workspace_path(root, payload["path"], "path")
    rel = relative_to_root(root, source)
    if source.suffix.lower() != ".ipynb":
        raise InvalidInput(f"{rel!r} is not a notebook: the path must end in .ipynb")
    if not source.is_file():
        raise InvalidInput(f"{rel!r} is not a file")
    parameters = _parameters(payload.get("parameters"))
    outputs = _outputs(payload.get("outputs"))
    cell_timeout_s = _timeout(payload.get("timeoutS"))
    if payload.get("cwd") is None:
        cwd = source.parent
    else:
        cwd = _workspace_path(root, payload["cwd"], "cwd")
        if not cwd.is_dir():
            raise InvalidInput(f"cwd {relative_to_root(root, cwd)!r} is not a folder")
    nb = _read_notebook(source, rel)
    tagged = any(PARAMETERS_TAG in (cell.get("metadata", {}).get("tags") or []) for cell in nb.cells)
    return NotebookRequest(
        path=rel,
        source=source,
        cwd=cwd,
        kernel=_kernel(payload.get("kernel"), nb),
        parameters=parameters,
        outputs=outputs,
        cell_timeout_s=cell_timeout_s,
        has_parameters_cell=tagged,
    )


def inspect_parameters(root: Path, path: Any) -> list[dict[str, Any]]:
    """The parameters a notebook declares in its ``parameters`` cell (name, type, default, help),
    as papermill infers them: what a "run as a job" dialog prefills. Blocking."""
    source = _workspace_path(root, path, "path")
    if source.suffix.lower() != ".ipynb":
        raise InvalidInput(f"{relative_to_root(root, source)!r} is not a notebook: the path must end in .ipynb")
    from papermill import inspect_notebook

    _read_notebook(source, relative_to_root(root, source))
    found = inspect_notebook(str(source).replace("{", "{{").replace("}", "}}"))
    return [
        {"name": p["name"], "inferredType": p.get("inferred_type_name"), "default": p.get("default"), "help": p.get("help")}
        for p in found.values()
    ]
