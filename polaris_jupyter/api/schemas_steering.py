"""Wire schemas for steering the agent (issue 14): models, keys, rules, usage, approvals, tools, MCP.

Merged into the one component table by ``schemas.py``; the enums come from the modules that own
the concepts (approval statuses, permission modes, tool access, MCP transports and statuses).
"""

from __future__ import annotations

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
from polaris_jupyter.chat.approvals import ApprovalScope, ApprovalStatus
from polaris_jupyter.tools.mcp_config import McpStatus, McpTransport
from polaris_jupyter.tools.permissions import PermissionMode, ToolAccess

__all__ = ["STEERING_COMPONENTS"]

STEERING_COMPONENTS: dict[str, Schema] = {}

# -- steering the model (issue 14): model lists, keys, rules, usage and cost ------------------------
STEERING_COMPONENTS.update({
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

# -- approvals (issue 14): permission modes, tool calls held for the user's consent ---------------
_APPROVAL_STATUS: Schema = {"type": "string", "enum": [s.value for s in ApprovalStatus]}
_APPROVAL_SCOPE: Schema = {"type": "string", "enum": [s.value for s in ApprovalScope]}
STEERING_COMPONENTS.update({
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
STEERING_COMPONENTS.update({
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
