"""Where an inline suggestion ends: stop sequences for the model, and a streaming trimmer.

Ghost text is useful when it is one coherent piece: the rest of the line when the cursor is in
the middle of one, else the statement or block being started. Models do not know that (a FIM
model happily writes the next three functions, a chat model wraps code in fences), so the
suggestion is cut here, while it streams:

* cursor mid-line (code after it on the same line): one line; a closing bracket the model
  repeats although it is already after the cursor is dropped (``print(`` + ``f(x))`` + ``)``).
* else multi-line, by indentation (the rule for Python, and it serves brace languages too):
  a blank line after a complete statement ends it; once the suggestion went deeper than the
  cursor's indent, coming back to that indent ends it (the block is done), except for
  ``elif``/``else``/``except``/``finally``; a line left of the cursor's indent ends it. Inside
  brackets opened by the suggestion or on the cursor's line nothing ends it, so a call, a
  literal or a brace block (``{ ... }``) is kept whole.
* a line that repeats the first line after the cursor ends it (the model started to rewrite
  code that is already there); a line starting with a code fence ends it.
* chat answers: a leading fence line and a repeat of the cursor line's text are removed.

Text is released only when no later token can take it back (a line after the first is shown
once it is complete; trailing whitespace and a possible repeated closer wait), so what the
editor already shows is always a prefix of the final suggestion. Once the end is known the
trimmer says ``done`` and the caller closes the model stream.
"""

from __future__ import annotations

import re

__all__ = ["SuggestionTrimmer", "stop_sequences"]

_OPENERS = "([{"
_CLOSERS = ")]}"
_PY_CONTINUATIONS = re.compile(r"(elif|else|except|finally)\b")
_STRING = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")
_FENCE = "```"
_INDENT_LANGUAGES = frozenset({"python", "ipython", "ipython3", "py", "yaml", "coffeescript", "nim"})


def _line_suffix(suffix: str) -> str:
    return suffix.split("\n", 1)[0]


def stop_sequences(suffix: str) -> list[str]:
    """What to send as ``stop``: a newline when the cursor is mid-line, else a blank line.

    The server stops early (and keeps its connection reusable); the trimmer still applies
    the finer rules, so a server that ignores ``stop`` is handled too.
    """
    return ["\n"] if _line_suffix(suffix).strip() else ["\n\n"]


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def _code_part(line: str, language: str) -> str:
    """The line without string literals and a trailing comment (for bracket counting)."""
    text = _STRING.sub('""', line)
    marker = "#" if language in _INDENT_LANGUAGES else "//"
    cut = text.find(marker)
    return text if cut < 0 else text[:cut]


def _bracket_delta(line: str, language: str) -> int:
    code = _code_part(line, language)
    return sum(code.count(c) for c in _OPENERS) - sum(code.count(c) for c in _CLOSERS)


