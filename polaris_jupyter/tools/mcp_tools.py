"""MCP tools as Polaris tools: names, argument checks, results.

A server's tool ``add`` becomes the tool ``demo__add`` of the registry (server name, two
underscores, tool name), described by the server's JSON schema. The loop treats it like any
workspace tool: arguments are checked against that schema before the call (a mistake is a
:class:`ToolError` the model reads), the call has a time limit, the result is text capped in
size (text blocks joined; images, audio and binary resources summarised), and a result the
server marks as an error is returned to the model as an error. Approvals classify MCP tools
as tools that execute unless the server marks them read-only (``readOnlyHint``): see
:class:`McpTool`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import SchemaError
from jsonschema.exceptions import relevance
from jsonschema.validators import validator_for

from polaris_jupyter.tools.base import (
    MAX_TOOL_OUTPUT_CHARS,
    Tool,
    ToolContext,
    ToolError,
    ToolResult,
    cap_text,
)

__all__ = [
    "MAX_DESCRIPTION_CHARS",
    "McpTool",
    "McpToolInfo",
    "argument_checker",
    "make_tool",
    "namespaced_name",
    "result_text",
]

log = logging.getLogger("polaris_jupyter.tools.mcp")

#: Longest tool name chat-completions servers accept (OpenAI: ^[a-zA-Z0-9_-]{1,64}$).
MAX_TOOL_NAME_CHARS = 64
#: A server's tool description is cut to this many characters (some servers send pages).
MAX_DESCRIPTION_CHARS = 2_000
#: Argument problems named in one refusal (the most relevant first).
MAX_ARGUMENT_PROBLEMS = 3
_NAME_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")

#: ``call(tool_name, arguments, timeout_s)`` → the server's CallToolResult.
CallFn = Callable[[str, dict[str, Any], float], Awaitable[Any]]


@dataclass(frozen=True)
class McpToolInfo:
    """What a server says about one of its tools (from ``tools/list``)."""

    server: str
    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool = False

    @classmethod
    def from_mcp(cls, server: str, tool: Any) -> McpToolInfo:
        annotations = getattr(tool, "annotations", None)
        description = tool.description or getattr(tool, "title", None) or ""
        schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
        read_only = bool(annotations is not None and annotations.read_only_hint)
        return cls(server, tool.name, description, dict(schema), read_only)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": namespaced_name(self.server, self.name), "tool": self.name, "server": self.server,
            "description": self.description, "readOnly": self.read_only,
        }


@dataclass(frozen=True)
class McpTool(Tool):
    """A tool of an MCP server in the registry. Its ``access`` (what approvals and permission
    modes go by, ``tools/permissions.py``) is "read" only when the server marks it read-only,
    else "execute": an MCP tool's effects are unknown, so it asks wherever commands ask."""

    server: str = ""
    remote_name: str = ""
    path_params: tuple[str, ...] = field(default=())

    @property
    def is_read_only(self) -> bool:
        return self.access == "read"


def namespaced_name(server: str, tool: str) -> str:
    """``server__tool`` in the alphabet models accept; over-long names keep a short hash of the
    full name, so two long names never collide."""
    name = f"{server}__{_NAME_BAD_CHARS.sub('_', tool)}"
    if len(name) <= MAX_TOOL_NAME_CHARS:
        return name
    digest = hashlib.sha1(f"{server}/{tool}".encode()).hexdigest()[:8]
    return f"{name[: MAX_TOOL_NAME_CHARS - 9]}_{digest}"


def model_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """The server's input schema as sent to the model: an object schema, without ``$schema``
    (which some providers refuse)."""
    params = {k: v for k, v in schema.items() if k != "$schema"}
    params["type"] = "object"
    params.setdefault("properties", {})
    return params


def argument_checker(tool_name: str, schema: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """A check of a tool's arguments against the server's schema (built once per tool listing):
    it refuses what the schema rejects with the argument and the reason, as a ToolError.

    A schema that is itself invalid is not the model's fault: the calls then go to the server,
    which checks them its own way."""
    try:
        cls = validator_for(schema)
        cls.check_schema(schema)
    except SchemaError as exc:
        log.debug("MCP tool %s has an invalid input schema (%s); arguments go unchecked", tool_name, exc.message)
        return lambda args: None
    validator = cls(schema)
    properties = schema.get("properties")
    allowed = f" (parameters: {', '.join(sorted(properties))})" if isinstance(properties, dict) and properties else ""

    def check(args: dict[str, Any]) -> None:
        errors = sorted(validator.iter_errors(args), key=relevance, reverse=True)
        if not errors:
            return
        problems = []
        for error in errors[:MAX_ARGUMENT_PROBLEMS]:
            where = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
                            for i, p in enumerate(error.absolute_path))
            problems.append(f"argument {where!r}: {error.message}" if where else error.message)
        raise ToolError(f"{tool_name}: {'; '.join(problems)}{allowed}")

    return check


def result_text(result: Any, max_chars: int = MAX_TOOL_OUTPUT_CHARS) -> tuple[str, bool]:
    """A CallToolResult as text for the model (and whether it was cut)."""
    parts = [_block_text(block) for block in (result.content or [])]
    parts = [p for p in parts if p]
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False, default=str))
    return cap_text("\n".join(parts) or "(the tool returned no content)", max_chars)


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind}: {block.mime_type}, {_size(_decoded_bytes(block.data))}; not shown as text]"
    if kind == "resource_link":
        title = f" ({block.name})" if getattr(block, "name", None) else ""
        return f"[resource link: {block.uri}{title}]"
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if isinstance(text, str):
            return f"[resource {resource.uri}]\n{text}"
        mime = getattr(resource, "mime_type", None) or "binary"
        return f"[resource {resource.uri}: {mime}, {_size(_decoded_bytes(getattr(resource, 'blob', '')))}]"
    return f"[{kind or 'unknown'} content]"


def _decoded_bytes(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)


def _size(n_bytes: int) -> str:
    return f"{n_bytes} bytes" if n_bytes < 1024 else f"{n_bytes / 1024:.1f} kB"


def make_tool(info: McpToolInfo, call: CallFn, call_timeout_s: float) -> McpTool:
    """The registry's tool for ``info``; ``call`` reaches the server (through its connection)."""
    name = namespaced_name(info.server, info.name)
    description = f"[MCP server {info.server}] {info.description}".strip()
    if len(description) > MAX_DESCRIPTION_CHARS:
        description = description[: MAX_DESCRIPTION_CHARS - 1] + "…"

    check_arguments = argument_checker(name, info.input_schema)

    async def run(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        check_arguments(args)
        try:
            result = await call(info.name, args, call_timeout_s)
        except TimeoutError:
            raise ToolError(
                f"{name} did not answer within {call_timeout_s:g} s, so the call was cancelled "
                "(PolarisConfig.mcp_call_timeout_s, or \"timeout\" of the server in mcp.json)"
            ) from None
        except asyncio.CancelledError:
            raise
        text, truncated = result_text(result)
        if result.is_error:
            raise ToolError(f"{name} failed: {text}")
        summary = text.splitlines()[0][:200] if text else ""
        return ToolResult(text=text, summary=summary, truncated=truncated,
                          data={"server": info.server, "tool": info.name})

    return McpTool(
        name=name, description=description, parameters=model_parameters(info.input_schema), fn=run, group="mcp",
        access="read" if info.read_only else "execute", server=info.server, remote_name=info.name,
    )
