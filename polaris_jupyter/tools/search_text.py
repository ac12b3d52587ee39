"""The text-search engine behind searchFiles: ripgrep when on PATH, pure Python otherwise.

Both engines give the same answer because they share every decision that shapes it:

- files: the workspace's ignore rules (``ignore.py``), symlinks skipped, files over
  ``MAX_FILE_BYTES`` skipped, files holding a NUL byte treated as binary and skipped;
- order: paths compared folder by folder (the order of a sorted depth-first walk, which is
  also ``rg --sort path``), then line;
- matching: Python ``re`` semantics, line by line, over UTF-8 text (BOM dropped).

ripgrep only *finds candidate files* (``--files-with-matches --sort path``, streamed): each
candidate is then read and matched by the same Python code the fallback uses, and rg is
stopped as soon as one result more than the cap is known. So rg decides speed, never content.
A pattern rg cannot parse (look-around, back-references) silently uses the Python engine.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import re
import shutil
import subprocess
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from polaris_jupyter.tools._args import check_searchable_text
from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.globs import compile_glob
from polaris_jupyter.tools.ignore import BUILTIN_IGNORED_DIRS, IgnoreRules, walk_files

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_RESULTS",
    "LineMatch",
    "SearchOutcome",
    "TextQuery",
    "find_rg",
    "path_key",
    "rg_base_args",
    "search_with_python",
    "search_with_rg",
]

MAX_RESULTS = 50
MAX_FILE_BYTES = 10 * 1024 * 1024
SNIPPET_CHARS = 200
_HEAD_BYTES = 65_536
#: The only non-ASCII characters Python's ``re.IGNORECASE`` matches to an ASCII letter
#: (İ ı ſ and the Kelvin sign), UTF-8 encoded: without them, lower-casing ASCII bytes finds
#: every case-insensitive occurrence of an ASCII literal.
_ASCII_FOLD_SPECIALS = ("\u0130".encode(), "\u0131".encode(), "\u017f".encode(), "\u212a".encode())
_LOOKAROUND = re.compile(r"\(\?<?[=!]|\\[AZ]")


@dataclass(frozen=True)
class LineMatch:
    path: str
    line: int
    column: int
    snippet: str


@dataclass
class SearchOutcome:
    matches: list[LineMatch] = field(default_factory=list)
    truncated: bool = False
    engine: str = "python"
    files_searched: int = 0


def path_key(rel_path: str) -> list[str]:
    """Sort key shared by both engines: folder by folder, like a sorted depth-first walk."""
    return rel_path.split("/")


def find_rg() -> str | None:
    return shutil.which("rg")


# ---------------------------------------------------------------- one query


def _required_literals(parsed: object) -> list[str]:
    """Literal runs at the top level of a parsed pattern: every match must contain each of them."""
    from re import _constants as c  # type: ignore[attr-defined]

    runs: list[str] = []
    current: list[str] = []
    for op, arg in parsed:  # type: ignore[attr-defined]
        if op is c.LITERAL:
            current.append(chr(arg))
            continue
        if current:
            runs.append("".join(current))
            current = []
        if op is c.SUBPATTERN and arg[1] == 0 and arg[2] == 0:  # plain group, no flags
            runs.extend(_required_literals(arg[3]))
    if current:
        runs.append("".join(current))
    return [run for run in runs if len(run) >= 2]


class TextQuery:
    """A compiled searchFiles query (pattern, case, file glob) and the per-file scan."""

    def __init__(self, pattern: str, case_sensitive: bool, file_glob: str | None) -> None:
        if not pattern:
            raise ToolError("pattern must not be empty")
        self.pattern = check_searchable_text("pattern", pattern)
        self.case_sensitive = case_sensitive
        flags = 0 if case_sensitive else re.IGNORECASE
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self.regex = re.compile(pattern, flags)
            except re.error as exc:
                raise ToolError(
                    f"invalid regular expression {pattern!r}: {exc}. The pattern uses Python regex syntax; "
                    "escape special characters such as ( [ { . * + ? with a backslash to search for them literally"
                ) from exc
            except (OverflowError, RecursionError) as exc:
                raise ToolError(f"regular expression {pattern!r} is too complex: {exc}") from exc
        #: rg may disagree with Python on patterns Python warns about (``[[:alpha:]]``).
        self.rg_ok = not caught and "\n" not in pattern
        self.whole_text = re.compile(pattern, flags | re.MULTILINE) if not _LOOKAROUND.search(pattern) else None
        try:
            from re import _parser  # type: ignore[attr-defined]

            literals = _required_literals(_parser.parse(pattern, flags))
        except Exception:  # a private module: no pre-filter rather than a failure
            literals = []
        if case_sensitive:
            self.literals = [lit.encode() for lit in literals if lit.isascii()]
        else:
            self.literals = [lit.lower().encode() for lit in literals if lit.isascii()]
        self.glob_match: Callable[[str], bool] | None = None
        self.rg_glob: str | None = None
        if file_glob:
            self.glob_match, self.rg_glob = compile_glob(file_glob)

    def wants(self, rel_path: str) -> bool:
        return self.glob_match is None or self.glob_match(rel_path)

    def _could_match(self, data: bytes) -> bool:
        if not self.literals:
            return True
        if self.case_sensitive:
            return all(lit in data for lit in self.literals)
        if not _ascii_case_is_enough(data):
            return True  # Unicode case folding (K/\u212a, s/\u017f): let the regex decide
        lowered = data.lower()
        return all(lit in lowered for lit in self.literals)

    def scan(self, root: str, rel_path: str, limit: int) -> list[LineMatch]:
        """Matching lines of one file (at most ``limit``); [] for binary, big or unreadable files."""
        try:
            fd = os.open(os.path.join(root, rel_path), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return []
        with os.fdopen(fd, "rb") as fh:
            try:
                if os.fstat(fd).st_size > MAX_FILE_BYTES:
                    return []
                data = fh.read(_HEAD_BYTES)
                if b"\x00" in data:
                    return []
                data += fh.read(MAX_FILE_BYTES)
            except OSError:
                return []
        if b"\x00" in data:
            return []
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        if self.literals and (self.case_sensitive or _ascii_case_is_enough(data)):
            haystack = data if self.case_sensitive else data.lower()
            if not all(lit in haystack for lit in self.literals):
                return []
            return self._scan_literal(rel_path, data, haystack, limit)
        if not self._could_match(data):
            return []
        text = data.decode("utf-8", "replace")
        if self.whole_text is None:
            return self._scan_lines(rel_path, text, limit)
        return self._scan_hits(rel_path, text, limit, self.whole_text)

    def _scan_literal(self, rel_path: str, data: bytes, haystack: bytes, limit: int) -> list[LineMatch]:
        """Visit only the lines holding the longest required literal (found by ``bytes.find``).

        Every match lies within one line and contains each required literal, so no other line
        can match. ``haystack`` is ``data`` or, for case-insensitive search of ASCII text, its
        lower-case copy (same offsets).
        """
        literal = max(self.literals, key=len)
        others = [lit for lit in self.literals if lit is not literal]
        found: list[LineMatch] = []
        pos = counted_to = 0
        number = 1
        size = len(data)
        while len(found) < limit:
            at = haystack.find(literal, pos)
            if at < 0:
                break
            start = haystack.rfind(b"\n", 0, at) + 1
            end = haystack.find(b"\n", at)
            end = size if end < 0 else end
            number += data.count(b"\n", counted_to, start)
            counted_to = start
            if not others or all(haystack.find(lit, start, end) >= 0 for lit in others):
                line = data[start:end].decode("utf-8", "replace")
                match = self.regex.search(line)
                if match is not None:
                    found.append(LineMatch(rel_path, number, match.start() + 1, _snippet(line, match.start())))
            pos = end + 1
        return found

    def _scan_lines(self, rel_path: str, text: str, limit: int) -> list[LineMatch]:
        """Every line through the regex (patterns with look-around or \\A/\\Z)."""
        found: list[LineMatch] = []
        search = self.regex.search
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # no line after the final newline (as rg counts lines)
        for number, line in enumerate(lines, start=1):
            match = search(line)
            if match is not None:
                found.append(LineMatch(rel_path, number, match.start() + 1, _snippet(line, match.start())))
                if len(found) >= limit:
                    break
        return found

    def _scan_hits(self, rel_path: str, text: str, limit: int, whole: re.Pattern[str]) -> list[LineMatch]:
        """Jump from hit to hit of the multi-line regex; confirm each hit's line on its own.

        Without look-around, any line that matches on its own also holds a whole-text match at
        or after its start, so resuming at the next line after each hit's line misses nothing.
        """
        found: list[LineMatch] = []
        pos = counted_to = 0
        number = 1
        size = len(text)
        while len(found) < limit and pos < size:
            hit = whole.search(text, pos)
            if hit is None:
                break
            start = text.rfind("\n", 0, hit.start()) + 1
            if start >= size:
                break
            end = text.find("\n", start)
            end = size if end < 0 else end
            number += text.count("\n", counted_to, start)
            counted_to = start
            line = text[start:end]
            match = self.regex.search(line)
            if match is not None:
                found.append(LineMatch(rel_path, number, match.start() + 1, _snippet(line, match.start())))
            pos = end + 1
        return found


def _ascii_case_is_enough(data: bytes) -> bool:
    return data.isascii() or not any(special in data for special in _ASCII_FOLD_SPECIALS)


def _snippet(line: str, start: int) -> str:
    stripped = line.strip()
    if len(stripped) <= SNIPPET_CHARS:
        return stripped
    offset = len(line) - len(line.lstrip())
    begin = max(0, start - offset - SNIPPET_CHARS // 4)
    piece = stripped[begin : begin + SNIPPET_CHARS]
    return ("…" if begin else "") + piece + ("…" if begin + SNIPPET_CHARS < len(stripped) else "")


class _Collector:
    """Keeps results in order and knows when one more than the cap has been seen."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.matches: list[LineMatch] = []
        self.files = 0

    @property
    def full(self) -> bool:
        return len(self.matches) > self.cap

    def add_file(self, query: TextQuery, root: str, rel: str) -> None:
        self.files += 1
        self.matches.extend(query.scan(root, rel, self.cap + 1 - len(self.matches)))

    def outcome(self, engine: str) -> SearchOutcome:
        return SearchOutcome(self.matches[: self.cap], len(self.matches) > self.cap, engine, self.files)


