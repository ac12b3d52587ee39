"""Views for cell outputs: a streamed answer, runs, tasks, config.

A streamed answer's bundle carries its state as ``application/vnd.polaris.answer+json``, which
the lab extension draws with the chat sidebar's renderer; the ``text/html`` and ``text/plain``
here are the fallbacks for other front ends, and the terminal prints the same lines.
Model text and file contents can carry HTML, so markdown is rendered with raw HTML escaped and
unsafe links dropped (mistune), and everything else goes through :func:`html.escape`.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from typing import Any

from polaris_jupyter.kernel._answer import ANSWER_MIME_TYPE, ANSWER_PAYLOAD_VERSION, AnswerState

__all__ = ["RunsTable", "TasksTable", "TerminalAnswer", "answer_bundle", "answer_html", "answer_text", "config_bundle", "markdown_html"]

_STATUS_COLOR = {
    "COMPLETED": "#1a7f37",
    "FAILED": "#cf222e",
    "CRASHED": "#cf222e",
    "TIMED_OUT": "#cf222e",
    "CANCELED": "#6e7781",
    "EXPIRED": "#6e7781",
    "EXECUTING": "#0969da",
    "WAITING": "#bf8700",
    "REATTEMPTING": "#9a6700",
    "QUEUED": "#6e7781",
    "DELAYED": "#8250df",
}
_TOOL_ICON = {"waiting": "⏸", "running": "◔", "succeeded": "✓", "failed": "✗"}
_MESSAGE_LABEL = {"pending": "waiting…", "processing": "thinking…", "completed": "", "failed": "failed", "cancelled": "stopped"}
_BOX = "font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;line-height:1.45;"


def markdown_html(text: str) -> str:
    try:
        import mistune
    except ImportError:  # pragma: no cover - mistune ships with jupyter_server's nbconvert
        return f"<pre style='white-space:pre-wrap'>{escape(text)}</pre>"
    render = mistune.create_markdown(escape=True, plugins=["strikethrough", "table"])
    return str(render(text))


def _short_json(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _duration(ms: Any) -> str:
    if not isinstance(ms, (int, float)):
        return ""
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or "")
    return "" if error is None else str(error)


def _tool_html(call: dict[str, Any]) -> str:
    status = str(call.get("status") or "running")
    color = {"succeeded": "#1a7f37", "failed": "#cf222e"}.get(status, "#0969da")
    head = (
        f"<span style='color:{color}'>{_TOOL_ICON.get(status, '•')}</span> "
        f"<b>{escape(str(call.get('name') or 'tool'))}</b> "
        f"<code style='opacity:.8'>{escape(_short_json(call.get('arguments') or {}, 120))}</code> "
        f"<span style='opacity:.7'>{escape(status)} {escape(_duration(call.get('durationMs')))}</span>"
    )
    body = ""
    if call.get("summary"):
        body += f"<div style='opacity:.85'>{escape(str(call['summary']))}</div>"
    if call.get("error"):
        body += f"<div style='color:#cf222e'>{escape(_error_text(call['error']))}</div>"
    if _pending_approval(call):
        body += f"<div style='color:#bf8700'>{escape(_pending_approval(call))}</div>"
    if call.get("diff"):
        lines = []
        for line in str(call["diff"]).splitlines()[:200]:
            tint = "#1a7f37" if line.startswith("+") else "#cf222e" if line.startswith("-") else "inherit"
            lines.append(f"<span style='color:{tint}'>{escape(line)}</span>")
        body += "<pre style='margin:4px 0;max-height:240px;overflow:auto'>" + "\n".join(lines) + "</pre>"
    box = "border:1px solid var(--jp-border-color2,#ddd);border-radius:6px;padding:4px 8px;margin:4px 0;"
    if body:
        return f"<details class='pj-cell-tool' style='{box}'><summary>{head}</summary>{body}</details>"
    return f"<div class='pj-cell-tool' style='{box}'>{head}</div>"


def _pending_approval(call: dict[str, Any]) -> str:
    """How to answer a call held for approval (from a notebook or a terminal), else ''."""
    approval = call.get("approval") if isinstance(call.get("approval"), dict) else None
    if approval is None or approval.get("status") != "pending":
        return ""
    return f"waiting for your approval: %polaris approve {approval.get('id')} (or deny)"


def _tool_line(call: dict[str, Any]) -> str:
    summary = f" — {call['summary']}" if call.get("summary") else ""
    pending = f" — {_pending_approval(call)}" if _pending_approval(call) else ""
    return (f"[{call.get('status') or 'running'}] {call.get('name')} {_short_json(call.get('arguments') or {}, 100)}"
            f"{summary}{pending}")


def _failure_note(state: AnswerState) -> str:
    """What a failed or stopped answer says (the same words as the lab renderer)."""
    if state.status not in ("failed", "cancelled"):
        return ""
    note = "Polaris could not finish this answer." if state.status == "failed" else "This answer was stopped."
    return f"{note} {_error_text(state.error)}".strip()


def answer_text(state: AnswerState) -> str:
    """The answer as plain text (``text/plain`` and what a terminal shows at the end)."""
    label = _MESSAGE_LABEL.get(state.status, state.status)
    who = " · ".join(x for x in (state.provider, state.model) if x)
    lines = [f"Polaris{f' ({who})' if who else ''}{f' — {label}' if label else ''}"]
    lines += [f"  {_tool_line(call)}" for call in state.tool_calls.values()]
    if state.content:
        lines.append(state.content)
    if _failure_note(state):
        lines.append(f"{_failure_note(state)}  (retry with %polaris retry)")
    return "\n".join(lines)


def answer_html(state: AnswerState) -> str:
    """The answer as HTML, for front ends without the lab extension (VS Code, nbviewer)."""
    label = _MESSAGE_LABEL.get(state.status, state.status)
    who = " · ".join(x for x in (state.provider, state.model) if x)
    badge = f" <span style='opacity:.7'>{escape(label)}</span>" if label else ""
    parts = [
        f"<div class='pj-cell-answer pj-cell-answer-{escape(state.status)}' style='{_BOX}'>",
        f"<div style='font-weight:600'>Polaris{badge}"
        + (f" <span style='opacity:.6;font-weight:400'>{escape(who)}</span>" if who else "")
        + "</div>",
        *(_tool_html(c) for c in state.tool_calls.values()),
    ]
    if state.content:
        parts.append(f"<div class='pj-cell-answer-body'>{markdown_html(state.content)}</div>")
    elif not state.final:
        parts.append("<div style='opacity:.6'>…</div>")
    if _failure_note(state):
        parts.append(
            f"<div style='color:#cf222e'>{escape(_failure_note(state))} "
            "<span style='opacity:.7'>(retry with <code>%polaris retry</code>)</span></div>"
        )
    parts.append("</div>")
    return "".join(parts)


def answer_bundle(state: AnswerState) -> dict[str, Any]:
    """The mimebundle of a streamed answer: the state for the lab renderer, plus fallbacks."""
    return {
        ANSWER_MIME_TYPE: {"version": ANSWER_PAYLOAD_VERSION, "message": state.to_json()},
        "text/plain": answer_text(state),
        "text/html": answer_html(state),
    }


class TerminalAnswer:
    """A streamed answer in a terminal: text printed as it grows, a line per tool call."""

    def __init__(self) -> None:
        self.printed = 0
        self.tools: dict[str, str] = {}

    def show(self, state: AnswerState) -> None:
        print("Polaris:", flush=True)

    def update(self, _handle: Any, state: AnswerState) -> None:
        for call_id, call in state.tool_calls.items():
            status = str(call.get("status") or "running")
            if self.tools.get(call_id) != status and status != "running":
                print(f"\n  {_tool_line(call)}", flush=True)
            self.tools[call_id] = status
        if len(state.content) < self.printed:  # a retry started the text again
            print()
            self.printed = 0
        print(state.content[self.printed :], end="", flush=True)
        self.printed = len(state.content)
        if state.final:
            label = _MESSAGE_LABEL.get(state.status, state.status)
            print(f"\n[{label}] {_error_text(state.error)}".rstrip() if label else "", flush=True)


def _when(iso_text: Any) -> str:
    if not iso_text:
        return ""
    try:
        return datetime.fromisoformat(str(iso_text).replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(iso_text)


def _note(run: dict[str, Any]) -> str:
    if run.get("waitingReason"):
        return f"waiting: {run['waitingReason']}"
    return _error_text(run.get("error"))


class RunsTable:
    """``%polaris runs``: recent runs as a table (HTML in notebooks, text in terminals)."""

    columns = ("id", "task", "status", "attempts", "created", "duration", "note")

    def __init__(self, runs: list[dict[str, Any]]) -> None:
        self.runs = runs

    def rows(self) -> list[tuple[str, ...]]:
        return [
            (
                str(r.get("id")),
                str(r.get("taskId")),
                str(r.get("status")),
                f"{r.get('attemptCount', 0)}/{r.get('maxAttempts', '?')}",
                _when(r.get("createdAt")),
                _duration(r.get("durationMs")),
                _note(r)[:120],
            )
            for r in self.runs
        ]

    def __repr__(self) -> str:
        if not self.runs:
            return "No runs."
        rows = [self.columns, *self.rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.columns))]
        return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)

    def _repr_html_(self) -> str:
        if not self.runs:
            return f"<div style='{_BOX}opacity:.7'>No runs.</div>"
        head = "".join(f"<th style='text-align:left'>{c}</th>" for c in self.columns)
        body = []
        for row in self.rows():
            color = _STATUS_COLOR.get(row[2], "inherit")
            cells = [f"<td><code>{escape(row[0])}</code></td>", f"<td>{escape(row[1])}</td>",
                     f"<td style='color:{color};font-weight:600'>{escape(row[2])}</td>",
                     *(f"<td>{escape(cell)}</td>" for cell in row[3:])]
            body.append("<tr>" + "".join(cells) + "</tr>")
        return f"<table class='pj-runs' style='{_BOX}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class TasksTable:
    """``%polaris tasks``: the tasks this engine knows."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = tasks

    def rows(self) -> list[tuple[str, str, str, str]]:
        out = []
        for t in self.tasks:
            retry = t.get("retry") or {}
            queue = t.get("queue") or {}
            out.append((str(t.get("id")), str(queue.get("name", "")), str(retry.get("maxAttempts", "")), str(t.get("description") or "")))
        return out

    def __repr__(self) -> str:
        if not self.tasks:
            return "No tasks."
        rows = [("id", "queue", "max attempts", "description"), *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{c}</th>" for c in ("id", "queue", "max attempts", "description"))
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in self.rows())
        return f"<table style='{_BOX}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def config_bundle(config: dict[str, Any], where: str) -> dict[str, str]:
    active = config.get("active") or {}
    lines = [f"Engine: {where}", f"Active: {active.get('provider') or '-'} · {active.get('model') or '-'}"]
    if config.get("error"):
        lines.append(f"Problem: {config['error']}")
    lines.append("Providers (in fallback order):")
    rows = []
    for p in config.get("providers") or []:
        mark = "configured" if p.get("configured") else "not configured"
        lines.append(f"  {p.get('name'):<11} {mark:<15} {p.get('model') or ''}  {p.get('baseUrl') or ''}")
        rows.append(
            f"<tr><td>{escape(str(p.get('name')))}</td><td>{'✓' if p.get('configured') else '—'}</td>"
            f"<td>{escape(str(p.get('model') or ''))}</td><td><code>{escape(str(p.get('baseUrl') or ''))}</code></td></tr>"
        )
    problem = f"<div style='color:#cf222e'>{escape(str(config['error']))}</div>" if config.get("error") else ""
    html = (
        f"<div style='{_BOX}'><div><b>Engine:</b> {escape(where)}</div>"
        f"<div><b>Active:</b> {escape(str(active.get('provider') or '-'))} · {escape(str(active.get('model') or '-'))}</div>{problem}"
        "<table><thead><tr><th>provider</th><th>configured</th><th>model</th><th>base URL</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    return {"text/plain": "\n".join(lines), "text/html": html}
