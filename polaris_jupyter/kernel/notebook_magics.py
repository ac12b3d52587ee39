"""``%polaris run-notebook`` and ``%polaris schedule``: notebooks as background jobs from a cell.

::

    %polaris run-notebook reports/daily.ipynb --param n=3 --output html --wait
    %polaris schedule reports/daily.ipynb "0 6 * * *" --tz Europe/Paris --param n=3 --output html
    %polaris schedule list
    %polaris schedule delete ID

Both build the ``run-notebook`` payload (``{path, parameters, outputs, timeoutS, kernel, cwd}``);
the server checks it (a schedule's payload when it is created), so a wrong path is an error now.
``--param NAME=VALUE`` reads VALUE as a Python literal (``3``, ``'x'``, ``[1, 2]``, ``True``) and
anything else as text (``--param city=Paris``); IPython expands ``{expr}`` in a magic's line, so
``--param n={n}`` passes a variable of this kernel and ``{{``/``}}`` write literal braces. Paths are the notebook's path as this kernel sees
it (relative to its working directory, like ``open()``), mapped onto the workspace.

Re-running a ``%polaris schedule`` cell updates its schedule instead of adding a second one: the
schedule id comes from the path, cron and time zone unless ``--id`` names it.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import keyword
import os
import re
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from IPython.core.error import UsageError

from polaris_jupyter.kernel.magics import _Parser, _split
from polaris_jupyter.kernel.paths import workspace_path

if TYPE_CHECKING:
    from polaris_jupyter.kernel.client import Polaris

__all__ = ["NOTEBOOK_SUBCOMMANDS", "NOTEBOOK_USAGE", "SchedulesTable", "notebook_payload", "parse_param", "run_subcommand"]

RUN_NOTEBOOK_TASK_ID = "run-notebook"
NOTEBOOK_SUBCOMMANDS = ("run-notebook", "schedule")
NOTEBOOK_USAGE = """\
%polaris run-notebook PATH [--param NAME=VALUE ...] [--output html] [--timeout S] [--max-attempts N]
                      [--max-duration D] [--kernel K] [--cwd DIR] [--wait]
                               run a notebook as a background job (papermill, in a fresh kernel)
%polaris schedule PATH "CRON" [--tz ZONE] [the same options] [--id NAME]
                               run a notebook on a cron schedule: each firing is a run
%polaris schedule list         the schedules, with their next run and payload
%polaris schedule delete ID    delete a schedule"""


class _NotebookParser(_Parser):
    """The magics' parser, naming the whole subcommand (``%polaris schedule delete``) in errors."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\n\nUsage:\n{NOTEBOOK_USAGE}")


