"""What an inline completion asks the model: the request, its budgets, and the two prompt shapes.

A request carries the text around the cursor, the language, the path, and for notebooks the
cells above (oldest first). The budgets keep the prompt small, because the time to the first
token grows with it: the prefix keeps its end, the suffix its start, the cells the nearest
ones, each cut at a line boundary. The same budgeted text feeds the fill-in-the-middle prompt
(``prompt`` + ``suffix`` for ``/completions``), the chat prompt, and the cache key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from polaris_jupyter.errors import InvalidInput

__all__ = ["COMPLETION_REQUEST_SCHEMA", "CompletionPrompt", "CompletionRequest", "build_prompt"]

#: Hard limits of one request (the budgets then keep only the text near the cursor).
MAX_TEXT_CHARS = 1_000_000
MAX_CELLS = 1_000
MAX_TOKENS_LIMIT = 2_048

#: The wire shape of ``POST /polaris/api/v1/completions`` (JSON Schema 2020-12), for the route table.
COMPLETION_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["prefix"],
    "properties": {
        "prefix": {"type": "string", "maxLength": MAX_TEXT_CHARS, "description": "Text before the cursor."},
        "suffix": {"type": "string", "maxLength": MAX_TEXT_CHARS, "description": "Text after the cursor."},
        "language": {"type": "string", "maxLength": 64, "description": "Editor language, e.g. python."},
        "path": {"type": "string", "maxLength": 4096, "description": "Path of the file or notebook."},
        "editorId": {"type": "string", "minLength": 1, "maxLength": 256,
                     "description": "A new request with the same editorId cancels the previous one."},
        "cells": {"type": "array", "maxItems": MAX_CELLS, "items": {"type": "string", "maxLength": MAX_TEXT_CHARS},
                  "description": "Sources of the notebook cells above the cursor's cell, oldest first."},
        "provider": {"type": "string", "minLength": 1, "description": "Provider override (default: the chat's)."},
        "model": {"type": "string", "minLength": 1, "description": "Model override (default: the chat's)."},
        "maxTokens": {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_LIMIT},
    },
}


@dataclass(frozen=True)
class CompletionRequest:
    """One completion request; construction checks it (:class:`InvalidInput` with the reason)."""

    prefix: str
    suffix: str = ""
    language: str = "python"
    path: str = ""
    editor_id: str = "default"
    cells: tuple[str, ...] = ()
    provider: str | None = None
    model: str | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("prefix", "suffix", "language", "path", "editor_id"):
            if not isinstance(getattr(self, name), str):
                raise InvalidInput(f"{_wire(name)} must be a string")
        if len(self.prefix) > MAX_TEXT_CHARS or len(self.suffix) > MAX_TEXT_CHARS:
            raise InvalidInput(f"prefix and suffix must each be at most {MAX_TEXT_CHARS} characters")
        if not self.editor_id:
            raise InvalidInput("editorId must not be empty")
        if not isinstance(self.cells, tuple) or not all(isinstance(c, str) for c in self.cells):
            raise InvalidInput("cells must be a list of strings")
        if len(self.cells) > MAX_CELLS:
            raise InvalidInput(f"cells may hold at most {MAX_CELLS} cells")
        for name in ("provider", "model"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidInput(f"{name} must be a non-empty string when given")
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int)
            or not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT
        ):
            raise InvalidInput(f"maxTokens must be an integer from 1 to {MAX_TOKENS_LIMIT}")

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> CompletionRequest:
        """From the JSON body of the route (camelCase, :data:`COMPLETION_REQUEST_SCHEMA`; the route
        table validates the shape, the constructor the values)."""
        if not isinstance(body, Mapping):
            raise InvalidInput("the request body must be a JSON object")
        cells = body.get("cells") or ()
        return cls(
            prefix=body.get("prefix"),  # type: ignore[arg-type]  # checked in __post_init__
            suffix=body.get("suffix", ""), language=body.get("language") or "python", path=body.get("path", ""),
            editor_id=body.get("editorId", "default"), cells=tuple(cells) if isinstance(cells, list) else cells,
            provider=body.get("provider"), model=body.get("model"), max_tokens=body.get("maxTokens"),
        )


def _wire(name: str) -> str:
    return "editorId" if name == "editor_id" else name


@dataclass(frozen=True)
class CompletionPrompt:
    """The budgeted text of one request, and the prompts made from it."""

    prefix: str
    suffix: str
    context: str  # the nearest preceding cells, joined
    language: str
    path: str

    @property
    def fim_prompt(self) -> str:
        """The ``prompt`` of a ``/completions`` call: the cells above, then the prefix."""
        return f"{self.context}\n\n{self.prefix}" if self.context else self.prefix

    def chat_messages(self) -> list[dict[str, str]]:
        """A chat prompt for providers without fill-in-the-middle."""
        lang = self.language or "text"
        single_line = bool(self.suffix.split("\n", 1)[0].strip())
        parts = [f"Language: {lang}"]
        if self.path:
            parts.append(f"File: {self.path}")
        if self.context:
            parts.append(f"Cells above this one in the notebook:\n```{lang}\n{self.context}\n```")
        parts.append(f"The code, with the cursor marked <CURSOR>:\n```{lang}\n{self.prefix}<CURSOR>{self.suffix}\n```")
        parts.append("Complete the current line only." if single_line
                     else "Complete the statement or block that starts at the cursor.")
        return [
            {"role": "system", "content": (
                "You are a code completion engine in a Jupyter editor. Reply with only the text to insert "
                "at <CURSOR>: no explanation, no Markdown fences, and do not repeat code that is already "
                "before or after the cursor.")},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def cache_key(self) -> tuple[str, ...]:
        return (self.language, self.path, self.context, self.prefix, self.suffix)


def _tail(text: str, limit: int) -> str:
    """The last ``limit`` characters, starting at a line start when cut."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    return cut[newline + 1:] if 0 <= newline < len(cut) - 1 else cut


def _head(text: str, limit: int) -> str:
    """The first ``limit`` characters, ending at a line end when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    newline = cut.rfind("\n")
    return cut[:newline] if newline > 0 else cut


def build_prompt(request: CompletionRequest, *, prefix_chars: int, suffix_chars: int,
                 context_chars: int) -> CompletionPrompt:
    """Apply the budgets: prefix end, suffix start, and the nearest cells that fit."""
    kept: list[str] = []
    room = context_chars
    for cell in reversed(request.cells):
        cell = cell.strip("\n")
        if not cell.strip():
            continue
        if len(cell) + 2 > room:
            if not kept and room > 0:  # the nearest cell alone is too long: keep its end
                kept.append(_tail(cell, room))
            break
        kept.append(cell)
        room -= len(cell) + 2
    return CompletionPrompt(
        prefix=_tail(request.prefix, prefix_chars),
        suffix=_head(request.suffix, suffix_chars),
        context="\n\n".join(reversed(kept)),
        language=request.language.strip().lower() or "python",
        path=request.path,
    )