# ---------------------------------------------------------------- engines


def search_with_python(
    root: Path, query: TextQuery, cap: int = MAX_RESULTS, cancelled: threading.Event | None = None
) -> SearchOutcome:
    """The fallback: walk the workspace in order and scan each file. Blocking: run in a thread."""
    root_s = os.path.realpath(root)
    collector = _Collector(cap)
    for rel in walk_files(root_s):
        if cancelled is not None and cancelled.is_set():
            break
        if query.wants(rel):
            collector.add_file(query, root_s, rel)
            if collector.full:
                break
    return collector.outcome("python")


def rg_base_args(rg: str, query: TextQuery) -> list[str]:
    """rg flags that make its file set the workspace's (our ignore rules decide the rest)."""
    args = [
        rg, "--no-config", "--no-messages", "--hidden", "--no-require-git", "--no-ignore-parent",
        "--no-ignore-global", "--no-ignore-dot", "--max-filesize", "10M", "--sort", "path", "--line-buffered",
        "-i" if not query.case_sensitive else "-s",
    ]
    for name in sorted(BUILTIN_IGNORED_DIRS):
        args += ["-g", f"!{name}/"]
    args += ["-g", "!*.egg-info/", "-g", "!*.pyc", "-g", "!*.pyo"]
    if query.rg_glob:
        # a file *type*, not -g: an include glob would override .gitignore in rg
        args += ["--type-add", f"polarisglob:{query.rg_glob}", "-t", "polarisglob"]
    return args