def _parser(name: str, *, schedule: bool) -> _NotebookParser:
    parser = _NotebookParser(prog=f"%polaris {name}", add_help=False, allow_abbrev=False)
    parser.add_argument("path")
    if schedule:
        parser.add_argument("cron", nargs="+")
        parser.add_argument("--tz", default="UTC")
        parser.add_argument("--id", dest="schedule_id")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--output", action="append", default=[], metavar="FORMAT")
    parser.add_argument("--timeout", type=_positive_float, metavar="S")
    parser.add_argument("--max-attempts", type=_attempts, metavar="N")
    parser.add_argument("--max-duration", metavar="D")
    parser.add_argument("--kernel")
    parser.add_argument("--cwd")
    if not schedule:
        parser.add_argument("--wait", action="store_true")
    return parser


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def _attempts(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise ValueError(text)
    return value


_positive_float.__name__ = "positive number of seconds"
_attempts.__name__ = "number of attempts from 1 to 100"

_PARSERS = {
    "run-notebook": _parser("run-notebook", schedule=False),
    "schedule": _parser("schedule", schedule=True),
    "schedule delete": _NotebookParser(prog="%polaris schedule delete", add_help=False, allow_abbrev=False),
    "schedule list": _NotebookParser(prog="%polaris schedule list", add_help=False, allow_abbrev=False),
}
_PARSERS["schedule delete"].add_argument("schedule_id")


def _json_value(value: Any, name: str) -> Any:
    """A literal as JSON (tuples become lists); sets, bytes and complex numbers are refused."""
    if isinstance(value, tuple | list):
        return [_json_value(v, name) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise UsageError(f"--param {name}: dictionary keys must be strings (JSON objects)")
        return {k: _json_value(v, name) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise UsageError(f"--param {name}: a {type(value).__name__} has no JSON form; use a list, a dict, a number or text")


def parse_param(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` → ``(name, value)``: a Python literal, else the text itself."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"--param needs NAME=VALUE, e.g. --param n=3 (got {text!r})")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"--param {name!r}: a parameter name is a Python identifier (letters, digits, _)")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return name, raw
    return name, _json_value(value, name)


def _outputs(values: list[str]) -> list[str] | None:
    formats = [f.strip().lower() for value in values for f in value.split(",") if f.strip()]
    unknown = [f for f in formats if f not in ("ipynb", "html")]
    if unknown:
        raise UsageError(f"--output {unknown[0]!r}: the formats are ipynb and html (the executed .ipynb is always kept)")
    return ["ipynb", "html"] if "html" in formats else (["ipynb"] if formats else None)


def notebook_payload(args: argparse.Namespace) -> dict[str, Any]:
    """The ``run-notebook`` payload of a parsed ``run-notebook`` / ``schedule`` command line."""
    payload: dict[str, Any] = {"path": workspace_path(args.path)}
    parameters = dict(parse_param(p) for p in args.param)
    if parameters:
        payload["parameters"] = parameters
    outputs = _outputs(args.output)
    if outputs:
        payload["outputs"] = outputs
    if args.timeout is not None:
        payload["timeoutS"] = args.timeout
    if args.kernel:
        payload["kernel"] = args.kernel
    if args.cwd:
        payload["cwd"] = workspace_path(args.cwd)
    return payload


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in (("max_attempts", args.max_attempts), ("max_duration", args.max_duration)) if v is not None}


def default_schedule_id(path: str, cron: str, timezone: str) -> str:
    """A readable id that is the same for the same notebook, cron and zone (re-running a cell
    updates its schedule)."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", os.path.splitext(os.path.basename(path))[0]).strip("-").lower() or "notebook"
    digest = hashlib.sha1(f"{path}\n{cron}\n{timezone}".encode()).hexdigest()[:8]
    return f"notebook-{stem[:40]}-{digest}"


def _local_time(iso_text: Any, timezone: str) -> str:
    if not iso_text:
        return "-"
    try:
        when = datetime.fromisoformat(str(iso_text).replace("Z", "+00:00"))
        return when.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M") + f" {timezone}"
    except (ValueError, ZoneInfoNotFoundError):
        return str(iso_text)


def _describe_payload(payload: Any) -> str:
    if isinstance(payload, dict) and "path" in payload:
        parts = [str(payload["path"])]
        parameters = payload.get("parameters") or {}
        if parameters:
            parts.append(", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in parameters.items()))
        if payload.get("outputs"):
            parts.append("→ " + "+".join(payload["outputs"]))
        return "  ".join(parts)
    return "" if payload is None else json.dumps(payload, ensure_ascii=False, default=str)


class SchedulesTable:
    """``%polaris schedule list``: the schedules (HTML in notebooks, text in terminals)."""

    columns = ("id", "task", "cron", "next run", "last run", "payload")

    def __init__(self, schedules: list[dict[str, Any]]) -> None:
        self.schedules = schedules

    def rows(self) -> list[tuple[str, ...]]:
        return [
            (
                str(s.get("id")),
                str(s.get("taskId")),
                f"{s.get('cron')} {s.get('timezone')}",
                _local_time(s.get("nextRun"), str(s.get("timezone") or "UTC")) if s.get("active", True) else "paused",
                _local_time(s.get("lastTimestamp"), str(s.get("timezone") or "UTC")),
                _describe_payload(s.get("payload"))[:160],
            )
            for s in self.schedules
        ]

    def __repr__(self) -> str:
        if not self.schedules:
            return "No schedules."
        rows = [self.columns, *self.rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.columns))]
        return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)

    def _repr_html_(self) -> str:
        if not self.schedules:
            return "<div style='opacity:.7'>No schedules.</div>"
        head = "".join(f"<th style='text-align:left'>{c}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + f"<td><code>{escape(row[0])}</code></td>" + "".join(f"<td>{escape(c)}</td>" for c in row[1:]) + "</tr>"
            for row in self.rows()
        )
        return f"<table class='pj-schedules'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def run_subcommand(client_factory: Any, name: str, rest: str) -> Any:
    """Run ``%polaris run-notebook …`` / ``%polaris schedule …`` (``client_factory()`` gives the client)."""
    words = _split(rest)
    if name == "schedule" and words[:1] in (["list"], ["delete"]):
        args = _PARSERS[f"schedule {words[0]}"].parse_args(words[1:])
        client: Polaris = client_factory()
        if words[0] == "list":
            return SchedulesTable(client.schedules())
        client.unschedule(args.schedule_id)
        print(f"Deleted schedule {args.schedule_id}")
        return None
    if not words:
        _PARSERS[name].error("which notebook? e.g. " + ('reports/daily.ipynb "0 6 * * *"' if name == "schedule" else "reports/daily.ipynb"))
    args = _PARSERS[name].parse_args(words)
    payload = notebook_payload(args)
    client = client_factory()
    if name == "run-notebook":
        return _run_notebook(client, payload, args)
    return _schedule(client, payload, args)


def _run_notebook(client: Polaris, payload: dict[str, Any], args: argparse.Namespace) -> None:
    run = client.trigger(RUN_NOTEBOOK_TASK_ID, payload, **_options(args))
    print(f"Run {run.id}: {payload['path']} in the background; outputs go to .polaris/jobs/{run.id}/")
    if not args.wait:
        print(f"Follow it with %polaris run {run.id} (or in the Polaris runs dashboard)")
        return
    final = run.wait()
    output = final.get("output")
    output = output if isinstance(output, dict) else {}
    print(f"Run {run.id}: {final['status']} after {final.get('attemptCount', 0)} attempt(s)")
    for fmt, path in (output.get("outputs") or {}).items():
        print(f"  {fmt}: {path}")
    error = final.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        print(f"  error: {message}")


def _schedule(client: Polaris, payload: dict[str, Any], args: argparse.Namespace) -> None:
    cron = " ".join(args.cron)
    schedule_id = args.schedule_id or default_schedule_id(payload["path"], cron, args.tz)
    existed = any(s.get("id") == schedule_id for s in client.schedules())
    created = client.schedule(
        RUN_NOTEBOOK_TASK_ID, cron, timezone=args.tz, payload=payload, external_id=schedule_id, **_options(args)
    )
    verb = "Updated" if existed else "Scheduled"
    print(f"{verb} {payload['path']} as {created['id']}: {created['cron']} {created['timezone']}, "
          f"next run {_local_time(created.get('nextRun'), created['timezone'])}")
    if payload.get("parameters"):
        print("  parameters: " + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in payload["parameters"].items()))
    if client.mode == "local":
        print("  Note: the engine runs in this kernel, so the schedule fires only while this kernel runs; "
              "with the Polaris server extension it lives in the Jupyter server.")
