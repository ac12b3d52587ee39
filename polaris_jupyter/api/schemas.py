"""The wire schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses it), written once.

The route table (``routes.py``) points at these for request bodies and answers; the OpenAPI
document, request validation and the TypeScript types (generated from the document by
``openapi-typescript``) all come from them. This module holds the core (runs, chat, generation,
health) and assembles the one table with the families of ``schemas_steering.py`` and
``schemas_notebook.py``; a name defined twice is an error at import.
"""

from __future__ import annotations

from polaris_jupyter.api._schema_kit import (
    ANY,
    BOOL,
    DURATION,
    INT,
    NON_EMPTY,
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
from polaris_jupyter.api.schemas_notebook import NOTEBOOK_COMPONENTS
from polaris_jupyter.api.schemas_steering import STEERING_COMPONENTS
from polaris_jupyter.chat.store import MessageStatus
from polaris_jupyter.jobs import MAX_BATCH_ITEMS, RunStatus
from polaris_jupyter.tasks.project_kinds import StepAction

__all__ = ["BATCH_REQUEST", "BOOL", "COMPONENTS", "MAX_MESSAGE_CHARS", "NON_EMPTY", "STR", "array_of", "nullable", "obj",
           "ref"]

#: The longest user message (characters) a conversation accepts.
MAX_MESSAGE_CHARS = 100_000


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

for _family in (STEERING_COMPONENTS, NOTEBOOK_COMPONENTS):
    _twice = sorted(set(_family) & set(COMPONENTS))
    if _twice:
        raise RuntimeError(f"wire schemas defined twice: {', '.join(_twice)}")
    COMPONENTS.update(_family)

BATCH_REQUEST: Schema = obj(
    {"items": array_of(ref("TriggerRequest"), minItems=1, maxItems=MAX_BATCH_ITEMS)}, ("items",)
)