async def search_with_rg(
    rg: str, root: Path, query: TextQuery, cap: int = MAX_RESULTS
) -> SearchOutcome | None:
    """Stream candidate files from rg, scan them in order, stop rg once the cap is exceeded.

    Runs in a worker thread (one hop, not one per candidate); a cancelled call kills rg at
    once. Returns None when rg refuses the pattern, so the caller can use the Python engine.
    """
    if not query.rg_ok:
        return None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        return await asyncio.to_thread(_search_with_rg_blocking, rg, str(root), query, cap, procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def _search_with_rg_blocking(
    rg: str, root: str, query: TextQuery, cap: int, procs: list[subprocess.Popen[bytes]]
) -> SearchOutcome | None:
    root_s = os.path.realpath(root)
    args = [*rg_base_args(rg, query), "--files-with-matches", "-e", query.pattern, "--", "."]
    try:
        proc = subprocess.Popen(
            args, cwd=root_s, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError:
        return None  # rg vanished or cannot run: the Python engine answers
    procs.append(proc)
    assert proc.stdout is not None and proc.stderr is not None
    collector = _Collector(cap)
    rules = IgnoreRules.for_root(root_s)
    got_any = eof = False
    try:
        for raw in proc.stdout:
            got_any = True
            rel = _rg_path(raw.rstrip(b"\n"))
            if query.wants(rel) and not rules.is_ignored(rel, False):
                collector.add_file(query, root_s, rel)
                if collector.full:
                    break
        else:
            eof = True
    finally:
        if not eof and proc.poll() is None:  # stopped early (cap reached, failure)
            proc.kill()
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
        proc.wait()
    if not got_any and proc.returncode == 2 and stderr.strip():
        return None  # rg could not parse the pattern (or failed): let Python search
    return collector.outcome("rg")


def _rg_path(raw: bytes) -> str:
    rel = os.fsdecode(raw)
    return rel[2:] if rel.startswith("./") else rel
