"""What one chat turn sends the model: the system prompt, then the conversation so far.

Everything here is pure (no store, clock, model or event loop): the same history, answer and
budget always give the same messages, so the rules are pinned by plain unit tests
(``tests/chat/test_prompts.py``). The chat service calls :func:`build_turn_prompt` once per attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polaris_jupyter.chat.store import Message

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "TurnPrompt",
    "approx_tokens",
    "build_system_prompt",
    "build_turn_prompt",
    "history_turns",
    "trim_history",
    "turn_context",
]

#: Tokens a chat message costs beyond its text (role, separators), as providers count them.
MESSAGE_OVERHEAD_TOKENS = 4
_HISTORY_ROLES = ("user", "assistant")


def approx_tokens(text: str) -> int:
    """About four characters a token: good enough to keep a request under a budget."""
    return len(text) // 4 + 1


def build_system_prompt(root: Path, tool_names: list[str], context: dict[str, Any] | None = None) -> str:
    """The system message: who the assistant is, the workspace, the tools, and the file the
    user has open (``context["currentFile"]``), if any."""
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
    """Keep the newest messages whose total fits ``budget_tokens`` (the last one always stays),
    never starting with an assistant reply whose question was cut."""
    kept: list[dict[str, Any]] = []
    used = 0
    for message in reversed(messages):
        cost = approx_tokens(str(message.get("content") or "")) + MESSAGE_OVERHEAD_TOKENS
        if kept and used + cost > budget_tokens:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    while len(kept) > 1 and kept[0].get("role") != "user":
        kept.pop(0)  # a history must not start with an orphaned assistant reply
    return kept


def _before(history: Sequence[Message], answer: Message) -> list[Message]:
    """The messages the answer follows: older than it (a retried or replayed answer of an earlier
    message does not see what was said after it), never the answer itself."""
    return [m for m in history if m.id != answer.id and m.created_at <= answer.created_at]


def history_turns(history: Sequence[Message], answer: Message, budget_tokens: int) -> list[dict[str, str]]:
    """The user and assistant messages before ``answer`` that have text, oldest first, trimmed
    to ``budget_tokens`` (see :func:`trim_history`). Tool messages and empty placeholders are
    left out: a tool call's result lives in the turn that made it."""
    turns: list[dict[str, Any]] = [
        {"role": m.role, "content": m.content}
        for m in _before(history, answer)
        if m.role in _HISTORY_ROLES and m.content
    ]
    return trim_history(turns, budget_tokens)


def turn_context(history: Sequence[Message], answer: Message) -> dict[str, Any] | None:
    """The editor context (e.g. ``{"currentFile": ...}``) of the newest user message before
    ``answer`` that sent one."""
    return next(
        (m.context for m in reversed(_before(history, answer)) if m.role == "user" and m.context), None
    )


@dataclass(frozen=True)
class TurnPrompt:
    """The request of one turn, minus the tools: the trimmed history, plus what the system
    prompt is made from. The system prompt lists the tools a request really carries (a server
    that cannot take tools gets a prompt that names none), so it is a function of their names:
    :meth:`system` is what the tool loop calls (``run_agent_loop(system_prompt=...)``)."""

    #: User and assistant messages before the answer, oldest first (:func:`history_turns`).
    history: list[dict[str, str]]
    root: Path
    #: The editor context of the newest user message that sent one (:func:`turn_context`).
    context: dict[str, Any] | None = None

    def system(self, tool_names: list[str]) -> str:
        return build_system_prompt(self.root, tool_names, self.context)

    def messages(self, tool_names: list[str]) -> list[dict[str, str]]:
        """What the model receives for a request carrying ``tool_names``: system, then history."""
        return [{"role": "system", "content": self.system(tool_names)}, *self.history]


def build_turn_prompt(
    history: Sequence[Message], answer: Message, *, root: Path, budget_tokens: int
) -> TurnPrompt:
    """The prompt for answering ``answer`` from ``history`` (the conversation's messages).

    ``budget_tokens`` bounds the history only (the system prompt is always sent whole); the
    newest user message always stays, however long it is."""
    return TurnPrompt(history_turns(history, answer, budget_tokens), root, turn_context(history, answer))
