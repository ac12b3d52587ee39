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

__all__ = [
    "check_args",
    "check_searchable_text",
    "get_bool",
    "get_int",
    "get_pattern",
    "get_str",
    "os_errors_as_tool_errors",
]


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


def check_searchable_text(name: str, value: str) -> str:
    """Refuse text that no searched file can hold and no program argument can carry.

    A NUL byte marks a file as binary (never searched) and cannot be passed to ripgrep or a
    glob; an unpaired surrogate (a broken ``\\ud800`` escape) is not text at all. Both used to
    escape as ValueError/UnicodeEncodeError, which the loop reports as an unexpected failure.
    """
    if "\x00" in value:
        raise ToolError(
            f"argument {name!r} contains a NUL byte (\\x00) at character {value.index(chr(0))}; files holding NUL "
            "bytes are binary and never searched, so remove it"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(
            f"argument {name!r} holds an unpaired surrogate at character {exc.start} (a broken \\u escape); "
            "send valid Unicode text"
        ) from None
    return value


def get_pattern(args: dict[str, Any], name: str, *, max_chars: int | None = None) -> str | None:
    """A regex, glob or name query argument: a string without NUL bytes or unpaired surrogates."""
    value = get_str(args, name, max_chars=max_chars)
    return None if value is None else check_searchable_text(name, value)


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
