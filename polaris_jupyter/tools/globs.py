"""Glob patterns for file paths, shared by findFilesByPattern and searchFiles' filePattern.

A glob without ``/`` matches the file name at any depth (``*.py``, ``test_*.ts``), like a
.gitignore line; one with ``/`` matches the whole workspace-relative path. ``*``, ``?`` and
``[...]`` never cross ``/``; ``**`` spans folders; ``{a,b}`` is alternation.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from polaris_jupyter.tools._args import check_searchable_text
from polaris_jupyter.tools.base import ToolError

__all__ = ["compile_glob", "compile_path_glob"]


def _glob_body(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:[^/]*/)*")
            i += 3
            continue
        if pattern.startswith("**", i) and (i == 0 or pattern[i - 1] == "/") and i + 2 == n:
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("(?!/)[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif char == "{":
            end = pattern.find("}", i)
            if end < 0:
                out.append(re.escape(char))
            else:
                options = pattern[i + 1 : end].split(",")
                out.append("(?:" + "|".join(_glob_body(opt) for opt in options) + ")")
                i = end
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def compile_glob(pattern: str) -> tuple[Callable[[str], bool], str | None]:
    """A matcher for workspace-relative POSIX paths, and the basename glob rg may pre-filter on.

    A glob without ``/`` matches the file name at any depth (``*.py``, ``test_*.ts``); one with
    ``/`` matches the whole relative path; ``**`` spans folders, ``{a,b}`` is alternation.
    """
    glob = check_searchable_text("glob", pattern).strip()
    while glob.startswith("./"):
        glob = glob[2:]
    if not glob:
        raise ToolError("empty glob pattern; try '**/*.py' or 'src/**/*.ts'")
    if glob.startswith("/") or ".." in glob.split("/"):
        raise ToolError(f"glob {pattern!r} must be relative to the workspace root and must not contain '..'")
    basename = glob
    while basename.startswith("**/"):
        basename = basename[3:]
    try:
        if "/" not in basename:
            regex = re.compile(_glob_body(basename) + r"\Z")
            return (lambda rel: regex.match(rel.rsplit("/", 1)[-1]) is not None), basename
        regex = re.compile(_glob_body(glob) + r"\Z")
    except re.error as exc:
        raise ToolError(f"invalid glob {pattern!r}: {exc}") from exc
    return (lambda rel: regex.match(rel) is not None), None


def compile_path_glob(pattern: str) -> Callable[[str], bool]:
    """A matcher of the WHOLE relative path, with or without ``/`` (``README.md`` is the top-level
    file only, ``src/*/__init__.py`` one folder deep): for plans that promise exact files."""
    glob = check_searchable_text("glob", pattern).strip()
    while glob.startswith("./"):
        glob = glob[2:]
    if not glob or glob.startswith("/") or ".." in glob.split("/"):
        raise ToolError(f"glob {pattern!r} must be a non-empty path relative to the folder, without '..'")
    try:
        regex = re.compile(_glob_body(glob) + r"\Z")
    except re.error as exc:
        raise ToolError(f"invalid glob {pattern!r}: {exc}") from exc
    return lambda rel: regex.match(rel) is not None
