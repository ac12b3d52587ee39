"""Every Polaris route, described once.

A :class:`Route` names its method, path template, the :class:`~polaris_jupyter.api.PolarisAPI`
method that serves it, its query parameters, request body and answer schemas. From this one
table come the tornado handlers (``polaris_jupyter.server.handlers``), request validation
(``validate.py``), the OpenAPI document (``openapi.py``, and from it the TypeScript types) and
the remote kernel backend's requests — so the copies cannot drift.

Path templates use OpenAPI's ``{name}`` form; each path parameter and query parameter reaches
the API method as a keyword argument of the same name in snake_case (``runId`` → ``run_id``),
and a validated request body as ``body``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from polaris_jupyter.agent.completions_metrics import FEEDBACK_EVENTS
from polaris_jupyter.api.schemas import (
    BATCH_REQUEST,
    BOOL,
    MAX_MESSAGE_CHARS,
    NON_EMPTY,
    STR,
    array_of,
    nullable,
    obj,
    ref,
)

__all__ = ["API_PREFIX", "ROUTES", "Param", "Route", "route", "route_for", "snake_case"]

API_PREFIX = "/polaris/api/v1"
Schema = dict[str, Any]


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class Param:
    """A query parameter: its wire name, schema and meaning."""

    name: str
    schema: Schema
    description: str = ""

    @property
    def arg(self) -> str:
        return snake_case(self.name)


@dataclass(frozen=True)
class Route:
    """One operation of the REST surface (or, with ``websocket``, a WebSocket endpoint; with
    ``stream``, an answer of NDJSON lines served by a dedicated handler class)."""

    op: str
    method: str
    path: str
    summary: str
    response: Schema | None = None
    status: int = 200
    body: Schema | None = None
    body_required: bool = True
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    description: str = ""
    websocket: bool = False
    stream: bool = False
    tag: str = "runs"
    path_params: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path_params", tuple(re.findall(r"\{(\w+)\}", self.path)))

    @property
    def pattern(self) -> str:
        """The tornado URL pattern: each ``{name}`` becomes a named group of one path segment."""
        return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path)

    def url(self, **params: Any) -> str:
        """The path with its parameters filled in (for clients)."""
        from urllib.parse import quote

        return re.sub(r"\{(\w+)\}", lambda m: quote(str(params[snake_case(m.group(1))]), safe=""), self.path)


_TEXT = {"type": "string", "minLength": 1, "maxLength": 20_000}
_CONTENT = {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_CHARS}
_TITLE = {"type": "string", "maxLength": 10_000}
_LIST_OF = {"Run": ref("RunPage")}
_MODEL_NAME = {"type": "string", "minLength": 1, "maxLength": 300}


def _data(schema: Schema) -> Schema:
    return obj({"data": array_of(schema)}, ("data",))


def route(op: str, method: str, path: str, summary: str, **kw: Any) -> Route:
    return Route(op=op, method=method, path=API_PREFIX + path, summary=summary, **kw)


ROUTES: tuple[Route, ...] = (
    # -- service --------------------------------------------------------------------------------
    route("health", "GET", "/health", "Engine status, version, last event sequence, task-module import errors",
          response=ref("Health"), tag="service"),
    Route("openapi", "GET", "/polaris/api/openapi.json", "This document", response={"type": "object"}, tag="service"),
    route("events", "GET", "/events", "WebSocket: every event (or one run's / conversation's), resumable by since",
          websocket=True, tag="service",
          query=(Param("run", STR), Param("conversation", STR), Param("since", {"type": "integer", "minimum": 0, "maximum": 2**62})),
          description="Each text frame is one Event as JSON. Reconnect with since=<last seq seen> to miss nothing; "
          "a client that cannot keep up is closed with code 4000 and resumes the same way."),
    # -- tasks and runs ---------------------------------------------------------------------------
    route("list_tasks", "GET", "/tasks", "List registered tasks",
          response=obj({"tasks": array_of(ref("Task"))}, ("tasks",))),
    route("trigger", "POST", "/tasks/{taskId}/trigger",
          "Trigger a run of a task (Jupyter auth or Authorization: Bearer <internal key>)",
          body=ref("TriggerRequest"), body_required=False, response=ref("Triggered"), errors=(400, 404, 413)),
    route("batch_trigger", "POST", "/tasks/{taskId}/batch", "Trigger up to 1,000 runs of a task in one request",
          body=BATCH_REQUEST,
          response=obj({"batchId": STR, "runs": array_of(ref("Triggered"))}, ("batchId", "runs")),
          errors=(400, 404, 413)),
    route("list_runs", "GET", "/runs", "List runs, newest first, with filters and cursor paging",
          query=(
              Param("status", STR, "comma-separated statuses"),
              Param("task", STR),
              Param("tag", STR),
              Param("conversation", STR),
              Param("batch", STR),
              Param("cursor", STR),
              Param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
          ),
          response=_LIST_OF["Run"], errors=(400,)),
    route("get_run", "GET", "/runs/{runId}", "A run with its attempts, logs and output",
          response=ref("Run"), errors=(404,)),
    route("cancel_run", "POST", "/runs/{runId}/cancel", "Cancel a run that is not final",
          response=ref("Run"), errors=(404,)),
    route("replay_run", "POST", "/runs/{runId}/replay",
          "Start a new run with the same payload (resume keeps checkpoints)",
          body=obj({"resume": BOOL}), body_required=False,
          response=obj({"id": STR}, ("id",)), errors=(400, 404, 409)),
    route("run_events", "GET", "/runs/{runId}/events", "Events of a run after a per-run sequence number",
          query=(Param("since", {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0}),
                 Param("limit", {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1000})),
          response=obj({"events": array_of(ref("Event")), "lastSeq": {"type": "integer"}}, ("events", "lastSeq")),
          errors=(400, 404)),
    route("revert_run", "POST", "/runs/{runId}/revert", "Undo every file edit a run made",
          description="Refused with 409 (nothing changed) when a file changed after the run; "
          "`force` overwrites those changes.",
          body=obj({"force": BOOL}), body_required=False,
          response=obj({"reverted": array_of(STR)}, ("reverted",)), errors=(400, 404, 409), tag="chat"),
    route("run_edits", "GET", "/runs/{runId}/edits", "File edits of a run with their diffs",
          response=obj({"edits": array_of({"type": "object"})}, ("edits",)), errors=(404,), tag="chat"),
    route("metrics", "GET", "/metrics",
          "Per-task counts, success rate, duration p50/p95, attempts, retries; hourly series",
          query=(Param("task", STR), Param("hours", {"type": "integer", "minimum": 0, "maximum": 8760, "default": 0})),
          response=ref("Metrics"), errors=(400,)),
    route("list_schedules", "GET", "/schedules", "List cron schedules", response=_data(ref("Schedule"))),
    route("create_schedule", "POST", "/schedules", "Create a cron schedule for a task",
          description="`payload` is what the task receives (inside the firing's envelope, under `payload`); a "
          "run-notebook payload is checked now (400). `options` are the trigger options of every firing "
          "(not delay or the idempotency key, which each firing sets).",
          body=obj({"task": NON_EMPTY, "cron": NON_EMPTY, "timezone": NON_EMPTY, "externalId": NON_EMPTY,
                    "payload": {}, "options": ref("TriggerOptions")}, ("task", "cron")),
          response=ref("Schedule"), status=201, errors=(400, 404)),
    route("delete_schedule", "DELETE", "/schedules/{scheduleId}", "Delete a schedule",
          description="409 for a schedule declared in code (it would be declared again at the next start).",
          status=204, errors=(400, 404, 409)),
    route("kernel_tasks", "GET", "/kernel-tasks",
          "Kernels connected as task workers, the tasks they define, and tasks waiting for a kernel",
          response=obj({"kernels": array_of({"type": "object"}), "waiting": array_of({"type": "object"})},
                       ("kernels", "waiting"))),
    route("kernel_worker", "GET", "/kernel-worker",
          "WebSocket for kernels that define tasks: they claim task ids and run their attempts",
          websocket=True, tag="service",
          query=(Param("kernel", STR), Param("name", STR))),
    # -- chat -----------------------------------------------------------------------------------
    route("list_conversations", "GET", "/conversations", "List conversations",
          response=_data(ref("Conversation")), tag="chat"),
    route("create_conversation", "POST", "/conversations", "Create a conversation",
          body=obj({"title": _TITLE}), body_required=False,
          response=ref("Conversation"), status=201, errors=(400,), tag="chat"),
    route("get_conversation", "GET", "/conversations/{conversationId}", "A conversation",
          response=ref("Conversation"), errors=(404,), tag="chat"),
    route("update_conversation", "PATCH", "/conversations/{conversationId}",
          "Rename a conversation, choose the provider and model its answers use, or its permission mode",
          description="`provider`/`model` apply from the next message; null (both) goes back to the default. "
          "A choice that cannot answer now (provider not configured) is refused with 400 and the reason.",
          body=obj({"title": _TITLE, "provider": nullable(NON_EMPTY), "model": nullable(_MODEL_NAME),
                    "permissionMode": ref("PermissionMode")}, minProperties=1),
          response=ref("Conversation"), errors=(400, 404), tag="chat"),
    route("delete_conversation", "DELETE", "/conversations/{conversationId}",
          "Delete a conversation and its messages", status=204, errors=(404, 409), tag="chat"),
    route("list_messages", "GET", "/conversations/{conversationId}/messages", "Messages of a conversation",
          response=_data(ref("Message")), errors=(404,), tag="chat"),
    route("post_message", "POST", "/conversations/{conversationId}/messages",
          "Post a user message: triggers process-message and returns at once (409 while busy)",
          body=obj({"content": _CONTENT, "context": ref("MessageContext"),
                    "intent": {"type": "string", "enum": ["explain", "fix"],
                               "description": "Explain error / Fix with Polaris: needs a cell item in context"}},
                   ("content",)),
          response=ref("Accepted"), status=202, errors=(400, 404, 409, 413), tag="chat"),
    route("cancel_message", "POST", "/messages/{messageId}/cancel", "Cancel an answer in progress",
          response=ref("Message"), errors=(404,), tag="chat"),
    route("retry_message", "POST", "/messages/{messageId}/retry", "Retry a failed or cancelled answer",
          response=ref("Accepted"), status=202, errors=(400, 404, 409), tag="chat"),
    route("get_config", "GET", "/config", "Model providers and the active one", response=ref("ModelConfig"),
          tag="chat"),
    route("set_model", "PUT", "/config", "Choose the provider and/or model",
          body=obj({"provider": NON_EMPTY, "model": NON_EMPTY}, minProperties=1),
          response=ref("ModelConfig"), errors=(400,), tag="chat"),
    # -- generation -------------------------------------------------------------------------------
    route("list_project_kinds", "GET", "/project-kinds",
          "Project kinds a generation can use, with their steps and dependencies",
          response=obj({"kinds": array_of(ref("ProjectKind"))}, ("kinds",)), tag="generation"),
    route("get_project_kind", "GET", "/project-kinds/{kindId}", "One project kind with its step prompts",
          response=ref("ProjectKind"), errors=(404,), tag="generation"),
    route("generate", "POST", "/generate",
          "Start generating a project into a folder of the workspace; returns the run id at once",
          description="400: bad input, unknown kind or folder outside the workspace; 409: folder not empty "
          "without overwrite, or already being generated.",
          body=obj(
              {
                  "description": _TEXT,
                  "kind": NON_EMPTY,
                  "path": NON_EMPTY,
                  "overwrite": BOOL,
                  "plan": {"type": "object", "description": "A custom kind (same shape as GET project-kinds/{kindId}) "
                           "whose id equals kind; for kinds this server does not know"},
              },
              ("description", "kind", "path"),
          ),
          response=obj({"runId": STR}, ("runId",)), status=202, errors=(400, 409), tag="generation"),
    # -- steering the model (issue 14): model picker, keys, rules ---------------------------------
    route("list_models", "GET", "/models", "The models of every configured provider, by provider",
          description="Each provider's GET /models, asked concurrently with a short time limit and cached "
          "(PolarisConfig.models_cache_ttl_s; refresh=true asks again). A provider that fails is listed with "
          "its error and no models.",
          query=(Param("refresh", BOOL, "ask every provider again instead of using the cache"),),
          response=ref("ModelList"), tag="chat"),
    route("list_keys", "GET", "/keys", "Which provider keys and base URLs are set, and where from (never a key)",
          response=ref("KeyStatus"), tag="chat"),
    route("put_key", "PUT", "/keys/{provider}", "Enter or replace a provider's API key and/or base URL",
          description="Kept on the server only (a 0600 file in the Jupyter data dir, or the system keyring). "
          "null removes a stored value. Environment variables win over stored values. The next request uses it.",
          body=obj({"apiKey": nullable({"type": "string", "minLength": 1, "maxLength": 4096}),
                    "baseUrl": nullable({"type": "string", "minLength": 1, "maxLength": 2048})},
                   minProperties=1, closed=True),
          response=ref("KeyStatus"), errors=(400, 404), tag="chat"),
    route("delete_key", "DELETE", "/keys/{provider}", "Remove a provider's stored key and base URL",
          response=ref("KeyStatus"), errors=(404,), tag="chat"),
    route("get_rules", "GET", "/rules", "The workspace rules (AGENTS.md, .polaris/rules/*.md) the model is given",
          response=ref("Rules"), tag="chat"),
    # -- notebooks as background jobs (issue 17) --------------------------------------------------
    route("run_output", "GET", "/runs/{runId}/outputs/{outputFormat}",
          "An output file of a run-notebook run: the executed notebook (ipynb) or its HTML, read-only",
          description="run-notebook writes its outputs to the hidden folder .polaris/jobs/<run id>/, which Jupyter's "
          "contents API does not serve; clients open them through this. `content` is the notebook as JSON (ipynb) "
          "or the HTML text. 404 while the run has not written the file.",
          response=obj({"runId": STR, "format": {"type": "string", "enum": ["ipynb", "html"]}, "path": STR, "name": STR,
                        "mimetype": STR, "content": {}, "size": {"type": "integer"}, "lastModified": STR},
                       ("runId", "format", "path", "name", "mimetype", "content", "size", "lastModified")),
          errors=(400, 404, 413)),
)

# -- notebooks in the chat (issue 13): kernel variables, proposed cell edits ----------------------
_NAMES = array_of({"type": "string", "minLength": 1, "maxLength": 200}, maxItems=100,
                  description="variable names to describe (default: all the user's variables)")
_VARIABLES_ERRORS = (
    "Read-only: a fixed inspection snippet runs silently in the kernel (no output, history or execution "
    "count in the notebook), for at most 3 s. 404: no such kernel, or the notebook is not open; 409: the "
    "kernel is busy; 503: no answer in time (or no kernels here); 400: bad names, not a Python kernel."
)
ROUTES += (
    route("kernel_variables", "POST", "/kernels/{kernelId}/variables",
          "The variables of a running kernel: names, types, shapes, dtypes, a DataFrame's columns and first rows",
          description=_VARIABLES_ERRORS, body=obj({"names": _NAMES}, closed=True), body_required=False,
          response=ref("Variables"), errors=(400, 404, 409, 503), tag="notebooks"),
    route("notebook_variables", "POST", "/notebook-variables",
          "The variables of the kernel of an open notebook (by its workspace path)",
          description=_VARIABLES_ERRORS, body=obj({"path": NON_EMPTY, "names": _NAMES}, ("path",), closed=True),
          response=ref("Variables"), errors=(400, 404, 409, 503), tag="notebooks"),
    route("run_proposals", "GET", "/runs/{runId}/proposals",
          "Cell edits a run proposed (proposeCellEdit): diff, status; a card finds its own by toolCallId",
          response=obj({"proposals": array_of(ref("Proposal"))}, ("proposals",)), errors=(404,), tag="notebooks"),
    route("apply_proposal", "POST", "/proposals/{proposalId}/apply",
          "Write a proposed cell edit into the notebook (journalled: reverting the run undoes it)",
          description="409, nothing written: the cell changed since the proposal (or is gone), or the proposal "
          "was already applied or discarded.",
          response=ref("Proposal"), errors=(404, 409), tag="notebooks"),
    route("discard_proposal", "POST", "/proposals/{proposalId}/discard", "Discard a proposed cell edit",
          response=ref("Proposal"), errors=(404, 409), tag="notebooks"),
)

# -- approvals (issue 14): tool calls held for the user's consent -----------------------------------
ROUTES += (
    route("list_approvals", "GET", "/approvals", "Approvals, newest first (status=pending: what waits for you)",
          query=(Param("status", {"type": "string", "enum": ["pending", "approved", "denied", "expired"]}),),
          response=_data(ref("Approval")), errors=(400,), tag="chat"),
    route("decide_approval", "POST", "/approvals/{approvalId}",
          "Approve or deny a held tool call; its run goes on once nothing of it is pending",
          description="scope `run` answers every pending call of the run the same way and, for an approval, lets "
          "its later calls through without asking. 409: already decided, or its run has ended.",
          body=obj({"decision": {"type": "string", "enum": ["approve", "deny"]},
                    "scope": {"type": "string", "enum": ["once", "run"], "default": "once"}},
                   ("decision",), closed=True),
          response=ref("Approval"), errors=(400, 404, 409), tag="chat"),
)
ROUTES += (
    route("list_mcp_servers", "GET", "/mcp", "MCP servers: status, error and tools of each configured server",
          description="Servers come from <jupyter config dir>/polaris/mcp.json and the workspace's .polaris/mcp.json "
          "(mcpServers; workspace entries replace the user's of the same name). status: connecting, ready, "
          "failed (error says why; restarted at retryAt) or disabled. problems: files or entries that could not "
          "be used, with the path and the reason.",
          response=ref("McpServers"), tag="tools"),
    route("reload_mcp", "POST", "/mcp/reload", "Read the mcp.json files again and (re)connect what changed",
          description="Servers whose entry is unchanged keep their session; removed or changed ones are stopped, "
          "new and changed ones connect in the background (the answer does not wait for them).",
          response=ref("McpServers"), tag="tools"),
    route("list_tools", "GET", "/tools", "Every tool the model may be offered: built-in and MCP, with its access",
          response=obj({"tools": array_of(ref("ToolInfo"))}, ("tools",)), tag="tools"),
)

# -- inline completions (issue 15): agent/completions.py; the stream is server/completion_routes.py --
ROUTES += (
    route("complete", "POST", "/completions", "An inline completion (ghost text) at the cursor, streamed",
          description="The answer is NDJSON, one JSON object a line, each flushed as it is made: `start` (the "
          "completion's id), `delta` per piece of the suggestion, then `end` (its status, text and timings) or "
          "`error`. A new request with the same editorId cancels the previous one (its stream ends with status "
          "CANCELED, cancelReason superseded); closing the connection cancels it and closes the model stream. "
          "Errors found before the first line (bad input, a provider that is not configured) are JSON with a 4xx.",
          body=ref("CompletionRequest"), response=ref("CompletionLine"), stream=True, errors=(400,),
          tag="completions"),
    route("completion_feedback", "POST", "/completions/{completionId}/feedback",
          "Tell the server a suggestion was shown, accepted or dismissed (the accept rate in its metrics)",
          body=obj({"event": {"type": "string", "enum": list(FEEDBACK_EVENTS)}}, ("event",), closed=True),
          response=obj({"id": STR, "events": array_of(STR)}, ("id", "events")), errors=(400, 404),
          tag="completions"),
    route("completion_metrics", "GET", "/completions/metrics",
          "Inline completions as an operation of the engine: counts, latency, cache hits, accept rate (in memory)",
          response=ref("CompletionMetrics"), tag="completions"),
)

# -- @-mentions in the chat input (issue 13): tools/mentions.py --------------------------------------
ROUTES += (
    route("mention_files", "GET", "/files", "Workspace files matching what follows an @ in the chat input (fuzzy)",
          description="The files findFilesByPattern sees (.gitignore and .polarisignore apply), best match first: "
          "the query in the file name, then in the path, then its characters in order.",
          query=(Param("query", {"type": "string", "maxLength": 512, "default": ""}),
                 Param("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 20})),
          response=obj({"paths": array_of(STR)}, ("paths",)), errors=(400,), tag="chat"),
)

_BY_OP = {r.op: r for r in ROUTES}
assert len(_BY_OP) == len(ROUTES), "route ops must be unique"


def route_for(op: str) -> Route:
    return _BY_OP[op]
