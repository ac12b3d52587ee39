"""The OpenAPI 3.0 document of every Polaris route, served at ``/polaris/api/openapi.json``.

Other parts (chat, generation) add their paths through :func:`add_paths`, so the document is
always the union of what the server actually routes.
"""

from __future__ import annotations

import copy
from typing import Any

from tornado import web

from polaris_jupyter._version import __version__
from polaris_jupyter.jobs import RunStatus
from polaris_jupyter.server.base import PolarisHandler

__all__ = ["OpenApiHandler", "add_paths", "add_schemas", "openapi_document", "ref"]

_EXTRA_PATHS: dict[str, Any] = {}
_EXTRA_SCHEMAS: dict[str, Any] = {}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def add_paths(paths: dict[str, Any]) -> None:
    _EXTRA_PATHS.update(paths)


def add_schemas(schemas: dict[str, Any]) -> None:
    _EXTRA_SCHEMAS.update(schemas)


def json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def ok(schema: dict[str, Any], status: str = "200", description: str = "OK") -> dict[str, Any]:
    return {status: {"description": description, "content": {"application/json": {"schema": schema}}}}


def errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad input", 403: "Not authenticated", 404: "Unknown id", 409: "Conflict", 413: "Body too large"}
    return {
        str(c): {"description": text[c], "content": {"application/json": {"schema": ref("Error")}}}
        for c in (403, *codes)
    }


def path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_NULLABLE_STR = {"type": "string", "nullable": True}
_NULLABLE_NUM = {"type": "number", "nullable": True}
_STATUS = {"type": "string", "enum": [s.value for s in RunStatus]}
_DURATION = {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}]}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}, "reason": _NULLABLE_STR},
    },
    "TriggerOptions": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "delay": _DURATION,
            "ttl": _DURATION,
            "idempotencyKey": {"type": "string", "minLength": 1, "maxLength": 256},
            "idempotencyKeyTTL": _DURATION,
            "idempotencyKeyScope": {"type": "string", "enum": ["global", "run", "attempt"]},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128}, "maxItems": 10},
            "metadata": {"type": "object"},
            "concurrencyKey": {"type": "string", "minLength": 1, "maxLength": 256},
            "queue": {"type": "string", "minLength": 1, "maxLength": 256},
            "maxAttempts": {"type": "integer", "minimum": 1, "maximum": 100},
            "maxDuration": _DURATION,
        },
    },
    "Run": {
        "type": "object",
        "required": ["id", "taskId", "status", "attemptCount", "createdAt", "tags", "metadata"],
        "properties": {
            "id": {"type": "string"},
            "taskId": {"type": "string"},
            "status": _STATUS,
            "payload": {},
            "output": {},
            "error": {"type": "object", "nullable": True},
            "attemptCount": {"type": "integer"},
            "maxAttempts": {"type": "integer"},
            "createdAt": {"type": "string"},
            "updatedAt": _NULLABLE_STR,
            "startedAt": _NULLABLE_STR,
            "finishedAt": _NULLABLE_STR,
            "delayUntil": _NULLABLE_STR,
            "ttlS": _NULLABLE_NUM,
            "idempotencyKey": _NULLABLE_STR,
            "tags": {"type": "array", "items": {"type": "string"}},
            "metadata": {"type": "object"},
            "concurrencyKey": _NULLABLE_STR,
            "queue": {"type": "string"},
            "durationMs": _NULLABLE_NUM,
            "replayedFrom": _NULLABLE_STR,
            "waitingReason": _NULLABLE_STR,
        },
    },
    "Event": {
        "type": "object",
        "required": ["seq", "type", "data", "ts"],
        "properties": {
            "seq": {"type": "integer"},
            "runId": _NULLABLE_STR,
            "runSeq": {"type": "integer", "nullable": True},
            "conversationId": _NULLABLE_STR,
            "type": {"type": "string"},
            "data": {"type": "object"},
            "ts": {"type": "string"},
        },
    },
    "Task": {
        "type": "object",
        "required": ["id", "queue", "retry"],
        "properties": {"id": {"type": "string"}, "queue": {"type": "object"}, "retry": {"type": "object"}},
    },
}

_RUN_ID = [path_param("runId")]
_TASK_ID = [path_param("taskId")]

