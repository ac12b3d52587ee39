"""The output files of a ``run-notebook`` run (executed ``.ipynb``, HTML), read for clients.

``run-notebook`` writes them under ``.polaris/jobs/<run id>/``, a hidden folder, which
Jupyter's contents API refuses to serve (``ContentsManager.allow_hidden`` is off by default, and
turning it on for the whole server to see job outputs would be the wrong trade). So the lab
extension opens them through this, read-only: only the files the run itself recorded as its
outputs, only inside that run's folder, bounded in size.

Route (``GET /runs/{runId}/outputs/{outputFormat}``)::

    {"runId": "run_…", "format": "ipynb", "path": ".polaris/jobs/run_…/daily.ipynb",
     "name": "daily.ipynb", "mimetype": "application/x-ipynb+json", "content": {...notebook...},
     "size": 1234, "lastModified": "2026-01-31T06:00:12Z"}

``content`` is the notebook as JSON for ``ipynb`` and the document's text for ``html``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polaris_jupyter.errors import InvalidInput, NotFound, PayloadTooLarge
from polaris_jupyter.jobs import iso
from polaris_jupyter.tasks.notebook_request import OUTPUT_FORMATS
from polaris_jupyter.tasks.run_notebook import JOBS_FOLDER, RUN_NOTEBOOK_TASK_ID
from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.sandbox import resolve_path

if TYPE_CHECKING:
    from polaris_jupyter.jobs import Engine

__all__ = ["MAX_OUTPUT_BYTES", "read_run_output"]

#: The largest output file served (an executed notebook with big images can be large).
MAX_OUTPUT_BYTES = 32 * 1024 * 1024
_MIMETYPES = {"ipynb": "application/x-ipynb+json", "html": "text/html"}


def _recorded_outputs(run: Any) -> dict[str, str]:
    """The outputs the run recorded: its result's, else its metadata's (a failed or running run)."""
    output = run.output if isinstance(run.output, dict) else {}
    outputs = output.get("outputs") or (run.metadata or {}).get("outputs") or {}
    return {str(k): str(v) for k, v in outputs.items() if isinstance(v, str)} if isinstance(outputs, dict) else {}


async def read_run_output(engine: Engine, root_dir: str | Path, run_id: str, output_format: str) -> dict[str, Any]:
    """One output file of a ``run-notebook`` run; ``NotFound`` when the run has not written it."""
    if output_format not in OUTPUT_FORMATS:
        raise InvalidInput(f"unknown output format {output_format!r}; the formats are {', '.join(OUTPUT_FORMATS)}")
    run = await engine.get_run(run_id)
    if run.task_id != RUN_NOTEBOOK_TASK_ID:
        raise NotFound(f"run {run_id!r} is a {run.task_id} run, not a {RUN_NOTEBOOK_TASK_ID} run: it has no notebook outputs")
    rel = _recorded_outputs(run).get(output_format)
    if rel is None:
        raise NotFound(f"run {run_id!r} has no {output_format} output (ask for it with \"outputs\": [\"ipynb\", \"{output_format}\"])")
    if not rel.startswith(f"{JOBS_FOLDER}/{run_id}/"):
        raise NotFound(f"run {run_id!r} recorded an output outside its folder {JOBS_FOLDER}/{run_id}/")
    return await asyncio.to_thread(_read, Path(root_dir), run_id, output_format, rel)


def _read(root: Path, run_id: str, output_format: str, rel: str) -> dict[str, Any]:
    try:
        path = resolve_path(root.resolve(), rel, must_exist=True)
    except ToolError:
        raise NotFound(f"{rel} is not written yet (the run has not produced it, or it was deleted)") from None
    if not path.is_file():
        raise NotFound(f"{rel} is not a file")
    stat = path.stat()
    if stat.st_size > MAX_OUTPUT_BYTES:
        raise PayloadTooLarge(f"{rel} is {stat.st_size} bytes, more than the {MAX_OUTPUT_BYTES} served; open it on disk")
    text = path.read_text(encoding="utf-8", errors="replace")
    content: Any = text
    if output_format == "ipynb":
        try:
            content = json.loads(text)
        except ValueError:
            raise NotFound(f"{rel} is being written (not valid JSON yet); try again when the run has finished") from None
    return {
        "runId": run_id,
        "format": output_format,
        "path": rel,
        "name": os.path.basename(rel),
        "mimetype": _MIMETYPES[output_format],
        "content": content,
        "size": stat.st_size,
        "lastModified": iso(stat.st_mtime),
    }
