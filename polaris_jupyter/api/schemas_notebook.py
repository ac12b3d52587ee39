"""Wire schemas for working in notebooks (issues 13 and 15): attached context, kernel variables,
proposed cell edits, inline completions.

Merged into the one component table by ``schemas.py``.
"""

from __future__ import annotations

from polaris_jupyter.agent.completions import COMPLETION_REQUEST_SCHEMA, CancelReason, CompletionMode
from polaris_jupyter.api._schema_kit import (
    BOOL,
    INT,
    NULL_NUM,
    NULL_STR,
    NUM,
    STR,
    Schema,
    array_of,
    nullable,
    obj,
    ref,
)
from polaris_jupyter.jobs import RunStatus

__all__ = ["NOTEBOOK_COMPONENTS"]

NOTEBOOK_COMPONENTS: dict[str, Schema] = {}

# -- notebooks in the chat (issue 13): attached context, kernel variables, proposed cell edits -------
_CONTEXT_KIND: Schema = {"type": "string", "enum": ["file", "selection", "cell", "outputs", "notebook", "variables"]}
_INDEX: Schema = {"type": "integer", "minimum": 0}
NOTEBOOK_COMPONENTS.update({
    "ContextItem": obj(
        {
            "kind": _CONTEXT_KIND,
            "path": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "workspace path"},
            "cellIndex": _INDEX,
            "cellId": {"type": "string", "minLength": 1, "maxLength": 256},
            "source": {"type": "string", "maxLength": 1_000_000,
                       "description": "selection text; a cell's or file's live (unsaved) source; else read on the server"},
            "outputs": array_of({"type": "object"}, maxItems=200,
                                description="nbformat outputs of the cell as shown; else read from the file"),
            "language": {"type": "string", "maxLength": 64},
            "startLine": {"type": "integer", "minimum": 1},
            "endLine": {"type": "integer", "minimum": 1},
            "kernelId": {"type": "string", "minLength": 1, "maxLength": 256},
            "names": array_of({"type": "string", "minLength": 1, "maxLength": 200}, maxItems=100),
            "label": {"type": "string", "maxLength": 200},
        },
        ("kind",), closed=True,
        description="file: path (source = unsaved contents); selection: source (+ path, lines); cell / outputs: "
        "notebook path + cellIndex or cellId; notebook: path; variables: path or kernelId (+ names).",
    ),
    "Attachment": obj(
        {"item": INT, "kind": _CONTEXT_KIND, "label": STR, "path": STR, "cellIndex": INT, "cellId": STR,
         "kernelId": STR, "startLine": INT, "endLine": INT,
         "tokens": {"type": "integer", "description": "what it cost in the context block"},
         "truncated": BOOL, "omitted": {"type": "boolean", "description": "not sent at all (note says why)"},
         "note": STR},
        ("item", "kind", "label", "tokens", "truncated", "omitted"),
        description="One chip of a sent message: what was attached and whether it was cut to the budget.",
    ),
    "AttachedContext": obj(
        {"currentFile": STR, "intent": {"type": "string", "enum": ["explain", "fix"]},
         "attachments": array_of(ref("Attachment")),
         "block": {"type": "string", "description": "the context block the model received with this message"},
         "blockTokens": INT},
        description="The context stored on a user message.",
    ),
    "Variable": obj(
        {"name": STR, "type": STR, "module": STR, "shape": array_of(INT), "length": INT, "dtype": STR, "repr": STR,
         "columns": array_of(obj({"name": STR, "dtype": STR}, ("name", "dtype"))), "columnCount": INT,
         "head": {"type": "string", "description": "the first rows as text"}, "error": STR},
        ("name", "type"),
    ),
    "Variables": obj(
        {"kernelId": STR, "path": NULL_STR, "variables": array_of(ref("Variable")), "total": INT,
         "missing": array_of(STR, description="names asked for that the kernel does not define"),
         "truncated": BOOL, "elapsedMs": NUM},
        ("kernelId", "variables", "missing", "truncated"),
    ),
    "Proposal": obj(
        {"id": STR, "runId": STR, "toolCallId": NULL_STR, "path": STR, "cellIndex": INT, "cellId": NULL_STR,
         "cellType": STR, "beforeSource": STR, "source": STR, "diff": STR, "explanation": STR,
         "status": {"type": "string", "enum": ["pending", "applied", "discarded"]},
         "createdAt": STR, "decidedAt": NULL_STR},
        ("id", "runId", "path", "cellIndex", "source", "diff", "status"),
        description="A cell edit the model proposed; Apply writes it (revertible with its run), Discard drops it.",
    ),
})

# -- inline completions (issue 15): agent/completions*.py ---------------------------------------
_COMPLETION_STATUS = {"type": "string", "enum": [RunStatus.EXECUTING.value, RunStatus.COMPLETED.value,
                                                 RunStatus.CANCELED.value, RunStatus.FAILED.value,
                                                 RunStatus.TIMED_OUT.value]}
NOTEBOOK_COMPONENTS.update({
    "CompletionRequest": COMPLETION_REQUEST_SCHEMA,
    "CompletionLine": obj(
        {"type": {"type": "string", "enum": ["start", "delta", "end", "error"]},
         "id": STR,
         "text": {"type": "string", "description": "delta: the next piece; end: the whole suggestion"},
         "status": {"anyOf": [_COMPLETION_STATUS, INT],
                    "description": "end: the completion's final status; error: the HTTP-style status of the failure"},
         "provider": NULL_STR, "model": NULL_STR,
         "mode": nullable({"type": "string", "enum": [m.value for m in CompletionMode]},
                          description="fim: /completions with suffix; prefix: without; chat: a chat prompt"),
         "cached": BOOL, "editorId": STR,
         "cancelReason": nullable({"type": "string", "enum": [r.value for r in CancelReason]}),
         "error": NULL_STR, "message": STR,
         "firstSuggestionMs": NULL_NUM, "durationMs": NUM},
        ("type",),
        description="One line of the completion stream: start (id, provider, model, mode, cached), delta (text), "
        "end (the completion: status, text, cancelReason, timings) or error (status, message).",
    ),
    "CompletionMetrics": obj(
        {"taskId": STR, "persisted": BOOL, "since": NUM, "counts": {"type": "object"}, "total": INT,
         "successRate": NULL_NUM, "durationP50Ms": NULL_NUM, "durationP95Ms": NULL_NUM,
         "firstSuggestionP50Ms": NULL_NUM, "firstSuggestionP95Ms": NULL_NUM, "latencyWindow": INT,
         "cacheHits": INT, "modes": {"type": "object"}, "cancelReasons": {"type": "object"},
         "feedback": {"type": "object"}, "acceptRate": NULL_NUM, "running": INT, "cacheEntries": INT,
         "fimSupport": array_of({"type": "object"})},
        ("taskId", "counts", "total"),
        description="The in-memory operation record of inline completions, in the shape of a task of GET /metrics.",
    ),
})
