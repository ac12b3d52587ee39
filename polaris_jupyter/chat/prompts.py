"""The system prompt of a chat turn and the trimming of history to a token budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["approx_tokens", "build_system_prompt", "trim_history"]


def approx_tokens(text: str) -> int:
    """About four characters a token: good enough to keep a request under a budget."""
    return len(text) // 4 + 1


def build_system_prompt(root: Path, tool_names: list[str], context: dict[str, Any] | None = None) -> str:
    lines = [
        "You are Polaris, an AI coding assistant working inside a Jupyter workspace.",
        f"The workspace root is the folder {root.name!r}; every path you pass to a tool is relative to it.",
        "Use the tools to read, search, edit and run code instead of guessing. Read a file before you "
        "change it, keep edits minimal, and say which files you changed.",
        "Tool errors come back as text: fix the arguments and try again rather than giving up.",
        f"Available tools: {', '.join(sorted(tool_names)) or 'none'}.",
        "Answer in Markdown. Be concise.",
    ]
    if context:
        current = context.get("currentFile")
        if isinstance(current, str) and current:
            lines.append(f"The user has {current!r} open; it is probably what they are asking about.")
    return "\n".join(lines)


def trim_history(messages: list[dict[str, Any]], budget_tokens: int) -> list[dict[str, Any]]:
    """Keep the newest messages whose total fits ``budget_tokens`` (the last one always stays)."""
    kept: list[dict[str, Any]] = []
    used = 0
    for message in reversed(messages):
        cost = approx_tokens(str(message.get("content") or "")) + 4
        if kept and used + cost > budget_tokens:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    while len(kept) > 1 and kept[0].get("role") != "user":
        kept.pop(0)  # a history must not start with an orphaned assistant reply
    return kept
