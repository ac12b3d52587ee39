"""Search tools: searchFiles (regex), searchCodebase (syntax-aware), findFilesByPattern (glob).

All three return at most 50 results in a deterministic order (path folder by folder, then
line), respect the workspace ignore rules and say when more results exist.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from pathlib import Path
from typing import Any

from polaris_jupyter.tools._args import check_args, get_bool, get_pattern, get_str
from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolResult, cap_text
from polaris_jupyter.tools.globs import compile_glob
from polaris_jupyter.tools.ignore import walk_files
from polaris_jupyter.tools.outline import Outline, OutlineCache, language_of
from polaris_jupyter.tools.search_text import (
    MAX_RESULTS,
    SearchOutcome,
    TextQuery,
    find_rg,
    search_with_python,
    search_with_rg,
)

__all__ = ["PATTERN_TYPES", "TOOLS", "find_files", "search_files"]

PATTERN_TYPES = ("import", "function", "class", "variable", "export", "call", "all")
MAX_PATTERN_CHARS = 1000
_TYPE_KINDS = frozenset({"class", "interface", "type"})


async def search_files(
    ctx: ToolContext, pattern: str, file_glob: str | None, case_sensitive: bool, *, engine: str = "auto"
) -> SearchOutcome:
    """Run one searchFiles query. ``engine``: "auto" (rg when on PATH), "rg" or "python"."""
    query = TextQuery(pattern, case_sensitive, file_glob)
    rg = find_rg() if engine in ("auto", "rg") else None
    if engine == "rg" and rg is None:
        raise ToolError("ripgrep (rg) is not installed")
    if rg is not None:
        outcome = await search_with_rg(rg, ctx.root, query)
        if outcome is not None:
            return outcome
    cancelled = threading.Event()
    try:
        return await asyncio.to_thread(search_with_python, ctx.root, query, MAX_RESULTS, cancelled)
    finally:
        cancelled.set()


async def _search_files_tool(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    check_args("searchFiles", args, ("pattern", "filePattern", "caseSensitive"), required=("pattern",))
    pattern = get_pattern(args, "pattern", max_chars=MAX_PATTERN_CHARS) or ""
    file_glob = get_pattern(args, "filePattern", max_chars=MAX_PATTERN_CHARS) or None
    case_sensitive = get_bool(args, "caseSensitive", default=False)
    outcome = await search_files(ctx, pattern, file_glob, case_sensitive)
    count = len(outcome.matches)
    where = f" in files matching {file_glob!r}" if file_glob else ""
    if not count:
        text = f"No matches for /{pattern}/{'' if case_sensitive else 'i'}{where}."
    else:
        more = f" (showing the first {count}; more exist: narrow the pattern or use filePattern)" if outcome.truncated else ""
        lines = [f"{count} matching line(s) for /{pattern}/{'' if case_sensitive else 'i'}{where}{more}:"]
        lines += [f"{m.path}:{m.line}:{m.column}: {m.snippet}" for m in outcome.matches]
        text = "\n".join(lines)
    text, cut = cap_text(text)
    summary = f"{count}{'+' if outcome.truncated else ''} match{'es' if count != 1 else ''} for {pattern!r}"
    data = {
        "engine": outcome.engine,
        "truncated": outcome.truncated,
        "results": [{"path": m.path, "line": m.line, "column": m.column, "snippet": m.snippet} for m in outcome.matches],
    }
    return ToolResult(text=text, summary=summary, truncated=outcome.truncated or cut, data=data)


# ---------------------------------------------------------------- findFilesByPattern


def find_files(root: str | Path, pattern: str, cap: int = MAX_RESULTS) -> tuple[list[str], bool]:
    """Workspace files matching a glob, in walk order; (first ``cap``, more exist). Blocking."""
    matches, _ = compile_glob(pattern)
    root = os.path.realpath(root)
    found: list[str] = []
    for rel in walk_files(root):
        if matches(rel):
            found.append(rel)
            if len(found) > cap:
                return found[:cap], True
    return found, False


async def _find_files_tool(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    check_args("findFilesByPattern", args, ("pattern",), required=("pattern",))
    pattern = get_pattern(args, "pattern", max_chars=MAX_PATTERN_CHARS) or ""
    found, more = await asyncio.to_thread(find_files, ctx.root, pattern)
    if not found:
        text = f"No files match {pattern!r}."
    else:
        head = f"{len(found)} file(s) match {pattern!r}" + (" (first 50 shown; more exist)" if more else "") + ":"
        text = "\n".join([head, *found])
    return ToolResult(
        text=text,
        summary=f"{len(found)}{'+' if more else ''} file(s) for {pattern!r}",
        truncated=more,
        data={"files": found, "truncated": more},
    )


# ---------------------------------------------------------------- searchCodebase


def _entries(outline: Outline, pattern_type: str) -> list[tuple[int, int, str, str, str]]:
    """(line, column, kind, name, detail) of one outline for ``pattern_type``."""
    out: list[tuple[int, int, str, str, str]] = []
    kinds = PATTERN_TYPES[:-1] if pattern_type == "all" else (pattern_type,)
    for sym in outline.symbols:
        kind = sym.kind.value
        # TS interfaces, type aliases and enums count as classes (type definitions)
        if pattern_type == "all" or kind == pattern_type or (pattern_type == "class" and kind in _TYPE_KINDS):
            where = f"{sym.container}." if sym.container else ""
            out.append((sym.line, sym.column, kind, sym.name, f"{where}{sym.name}"))
    if "import" in kinds:
        out += [(r.line, r.column, "import", r.name, r.detail) for r in outline.imports]
    if "export" in kinds:
        out += [(r.line, r.column, "export", r.name, r.detail) for r in outline.exports]
    if "call" in kinds:
        out += [(r.line, r.column, "call", r.name, r.detail) for r in outline.calls]
    out.sort()
    return out


def search_codebase(
    root: str | Path, pattern_type: str, term: str | None, file_glob: str | None, cap: int = MAX_RESULTS
) -> tuple[list[dict[str, Any]], bool, int]:
    """Syntax-aware matches over Python and TS/JS files; (results, more exist, files parsed).

    With a ``searchTerm``, entries whose own name holds it come first, in walk order; entries
    that match only through their detail (a method of a class whose name holds the term, the
    imported names of a module) fill what is left of the cap. So "function cookie" lists
    ``get_cookie`` before every method of ``CookieJar``.
    """
    root = os.path.realpath(root)
    glob_match = compile_glob(file_glob)[0] if file_glob else None
    needle = term.lower() if term else None
    # a name-like term must occur in the text of a file for any of its entries to match it,
    # so uncached files without it are not parsed at all
    must_contain = needle.encode() if needle and re.fullmatch(r"[\w$]+", needle) else None
    cache = OutlineCache.for_root(root)
    by_name: list[dict[str, Any]] = []
    by_detail: list[dict[str, Any]] = []
    parsed = 0
    lines_cache: dict[str, list[str]] = {}
    for rel in walk_files(root):
        if language_of(rel) is None or (glob_match is not None and not glob_match(rel)):
            continue
        outline = cache.get(rel, must_contain=must_contain)
        parsed += 1
        if outline is None:
            continue
        for line, column, kind, name, detail in _entries(outline, pattern_type):
            own = needle is None or needle in name.lower()
            if not own and (needle is None or needle not in detail.lower() or len(by_detail) > cap):
                continue
            if rel not in lines_cache:
                with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
                    lines_cache[rel] = fh.read().split("\n")
            text = lines_cache[rel][line - 1].strip() if line <= len(lines_cache[rel]) else ""
            result = {"path": rel, "line": line, "column": column, "kind": kind, "name": name, "snippet": text[:200]}
            if detail != name and kind in ("function", "class", "variable", "interface", "type"):
                result["container"] = detail[: -len(name) - 1] if detail.endswith("." + name) else detail
            (by_name if own else by_detail).append(result)
            if len(by_name) > cap:
                return by_name[:cap], True, parsed
    results = (by_name + by_detail)[:cap]
    return results, len(by_name) + len(by_detail) > cap, parsed


async def _search_codebase_tool(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    check_args("searchCodebase", args, ("patternType", "searchTerm", "filePattern"), required=("patternType",))
    pattern_type = (get_str(args, "patternType") or "").lower()
    if pattern_type not in PATTERN_TYPES:
        raise ToolError(f"patternType must be one of {', '.join(PATTERN_TYPES)}, got {args.get('patternType')!r}")
    term = get_pattern(args, "searchTerm", max_chars=MAX_PATTERN_CHARS) or None
    file_glob = get_pattern(args, "filePattern", max_chars=MAX_PATTERN_CHARS) or None
    results, more, parsed = await asyncio.to_thread(
        search_codebase, ctx.root, pattern_type, term, file_glob
    )
    what = f"{pattern_type} matches" + (f" for {term!r}" if term else "")
    if not results:
        text = f"No {what} in {parsed} Python/TypeScript/JavaScript file(s)."
    else:
        head = f"{len(results)} {what}" + (" (first 50 shown; more exist: add searchTerm or filePattern)" if more else "") + ":"
        body = [f"{r['path']}:{r['line']}:{r['column']}: [{r['kind']}] "
                + (f"{r['container']}.{r['name']}" if r.get("container") else r["name"]) + f" — {r['snippet']}"
                for r in results]
        text = "\n".join([head, *body])
    text, cut = cap_text(text)
    return ToolResult(
        text=text, summary=f"{len(results)}{'+' if more else ''} {what}", truncated=more or cut,
        data={"results": results, "truncated": more},
    )


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


TOOLS: list[Tool] = [
    Tool(
        name="searchFiles",
        description=(
            "Search the text of workspace files with a regular expression (Python regex syntax), line by line. "
            "Returns at most 50 matching lines as path:line:column: snippet, sorted by path then line. "
            "Ignores .git, node_modules, virtualenvs, caches, binary files and .gitignore'd paths."
        ),
        parameters=_schema(
            {
                "pattern": {"type": "string", "description": "Regular expression, e.g. 'def \\w+_handler' or 'TODO'."},
                "filePattern": {"type": "string", "description": "Optional glob limiting the files searched, e.g. '*.py' or 'src/**/*.ts'."},
                "caseSensitive": {"type": "boolean", "description": "Match case exactly (default false).", "default": False},
            },
            ["pattern"],
        ),
        fn=_search_files_tool,
        group="search",
        path_params=(),
    ),
    Tool(
        name="searchCodebase",
        description=(
            "Syntax-aware search over Python, TypeScript and JavaScript files: find imports, function/class/variable "
            "definitions, exports or call sites, optionally whose name contains searchTerm (case-insensitive). "
            "Returns at most 50 results with path, line, column, kind and the source line."
        ),
        parameters=_schema(
            {
                "patternType": {"type": "string", "enum": list(PATTERN_TYPES), "description": "What to look for."},
                "searchTerm": {"type": "string", "description": "Optional substring of the name (module name for imports, callee for calls)."},
                "filePattern": {"type": "string", "description": "Optional glob limiting the files, e.g. 'src/**/*.tsx'."},
            },
            ["patternType"],
        ),
        fn=_search_codebase_tool,
        group="search",
        path_params=(),
    ),
    Tool(
        name="findFilesByPattern",
        description=(
            "List workspace files whose path matches a glob: '*.py' matches the file name at any depth, a glob with '/' "
            "matches the whole relative path, '**' spans folders, '{a,b}' is alternation. At most 50 paths, sorted."
        ),
        parameters=_schema(
            {"pattern": {"type": "string", "description": "Glob, e.g. '**/*.test.ts', 'src/**/index.{js,ts}', 'README*'."}},
            ["pattern"],
        ),
        fn=_find_files_tool,
        group="search",
        path_params=(),
    ),
]