PATHS: dict[str, Any] = {
    "/polaris/api/v1/tasks": {
        "get": {
            "summary": "List registered tasks",
            "responses": {**ok({"type": "object", "required": ["tasks"], "properties": {"tasks": {"type": "array", "items": ref("Task")}}}), **errors()},
        }
    },
    "/polaris/api/v1/tasks/{taskId}/trigger": {
        "post": {
            "summary": "Trigger a run of a task (Jupyter auth or Authorization: Bearer <internal key>)",
            "parameters": _TASK_ID,
            "requestBody": json_body(
                {"type": "object", "properties": {"payload": {}, "options": ref("TriggerOptions")}}, required=False
            ),
            "responses": {
                **ok({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}, "isCached": {"type": "boolean"}}}),
                **errors(400, 404, 413),
            },
        }
    },
    "/polaris/api/v1/tasks/{taskId}/batch": {
        "post": {
            "summary": "Trigger up to 1,000 runs of a task in one request",
            "parameters": _TASK_ID,
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 1000,
                            "items": {"type": "object", "properties": {"payload": {}, "options": ref("TriggerOptions")}},
                        }
                    },
                }
            ),
            "responses": {
                **ok({"type": "object", "required": ["batchId", "runs"], "properties": {"batchId": {"type": "string"}, "runs": {"type": "array"}}}),
                **errors(400, 404, 413),
            },
        }
    },
    "/polaris/api/v1/runs": {
        "get": {
            "summary": "List runs, newest first, with filters and cursor paging",
            "parameters": [
                query("status", {"type": "string"}, "comma-separated statuses"),
                query("task", {"type": "string"}),
                query("tag", {"type": "string"}),
                query("conversation", {"type": "string"}),
                query("batch", {"type": "string"}),
                query("cursor", {"type": "string"}),
                query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            ],
            "responses": {
                **ok({"type": "object", "required": ["data", "nextCursor"], "properties": {"data": {"type": "array", "items": ref("Run")}, "nextCursor": _NULLABLE_STR}}),
                **errors(400),
            },
        }
    },
    "/polaris/api/v1/runs/{runId}": {
        "get": {"summary": "A run with its attempts, logs and output", "parameters": _RUN_ID, "responses": {**ok(ref("Run")), **errors(404)}}
    },
    "/polaris/api/v1/runs/{runId}/cancel": {
        "post": {"summary": "Cancel a run that is not final", "parameters": _RUN_ID, "responses": {**ok(ref("Run")), **errors(404)}}
    },
    "/polaris/api/v1/runs/{runId}/replay": {
        "post": {
            "summary": "Start a new run with the same payload (resume keeps checkpoints)",
            "parameters": _RUN_ID,
            "requestBody": json_body({"type": "object", "properties": {"resume": {"type": "boolean"}}}, required=False),
            "responses": {**ok({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}), **errors(400, 404)},
        }
    },
    "/polaris/api/v1/runs/{runId}/events": {
        "get": {
            "summary": "Events of a run after a per-run sequence number",
            "parameters": [*_RUN_ID, query("since", {"type": "integer", "minimum": 0}), query("limit", {"type": "integer", "minimum": 1, "maximum": 10000})],
            "responses": {
                **ok({"type": "object", "required": ["events", "lastSeq"], "properties": {"events": {"type": "array", "items": ref("Event")}, "lastSeq": {"type": "integer"}}}),
                **errors(400, 404),
            },
        }
    },
    "/polaris/api/v1/metrics": {
        "get": {
            "summary": "Per-task counts, success rate, duration p50/p95, attempts, retries; hourly series",
            "parameters": [query("task", {"type": "string"}), query("hours", {"type": "integer", "minimum": 0, "maximum": 8760})],
            "responses": {**ok({"type": "object", "required": ["tasks", "series"], "properties": {"tasks": {"type": "array"}, "series": {"type": "array"}}}), **errors(400)},
        }
    },
    "/polaris/api/v1/schedules": {
        "get": {"summary": "List cron schedules", "responses": {**ok({"type": "object", "required": ["data"], "properties": {"data": {"type": "array"}}}), **errors()}},
        "post": {
            "summary": "Create a cron schedule for a task",
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["task", "cron"],
                    "properties": {
                        "task": {"type": "string"},
                        "cron": {"type": "string"},
                        "timezone": {"type": "string"},
                        "externalId": {"type": "string"},
                        "payload": {},
                    },
                }
            ),
            "responses": {**ok({"type": "object"}, "201", "Created"), **errors(400, 404)},
        },
    },
    "/polaris/api/v1/schedules/{scheduleId}": {
        "delete": {"summary": "Delete a schedule", "parameters": [path_param("scheduleId")], "responses": {"204": {"description": "Deleted"}, **errors(404)}}
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "polaris-jupyter",
            "version": __version__,
            "description": "Durable background jobs, chat and project generation for Jupyter. "
            "Events stream over the WebSocket /polaris/api/v1/events?run=&conversation=&since=.",
        },
        "paths": copy.deepcopy({**PATHS, **_EXTRA_PATHS}),
        "components": {
            "schemas": copy.deepcopy({**SCHEMAS, **_EXTRA_SCHEMAS}),
            "securitySchemes": {
                "jupyterToken": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "internalKey": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"jupyterToken": []}, {"internalKey": []}],
    }


class OpenApiHandler(PolarisHandler):
    @web.authenticated
    async def get(self) -> None:
        self.send_json(openapi_document())
