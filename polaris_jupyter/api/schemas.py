"""The wire schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses it), written once.

The route table (``routes.py``) points at these for request bodies and answers; the OpenAPI
document, request validation and the TypeScript types (generated from the document by
``openapi-typescript``) all come from them.
"""

from __future__ import annotations

from typing import Any

from polaris_jupyter.agent.completions import COMPLETION_REQUEST_SCHEMA, CancelReason, CompletionMode
from polaris_jupyter.chat.approvals import ApprovalScope, ApprovalStatus
from polaris_jupyter.chat.store import MessageStatus
from polaris_jupyter.jobs import MAX_BATCH_ITEMS, RunStatus
from polaris_jupyter.tasks.project_kinds import StepAction
from polaris_jupyter.tools.mcp_config import McpStatus, McpTransport
from polaris_jupyter.tools.permissions import PermissionMode, ToolAccess

__all__ = ["COMPONENTS", "MAX_MESSAGE_CHARS", "array_of", "nullable", "obj", "ref"]

Schema = dict[str, Any]

#: The longest user message (characters) a conversation accepts.
MAX_MESSAGE_CHARS = 100_000


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema, **extra: Any) -> Schema:
    """``schema`` or JSON null (``extra``: e.g. a description)."""
    if set(schema) == {"type"} and isinstance(schema["type"], str):
        return {"type": [schema["type"], "null"], **extra}
    return {"anyOf": [schema, {"type": "null"}], **extra}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), *, closed: bool = False, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def array_of(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


STR: Schema = {"type": "string"}
NON_EMPTY: Schema = {"type": "string", "minLength": 1}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
ANY: Schema = {}
NULL_STR = nullable(STR)
NULL_NUM = nullable(NUM)
#: A duration: seconds as a number, or a text such as "10s", "5m", "2h".
DURATION: Schema = {"type": ["number", "string"], "minimum": 0}

_RUN_STATUS: Schema = {"type": "string", "enum": [s.value for s in RunStatus]}
_MESSAGE_STATUS: Schema = {"type": "string", "enum": [s.value for s in MessageStatus]}

COMPONENTS: dict[str, Schema] = {
    "Error": obj({"message": STR, "reason": NULL_STR}, ("message",)),
    "TriggerOptions": obj(
        {
            "delay": DURATION,
            "ttl": DURATION,
            "idempotencyKey": {"type": "string", "minLength": 1, "maxLength": 256},
            "idempotencyKeyTTL": DURATION,
            "idempotencyKeyScope": {"type": "string", "enum": ["global", "run", "attempt"]},
            "tags": array_of({"type": "string", "minLength": 1, "maxLength": 128}, maxItems=10),
            "metadata": {"type": "object"},
            "concurrencyKey": {"type": "string", "minLength": 1, "maxLength": 256},
            "queue": {"type": "string", "minLength": 1, "maxLength": 256},
            "maxAttempts": {"type": "integer", "minimum": 1, "maximum": 100},
            "maxDuration": DURATION,
        },
        closed=True,
    ),
    "TriggerRequest": obj({"payload": ANY, "options": ref("TriggerOptions")}),
    "Triggered": obj({"id": STR, "isCached": BOOL}, ("id", "isCached")),
    "Run": obj(
        {
            "id": STR,
            "taskId": STR,
            "status": _RUN_STATUS,
            "payload": ANY,
            "output": ANY,
            "error": nullable(ref("RunError")),
            "attemptCount": INT,
            "maxAttempts": INT,
            "createdAt": STR,
            "updatedAt": NULL_STR,
            "startedAt": NULL_STR,
            "finishedAt": NULL_STR,
            "delayUntil": NULL_STR,
            "ttlS": NULL_NUM,
            "idempotencyKey": NULL_STR,
            "tags": array_of(STR),
            "metadata": {"type": "object"},
            "concurrencyKey": NULL_STR,
            "queue": STR,
            "durationMs": NULL_NUM,
            "replayedFrom": NULL_STR,
            "waitingReason": NULL_STR,
            "batchId": NULL_STR,
            "parentId": NULL_STR,
            "attempts": array_of(ref("Attempt"), description="only in GET /runs/{runId}"),
            "logs": array_of(ref("LogEntry"), description="only in GET /runs/{runId}"),
        },
        ("id", "taskId", "status", "attemptCount", "createdAt", "tags", "metadata"),
    ),
    "Attempt": obj(
        {"number": INT, "status": STR, "startedAt": NULL_STR, "finishedAt": NULL_STR, "durationMs": NULL_NUM,
         "error": nullable(ref("RunError"))},
        ("number", "status"),
    ),
    "LogEntry": obj(
        {"level": STR, "message": STR, "ts": {"type": ["number", "string"], "description": "epoch seconds"},
         "attempt": nullable(INT), "data": ANY},
        ("level", "message"),
    ),
    "RunError": obj({"message": STR, "name": STR, "stack": STR}, ("message",)),
    "RunPage": obj({"data": array_of(ref("Run")), "nextCursor": NULL_STR}, ("data", "nextCursor")),
    "Event": obj(
        {
            "seq": INT,
            "runId": NULL_STR,
            "runSeq": nullable(INT),
            "conversationId": NULL_STR,
            "type": STR,
            "data": {"type": "object"},
            "ts": STR,
        },
        ("seq", "type", "data", "ts"),
    ),
    "Task": obj(
        {"id": STR, "queue": {"type": "object"}, "retry": {"type": "object"}, "description": NULL_STR},
        ("id", "queue", "retry"),
    ),
    "Schedule": obj(
        {
            "id": STR,
            "taskId": STR,
            "cron": STR,
            "timezone": STR,
            "active": BOOL,
            "declarative": BOOL,
            "lastTimestamp": NULL_STR,
            "nextRun": NULL_STR,
            "payload": ANY,
            "options": nullable(ref("TriggerOptions")),
        },
        ("id", "taskId", "cron", "timezone"),
    ),
    "Conversation": obj(
        {"id": STR, "title": STR, "workspace": STR, "createdAt": STR, "updatedAt": STR,
         "provider": nullable(STR, description="the provider its answers use; null: the default"),
         "model": nullable(STR, description="the model its answers use; null: the provider's default"),
         "permissionMode": nullable(ref("PermissionMode"))},
        ("id", "title", "createdAt", "updatedAt"),
    ),
    "ToolCall": obj(
        {
            "id": STR,
            "name": STR,
            "arguments": {"type": "object"},
            "status": {"type": "string", "enum": ["waiting", "running", "succeeded", "failed"],
                       "description": "waiting: its step is held for an approval"},
            "summary": NULL_STR,
            "error": NULL_STR,
            "durationMs": NULL_NUM,
            "diff": NULL_STR,
            "approval": nullable(ref("ApprovalRef")),
            "offset": {"type": "integer", "minimum": 0,
                       "description": "where the card stands in the message's text: its length in code points "
                                      "when the call started (absent: above the text)"},
        },
        ("id", "name", "arguments", "status"),
    ),
    "Message": obj(
        {
            "id": STR,
            "conversationId": STR,
            "role": {"type": "string", "enum": ["user", "assistant", "tool"]},
            "content": STR,
            "status": _MESSAGE_STATUS,
            "runId": NULL_STR,
            "toolCalls": array_of(ref("ToolCall")),
            "error": {"anyOf": [ref("MessageError"), STR, {"type": "null"}]},
            "usage": nullable({"type": "object", "additionalProperties": nullable(NUM)}),
            "provider": NULL_STR,
            "model": NULL_STR,
            "createdAt": STR,
            "updatedAt": STR,
            "revertedAt": {"type": "string", "description": "set when the answer's file edits were reverted"},
            "context": nullable(ref("AttachedContext")),
        },
        ("id", "conversationId", "role", "content", "status", "toolCalls"),
    ),
    "MessageError": obj(
        {"message": STR, "detail": STR, "attempt": INT, "retrying": BOOL},
        ("message",),
        description="What failed (shown to the user), the technical detail, and whether a retry follows.",
    ),
    "MessageContext": obj(
        {"currentFile": {"type": "string", "maxLength": 4096},
         "items": array_of(ref("ContextItem"), maxItems=20,
                           description="what the user attached (chips): sent to the model in a context block")},
        description="What the user is looking at (the model is told) and what they attached (the model gets it).",
    ),
    "Accepted": obj({"messageId": STR, "runId": STR}, ("messageId", "runId")),
    "ModelConfig": obj(
        {
            "providers": array_of(
                obj({"name": STR, "baseUrl": NULL_STR, "model": NULL_STR, "configured": BOOL}, ("name", "configured"))
            ),
            "active": nullable(obj({"provider": NULL_STR, "model": NULL_STR}, ("provider", "model"))),
            "error": NULL_STR,
            "override": {"type": "object", "additionalProperties": STR},
        },
        ("providers", "active"),
    ),
    "TaskMetrics": obj(
        {
            "taskId": STR,
            "counts": {"type": "object", "additionalProperties": INT},
            "successRate": NULL_NUM,
            "durationP50Ms": NULL_NUM,
            "durationP95Ms": NULL_NUM,
            "attempts": INT,
            "retries": INT,
            "usage": nullable(ref("TaskUsage")),
        },
        ("taskId", "counts", "successRate", "durationP50Ms", "durationP95Ms", "attempts", "retries"),
    ),
    "MetricsBucket": obj(
        {"bucket": {"type": ["string", "number"], "description": "start of the bucket: ISO string or epoch seconds"},
         "runs": INT, "completed": INT, "failed": INT},
        ("bucket", "runs", "completed", "failed"),
    ),
    "Metrics": obj({"tasks": array_of(ref("TaskMetrics")), "series": array_of(ref("MetricsBucket"))}, ("tasks", "series")),
    "ProjectStep": obj(
        {
            "id": STR,
            "title": STR,
            "dependsOn": array_of(STR),
            "action": {"type": "string", "enum": [a.value for a in StepAction]},
            "maxModelSteps": {"type": "integer", "minimum": 0},
            "firstTool": NULL_STR,
            "prompt": STR,
            "minFiles": {"type": "integer", "minimum": 0},
            "files": array_of(STR),
            "expects": array_of(STR, description="globs some file of the project must match when the step is done"),
        },
        ("id", "title", "dependsOn", "action", "maxModelSteps"),
    ),
    "ProjectKind": obj(
        {"id": STR, "title": STR, "description": STR, "steps": array_of(ref("ProjectStep"))},
        ("id", "title", "steps"),
    ),
    "Health": obj(
        {
            "ok": BOOL,
            "version": STR,
            "activeRuns": INT,
            "lastEventSeq": INT,
            "storeBytesWritten": INT,
            "parts": array_of(STR),
            "taskModuleErrors": array_of(
                obj({"module": STR, "error": STR, "traceback": STR}, ("module", "error")),
                description="task modules (PolarisConfig.task_modules) that failed to import; the rest work",
            ),
        },
        ("ok", "version", "lastEventSeq"),
    ),
}

# -- steering the model (issue 14): model lists, keys, rules, usage and cost ------------------------
COMPONENTS.update({
    "ProviderModels": obj(
        {"name": STR, "baseUrl": STR, "defaultModel": NULL_STR,
         "models": array_of(obj({"id": STR}, ("id",))),
         "error": nullable(STR, description="why the provider could not list its models (never a key)"),
         "fetchedAt": nullable(NUM, description="epoch seconds of the provider's answer"),
         "truncated": BOOL},
        ("name", "models", "error"),
    ),
    "ModelList": obj(
        {"providers": array_of(ref("ProviderModels")),
         "default": obj({"provider": NULL_STR, "model": NULL_STR, "error": NULL_STR}, ("provider", "model"),
                        description="what a conversation without its own choice is answered with")},
        ("providers", "default"),
    ),
    "ProviderKey": obj(
        {
            "provider": STR,
            "apiKey": obj({"set": BOOL, "last4": NULL_STR, "source": nullable({"type": "string", "enum": ["env", "stored"]})},
                          ("set", "last4", "source"), description="the key in use: never the key itself"),
            "baseUrl": NULL_STR,
            "baseUrlSource": {"type": "string", "enum": ["env", "stored", "default"]},
            "stored": obj({"apiKey": BOOL, "last4": NULL_STR, "baseUrl": NULL_STR}, ("apiKey",),
                          description="what the settings hold (the environment may win over it)"),
            "envKey": STR,
            "envBaseUrl": STR,
            "envWins": array_of(STR, description="environment variables that are set and win over a stored value"),
            "updatedAt": NULL_NUM,
        },
        ("provider", "apiKey", "baseUrlSource", "stored", "envKey", "envBaseUrl", "envWins"),
    ),
    "KeyStatus": obj(
        {"providers": array_of(ref("ProviderKey")), "storage": {"type": "string", "enum": ["file", "keyring"]},
         "note": NULL_STR},
        ("providers", "storage"),
    ),
    "RuleFile": obj(
        {"path": STR, "chars": INT, "includedChars": INT, "truncated": BOOL, "note": NULL_STR},
        ("path", "chars", "includedChars", "truncated"),
    ),
    "Rules": obj(
        {"files": array_of(ref("RuleFile")), "maxChars": INT, "includedChars": INT, "truncated": BOOL},
        ("files", "maxChars", "includedChars", "truncated"),
        description="AGENTS.md and .polaris/rules/*.md as the next message's system prompt gets them",
    ),
    "TaskUsage": obj(
        {"runs": INT, "promptTokens": INT, "completionTokens": INT,
         "costUsd": nullable(NUM, description="estimated, summed over the runs with a known price; null: none known"),
         "unpricedRuns": INT},
        ("runs", "promptTokens", "completionTokens", "costUsd", "unpricedRuns"),
        description="model usage the task's runs reported in their output (output.usage)",
    ),
})

# -- notebooks in the chat (issue 13): attached context, kernel variables, proposed cell edits -------
_CONTEXT_KIND: Schema = {"type": "string", "enum": ["file", "selection", "cell", "outputs", "notebook", "variables"]}
_INDEX: Schema = {"type": "integer", "minimum": 0}
COMPONENTS.update({
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

# -- approvals (issue 14): permission modes, tool calls held for the user's consent ---------------
_APPROVAL_STATUS: Schema = {"type": "string", "enum": [s.value for s in ApprovalStatus]}
_APPROVAL_SCOPE: Schema = {"type": "string", "enum": [s.value for s in ApprovalScope]}
COMPONENTS.update({
    "PermissionMode": {"type": "string", "enum": [m.value for m in PermissionMode],
                       "description": "ask: edits and commands wait for approval; auto-edit: only commands do; "
                       "auto: nothing asks; plan: edit and command tools are not offered"},
    "Approval": obj(
        {"id": STR, "runId": STR, "messageId": NULL_STR, "conversationId": NULL_STR, "toolCallId": STR,
         "toolName": STR, "arguments": {"type": "object"},
         "diff": nullable(STR, description="what an edit would change (unified diff)"),
         "access": {"type": "string", "enum": [a.value for a in ToolAccess]},
         "status": _APPROVAL_STATUS, "scope": nullable(_APPROVAL_SCOPE),
         "reason": nullable(STR, description="why it expired"),
         "createdAt": STR, "expiresAt": NULL_STR, "decidedAt": NULL_STR},
        ("id", "runId", "toolCallId", "toolName", "arguments", "status", "createdAt"),
        description="A tool call held for the user's consent; its run waits (WAITING) holding no worker.",
    ),
    "ApprovalRef": obj(
        {"id": STR, "status": _APPROVAL_STATUS, "scope": nullable(_APPROVAL_SCOPE), "expiresAt": NULL_STR,
         "reason": NULL_STR},
        ("id", "status"),
        description="The approval of a tool call, as its card carries it.",
    ),
})

# -- tools and MCP servers (issue 14 item 5): tools/mcp.py ---------------------------------------
COMPONENTS.update({
    "McpTool": obj(
        {"name": {"type": "string", "description": "as the model sees it: server__tool"},
         "tool": {"type": "string", "description": "the server's own name of the tool"},
         "server": STR, "description": STR,
         "readOnly": {"type": "boolean", "description": "the server marks it read-only (readOnlyHint): it never asks"}},
        ("name", "tool", "server", "description", "readOnly"),
    ),
    "McpServer": obj(
        {"name": STR,
         "transport": {"type": "string", "enum": [t.value for t in McpTransport]},
         "target": {"type": "string", "description": "the command line or the URL (env and header values are never shown)"},
         "source": {"type": "string", "description": "the mcp.json the entry comes from"},
         "status": {"type": "string", "enum": [s.value for s in McpStatus]},
         "error": nullable(STR, description="why it failed (a bad entry, the program's stderr, the connection)"),
         "serverInfo": nullable(STR, description="name and version the server reported"),
         "connections": {"type": "integer", "description": "sessions opened so far (more than 1: it was restarted)"},
         "connectMs": nullable(NUM, description="how long the last connect took, start to tools listed"),
         "retryAt": nullable(NUM, description="epoch seconds of the next restart of a failed server"),
         "tools": array_of(ref("McpTool"))},
        ("name", "transport", "target", "source", "status", "error", "tools"),
    ),
    "McpServers": obj(
        {"servers": array_of(ref("McpServer")),
         "problems": array_of(obj({"path": STR, "error": STR, "server": NULL_STR}, ("path", "error")),
                              description="config files (or entries, with server) that could not be used"),
         "configPaths": array_of(STR, description="the files read, in order; later entries of a name win")},
        ("servers", "problems", "configPaths"),
    ),
    "ToolInfo": obj(
        {"name": STR, "description": STR, "group": STR,
         "access": {"type": "string", "enum": [a.value for a in ToolAccess],
                    "description": "read tools never ask; edit and execute tools ask as the permission mode says"},
         "server": nullable(STR, description="the MCP server it comes from; null for a built-in tool")},
        ("name", "description", "group", "access", "server"),
    ),
})

# -- inline completions (issue 15): agent/completions*.py ---------------------------------------
_COMPLETION_STATUS = {"type": "string", "enum": [RunStatus.EXECUTING.value, RunStatus.COMPLETED.value,
                                                 RunStatus.CANCELED.value, RunStatus.FAILED.value,
                                                 RunStatus.TIMED_OUT.value]}
COMPONENTS.update({
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

BATCH_REQUEST: Schema = obj(
    {"items": array_of(ref("TriggerRequest"), minItems=1, maxItems=MAX_BATCH_ITEMS)}, ("items",)
)
