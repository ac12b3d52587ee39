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

from polaris_jupyter.chat.context_block import intent_of, user_turn_text
from polaris_jupyter.chat.store import Message
from polaris_jupyter.chat.tokens import approx_tokens

__all__ = [
    "INTENT_INSTRUCTIONS",
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


#: What the system prompt adds for the Explain error / Fix with Polaris buttons.
INTENT_INSTRUCTIONS = {
    "explain": "The user pressed Explain error on the attached cell. Explain what went wrong and why, pointing at "
    "the line in the cell and using the traceback and the variables attached; then say briefly how to fix it. "
    "Do not change any file.",
    "fix": "The user pressed Fix with Polaris on the attached cell. Find the cause (the traceback and the variables "
    "are attached), then call proposeCellEdit exactly once with the cell's path, its cellId (or index) and the "
    "complete corrected source; do not edit the notebook with any other tool, the user applies the proposal. "
    "Then say in one or two sentences what you changed and why.",
}


def build_system_prompt(root: Path, tool_names: list[str], context: dict[str, Any] | None = None,
                        rules: str | None = None) -> str:
    """The system message: who the assistant is, the workspace, the tools, the file the user
    has open (``context["currentFile"]``), if any, and the workspace's rules (``chat/rules.py``:
    AGENTS.md and .polaris/rules, already capped), if any."""
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
        intent = intent_of(context)
        if intent is not None:
            lines.append(INTENT_INSTRUCTIONS[intent])
    if rules:
        lines.append(rules)
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
    left out: a tool call's result lives in the turn that made it. The newest user message
    carries its attached context block in front of its text (``context_block.user_turn_text``)."""
    kept = [m for m in _before(history, answer) if m.role in _HISTORY_ROLES and m.content]
    newest = next((m.id for m in reversed(kept) if m.role == "user"), None)
    turns: list[dict[str, Any]] = [
        {"role": m.role, "content": user_turn_text(m.content, m.context, newest=m.id == newest) if m.role == "user"
         else m.content}
        for m in kept
    ]
    return trim_history(turns, budget_tokens)


def turn_context(history: Sequence[Message], answer: Message) -> dict[str, Any] | None:
    """The editor context (e.g. ``{"currentFile": ...}``) of the newest user message before
    ``answer`` that sent one; its Explain / Fix ``intent`` only when that is the newest message."""
    users = [m for m in _before(history, answer) if m.role == "user"]
    found = next((m for m in reversed(users) if m.context), None)
    if found is None or found.context is None:
        return None
    if found is users[-1] or "intent" not in found.context:
        return found.context
    return {k: v for k, v in found.context.items() if k != "intent"}  # a button press is for its own message


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
    #: The workspace rules text (``chat.rules.Rules.text``), read for this turn; None: no rules.
    rules: str | None = None

    def system(self, tool_names: list[str]) -> str:
        return build_system_prompt(self.root, tool_names, self.context, self.rules)

    def messages(self, tool_names: list[str]) -> list[dict[str, str]]:
        """What the model receives for a request carrying ``tool_names``: system, then history."""
        return [{"role": "system", "content": self.system(tool_names)}, *self.history]


def build_turn_prompt(
    history: Sequence[Message], answer: Message, *, root: Path, budget_tokens: int, rules: str | None = None
) -> TurnPrompt:
    """The prompt for answering ``answer`` from ``history`` (the conversation's messages).

    ``budget_tokens`` bounds the history only (the system prompt is always sent whole); the
    newest user message always stays, however long it is."""
    return TurnPrompt(history_turns(history, answer, budget_tokens), root, turn_context(history, answer), rules or None)
