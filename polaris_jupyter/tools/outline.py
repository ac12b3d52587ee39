"""Syntax-level outlines of source files (symbols, imports, exports, calls), cached by mtime.

One outline per file, built by the Python ``ast`` (``code_python``) or by tree-sitter for
TypeScript/JavaScript (``code_ts``). findSymbol, searchCodebase and getRelevantFiles all read
the same cache, so a tree is parsed once and a file again only when its mtime or size changes.
Positions are 1-based lines and 1-based character columns, as every tool reports them.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

__all__ = [
    "MAX_OUTLINE_BYTES",
    "PY_SUFFIXES",
    "TS_SUFFIXES",
    "CodeRef",
    "Language",
    "Outline",
    "OutlineCache",
    "SymbolDef",
    "SymbolKind",
    "SyntaxIssue",
    "char_column",
    "language_of",
    "outline_text",
]

#: Files larger than this are not parsed (generated bundles, vendored data): they still show up
#: in text search, just not in syntax-aware results.
MAX_OUTLINE_BYTES = 2_000_000

PY_SUFFIXES = frozenset({".py", ".pyi"})
TS_SUFFIXES = frozenset({".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs"})


class Language(str, Enum):
    PYTHON = "python"
    TYPESCRIPT = "typescript"
    TSX = "tsx"
    JAVASCRIPT = "javascript"


class SymbolKind(str, Enum):
    FUNCTION = "function"
    CLASS = "class"
    VARIABLE = "variable"
    INTERFACE = "interface"
    TYPE = "type"


@dataclass(frozen=True)
class SymbolDef:
    """A definition: ``name`` at ``line``/``column`` (both 1-based), inside ``container`` if nested."""

    name: str
    kind: SymbolKind
    line: int
    column: int
    container: str | None = None
    top_level: bool = True


@dataclass(frozen=True)
class CodeRef:
    """An import (``name`` = module specifier), an export (exported name) or a call (callee text)."""

    name: str
    line: int
    column: int
    detail: str = ""


@dataclass(frozen=True)
class SyntaxIssue:
    line: int
    column: int
    message: str


@dataclass
class Outline:
    language: Language
    symbols: list[SymbolDef] = field(default_factory=list)
    imports: list[CodeRef] = field(default_factory=list)
    exports: list[CodeRef] = field(default_factory=list)
    calls: list[CodeRef] = field(default_factory=list)
    errors: list[SyntaxIssue] = field(default_factory=list)


def language_of(path: str | Path) -> Language | None:
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix in PY_SUFFIXES:
        return Language.PYTHON
    if suffix in {".ts", ".mts", ".cts"}:
        return Language.TYPESCRIPT
    if suffix == ".tsx":
        return Language.TSX
    if suffix in TS_SUFFIXES:
        return Language.JAVASCRIPT
    return None


def char_column(line_text: str, byte_col: int) -> int:
    """1-based character column for a 0-based UTF-8 byte offset within ``line_text``."""
    if line_text.isascii():
        return byte_col + 1
    return len(line_text.encode("utf-8")[:byte_col].decode("utf-8", "ignore")) + 1


def outline_text(text: str, language: Language) -> Outline:
    """Outline ``text`` written in ``language`` (never raises on bad syntax: see ``errors``)."""
    if language is Language.PYTHON:
        from polaris_jupyter.tools.code_python import python_outline

        return python_outline(text)
    from polaris_jupyter.tools.code_ts import available, ts_outline

    if not available():
        return Outline(language=language)  # no tree-sitter: TS/JS files have no syntax outline
    return ts_outline(text, language)


class OutlineCache:
    """Outlines of one workspace keyed by relative path, rebuilt when (mtime, size) changes.

    Thread-safe: tools read it from ``asyncio.to_thread`` workers.
    """

    _by_root: dict[str, OutlineCache] = {}
    _class_lock = threading.Lock()

    def __init__(self, root: Path) -> None:
        self.root = root
        self._entries: dict[str, tuple[int, int, Outline | None]] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_root(cls, root: Path | str) -> OutlineCache:
        key = os.path.realpath(root)
        with cls._class_lock:
            cache = cls._by_root.pop(key, None) or OutlineCache(Path(key))
            cls._by_root[key] = cache  # most recently used last
            while len(cls._by_root) > 4:
                cls._by_root.pop(next(iter(cls._by_root)))
            return cache

    def get(self, rel_path: str, must_contain: bytes | None = None) -> Outline | None:
        """The outline of ``rel_path`` or None (not a source file, unreadable, too big).

        ``must_contain`` (lower-case bytes) lets a caller skip parsing files that cannot hold
        what it looks for: an uncached file whose lower-cased text lacks it returns None.
        """
        language = language_of(rel_path)
        if language is None:
            return None
        abs_path = os.path.join(self.root, rel_path)
        try:
            st = os.stat(abs_path, follow_symlinks=False)
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._entries.get(rel_path)
        if hit is not None and hit[:2] == key:
            return hit[2]
        outline: Outline | None = None
        if st.st_size <= MAX_OUTLINE_BYTES and os.path.isfile(abs_path) and not os.path.islink(abs_path):
            try:
                with open(abs_path, "rb") as fh:
                    data = fh.read(MAX_OUTLINE_BYTES + 1)
            except OSError:
                data = b""
            if must_contain is not None and must_contain not in data.lower():
                return None
            if data and b"\x00" not in data:
                outline = outline_text(data.decode("utf-8", "replace"), language)
            elif not data:
                outline = Outline(language=language)
        with self._lock:
            self._entries[rel_path] = (key[0], key[1], outline)
        return outline
