"""Argument checks shared by the workspace tools: clear :class:`ToolError` messages, never a crash.

Models send what they send: unknown keys, numbers as strings, ``null`` for optional values.
These helpers accept the harmless variants (``"5"`` for 5, ``"true"`` for true, null for
"not given") and refuse the rest with a message naming the argument and what was expected.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import Any

from polaris_jupyter.tools.base import ToolContext, ToolError, ToolFn, ToolResult

__all__ = ["check_args", "get_bool", "get_int", "get_str", "os_errors_as_tool_errors"]


def check_args(tool: str, args: object, allowed: Iterable[str], required: Iterable[str] = ()) -> dict[str, Any]:
    """Refuse non-objects, unknown keys and missing required keys."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ToolError(f"{tool}: arguments must be a JSON object, got {type(args).__name__}")
    allowed_set = set(allowed)
    unknown = sorted(str(key) for key in args if key not in allowed_set)
    if unknown:
        raise ToolError(
            f"{tool}: unknown argument(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed_set)) or 'none'}"
        )
    missing = [name for name in required if args.get(name) is None]
    if missing:
        raise ToolError(f"{tool}: missing required argument(s) {', '.join(missing)}")
    return args


def get_str(args: dict[str, Any], name: str, *, default: str | None = None, max_chars: int | None = None) -> str | None:
    value = args.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ToolError(f"argument {name!r} must be a string, got {type(value).__name__}")
    if max_chars is not None and len(value) > max_chars:
        raise ToolError(f"argument {name!r} is too long ({len(value)} characters; at most {max_chars})")
    return value


def get_int(
    args: dict[str, Any],
    name: str,
    *,
    default: int | None = None,
    min_value: int | None = None,
    max_value: int | None = None,
) -> int | None:
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        raise ToolError(f"argument {name!r} must be an integer, got a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise ToolError(f"argument {name!r} must be an integer, got {value!r}")
    if min_value is not None and value < min_value:
        raise ToolError(f"argument {name!r} must be at least {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ToolError(f"argument {name!r} must be at most {max_value}, got {value}")
    return value


def get_bool(args: dict[str, Any], name: str, *, default: bool = False) -> bool:
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ToolError(f"argument {name!r} must be true or false, got {value!r}")


def os_errors_as_tool_errors(fn: ToolFn) -> ToolFn:
    """Turn file-system errors (permission denied, disk full, ...) into a ToolError the model
    can read, instead of an "unexpected failure" of the tool."""

    @functools.wraps(fn)
    async def wrapper(args: dict[str, Any], ctx: ToolContext) -> ToolResult | str:
        try:
            return await fn(args, ctx)
        except OSError as exc:
            where = f" ({os.path.basename(str(exc.filename))})" if exc.filename else ""
            raise ToolError(f"file system error: {exc.strerror or exc}{where}") from None

    return wrapper