class SuggestionTrimmer:
    """Feed raw model text with :meth:`feed`; it returns the part that is safe to show.

    ``done`` turns true when the end of the suggestion is known; :meth:`finish` releases the
    rest once the model stream ended. ``chat`` enables the clean-up of chat answers.
    """

    def __init__(self, prefix: str, suffix: str, language: str = "python", *, chat: bool = False,
                 max_lines: int = 16, max_chars: int = 2000) -> None:
        self.language = language.lower()
        self.chat = chat
        self.max_lines = max(1, max_lines)
        self.max_chars = max(1, max_chars)
        self.done = False
        cursor_line = prefix.rsplit("\n", 1)[-1]
        self._line_prefix = cursor_line
        self._cursor_indent = _indent(cursor_line) if cursor_line.strip() else len(cursor_line.expandtabs(4))
        line_suffix = _line_suffix(suffix)
        self._single_line = bool(line_suffix.strip())
        self._line_suffix = line_suffix.strip()
        following = suffix.split("\n")[1:] if self._single_line else suffix.split("\n")
        next_line = next((ln.strip() for ln in following if ln.strip()), "")
        # Only a line with a name or a number counts as a repeat ("}" or ")" legitimately recurs).
        self._next_code_line = next_line if any(c.isalnum() for c in next_line) else ""
        self._prefix_depth = max(0, _bracket_delta(cursor_line, self.language))
        self._raw = ""
        self._start: int | None = None if chat else 0
        self._shown = ""

    @property
    def text(self) -> str:
        """What has been released so far."""
        return self._shown

    def feed(self, chunk: str) -> str:
        """Add model text; return the newly safe part (possibly empty)."""
        if self.done or not chunk:
            return ""
        self._raw += chunk.replace("\r", "")
        return self._release(final=False)

    def finish(self) -> str:
        """The model stream ended: release the rest of the suggestion."""
        if self.done:
            return ""
        out = self._release(final=True)
        self.done = True
        return out

    # -- internals ------------------------------------------------------------------------------
    def _release(self, *, final: bool) -> str:
        if self._start is None:
            self._start = self._chat_start(final)
            if self._start is None:
                return ""
        text = self._raw[self._start:]
        safe_end, cut = self._evaluate(text, final)
        if cut is not None or final:
            self.done = True
            text = self._end_trim(text[: cut if cut is not None else len(text)])
            safe_end = len(text)
        candidate = text[:safe_end]
        if not candidate.startswith(self._shown):  # never take back what the editor shows
            self.done = True
            return ""
        out = candidate[len(self._shown):]
        self._shown = candidate
        return out

    def _chat_start(self, final: bool) -> int | None:
        """Where a chat answer's suggestion starts (after a fence and a repeated cursor line)."""
        raw = self._raw
        start = 0
        body = raw.lstrip(" \t")
        if body.startswith(_FENCE) or (_FENCE.startswith(body) and body and not final):
            newline = raw.find("\n")
            if newline < 0:
                return None if not final else len(raw)
            start = newline + 1
        repeated = self._line_prefix.strip()
        if repeated:
            rest = raw[start:]
            stripped = rest.lstrip()
            if stripped.startswith(repeated):
                start += len(rest) - len(stripped) + len(repeated)
            elif repeated.startswith(stripped) and not final:
                return None  # could still become a repeat of the cursor line
        return start

    def _evaluate(self, text: str, final: bool) -> tuple[int, int | None]:
        """(end of the safe part, end of the suggestion if known) for the text so far."""
        if len(text) >= self.max_chars:
            cut = text.rfind("\n", 0, self.max_chars)
            return 0, cut if cut > 0 else self.max_chars
        lines = text.split("\n")
        if self._single_line:
            if len(lines) > 1:
                return len(lines[0]), len(lines[0])
            return max(0, len(text.rstrip()) - len(self._line_suffix)), None
        first = lines[0].strip()
        if first and first == self._next_code_line and not self._line_prefix.strip() and (len(lines) > 1 or final):
            return 0, 0  # the model rewrites the line after the cursor
        depth = self._prefix_depth + _bracket_delta(lines[0], self.language)
        went_deeper = False
        offset = len(lines[0])  # end of the accepted lines
        for i, line in enumerate(lines[1:], start=1):
            if i == len(lines) - 1 and not final:
                break  # the last line may still grow: it decides nothing yet
            if self._line_ends(line, depth, went_deeper, i):
                return offset, offset
            depth = max(0, depth + _bracket_delta(line, self.language))
            if line.strip():
                continuation = bool(_PY_CONTINUATIONS.match(line.strip()))
                went_deeper = _indent(line) > self._cursor_indent or (went_deeper and not continuation)
            offset += 1 + len(line)
        if final:
            return offset, offset
        return len(text[:offset].rstrip()), None

    def _line_ends(self, line: str, depth: int, went_deeper: bool, index: int) -> bool:
        """True when the suggestion ends before ``line`` (the line at ``index``, 1-based)."""
        stripped = line.strip()
        if index >= self.max_lines or stripped.startswith(_FENCE):
            return True
        if self._next_code_line and stripped == self._next_code_line:
            return True
        if depth > 0:
            return False  # inside brackets: a call, a literal, a multi-line signature
        if not stripped:
            return True  # a blank line after a complete statement
        indent = _indent(line)
        if indent != self._cursor_indent:
            return indent < self._cursor_indent
        if not went_deeper:
            return False  # a sibling statement
        return not (self.language in _INDENT_LANGUAGES and _PY_CONTINUATIONS.match(stripped))

    def _end_trim(self, text: str) -> str:
        """Trailing whitespace, and a closer the cursor line already has after the cursor."""
        text = text.rstrip()
        tail = self._line_suffix
        if self._single_line and tail and text.endswith(tail):
            code = self._line_prefix + text + tail
            if _bracket_delta(code, self.language) < 0:  # one closer too many: the model repeated it
                text = text[: -len(tail)].rstrip()
        return text
