"""Code tools: findSymbol, getReferences, goToDefinition, getDiagnostics.

Python goes through jedi (semantic navigation, the workspace root as jedi project) and ruff or
pyflakes (diagnostics); TypeScript/JavaScript through tree-sitter (syntax-aware navigation)
and ``tsc --noEmit`` when the workspace has TypeScript installed. Positions are 1-based lines
and columns everywhere, in arguments and in results.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from polaris_jupyter.tools import code_python, code_ts, code_ts_nav, code_tsc
from polaris_jupyter.tools._args import check_args, get_int, get_pattern, get_str
from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolResult, cap_text
from polaris_jupyter.tools.ignore import walk_files
from polaris_jupyter.tools.outline import Language, OutlineCache, language_of
from polaris_jupyter.tools.sandbox import relative_to_root, resolve_path
from polaris_jupyter.tools.search_text import path_key

__all__ = ["TOOLS"]

MAX_SYMBOLS = 50
MAX_LOCATIONS = 50
MAX_DIAGNOSTICS = 100
MAX_DIAGNOSTIC_FILES = 2000
SYMBOL_KINDS = ("function", "class", "variable", "interface", "type", "all")
SEVERITIES = ("error", "warning", "all")
Loc = code_python.Location
Diag = code_python.Diagnostic


async def _real_root(ctx: ToolContext) -> str:
    return await asyncio.to_thread(os.path.realpath, ctx.root)


def _choice(args: dict[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    value = get_str(args, name) or default
    if value.lower() not in choices:
        raise ToolError(f"argument {name!r} must be one of {', '.join(choices)}, got {value!r}")
    return value.lower()


# ---------------------------------------------------------------- findSymbol


def find_symbols(root: str, query: str, kind: str) -> tuple[list[dict[str, Any]], int]:
    """Definitions whose name contains ``query`` (case-insensitive), best matches first. Blocking."""
    needle = query.lower()
    cache = OutlineCache.for_root(root)
    hits: list[tuple[int, list[str], int, dict[str, Any]]] = []
    for rel in walk_files(root):
        if language_of(rel) is None:
            continue
        outline = cache.get(rel, must_contain=needle.encode())
        if outline is None:
            continue
        for sym in outline.symbols:
            name = sym.name.lower()
            if needle not in name or (kind != "all" and sym.kind.value != kind):
                continue
            rank = 0 if name == needle else 1 if name.startswith(needle) else 2
            rank = rank * 2 + (0 if sym.top_level else 1)
            hits.append((rank, path_key(rel), sym.line, {
                "name": sym.name, "kind": sym.kind.value, "path": rel, "line": sym.line, "column": sym.column,
                "container": sym.container, "language": outline.language.value,
            }))
    hits.sort(key=lambda h: (h[0], h[1], h[2]))
    return [h[3] for h in hits[:MAX_SYMBOLS]], len(hits)


async def _find_symbol_tool(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    check_args("findSymbol", args, ("query", "kind"), required=("query",))
    query = (get_pattern(args, "query", max_chars=200) or "").strip()
    if not query:
        raise ToolError("findSymbol: query must not be empty")
    kind = _choice(args, "kind", SYMBOL_KINDS, "all")
    found, total = await asyncio.to_thread(find_symbols, await _real_root(ctx), query, kind)
    label = f"{kind} symbols" if kind != "all" else "symbols"
    if not found:
        text = f"No {label} matching {query!r} in the workspace's Python/TypeScript/JavaScript files."
    else:
        head = f"{total} {label} matching {query!r}" + (f" (best {len(found)} shown)" if total > len(found) else "") + ":"
        body = [
            f"{s['path']}:{s['line']}:{s['column']}: {s['kind']} "
            + (f"{s['container']}.{s['name']}" if s["container"] else s["name"])
            for s in found
        ]
        text = "\n".join([head, *body])
    return ToolResult(text=text, summary=f"{total} symbol(s) for {query!r}", truncated=total > len(found),
                      data={"symbols": found, "total": total})


# ---------------------------------------------------------------- navigation


def _position_args(tool: str, args: dict[str, Any], ctx: ToolContext) -> tuple[Path, str, int, int]:
    check_args(tool, args, ("path", "line", "column"), required=("path", "line", "column"))
    abs_path = resolve_path(ctx.root, args.get("path"), must_exist=True)
    if not abs_path.is_file():
        raise ToolError(f"{args.get('path')!r} is not a file")
    line = get_int(args, "line", min_value=1) or 1
    column = get_int(args, "column", min_value=1) or 1
    return abs_path, relative_to_root(ctx.root, abs_path), line, column


def _read_source(abs_path: Path) -> str:
    with open(abs_path, encoding="utf-8-sig", errors="replace") as fh:
        return fh.read()


async def _navigate(tool: str, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    abs_path, rel, line, column = _position_args(tool, args, ctx)
    language = language_of(rel)
    if language is None:
        raise ToolError(f"{tool} supports Python and TypeScript/JavaScript files; {rel!r} is neither")
    root = await _real_root(ctx)
    want_refs = tool == "getReferences"
    if language is Language.PYTHON:
        source = await asyncio.to_thread(_read_source, abs_path)
        jedi_fn = code_python.jedi_references if want_refs else code_python.jedi_definitions
        try:
            locations = await asyncio.to_thread(jedi_fn, Path(root), abs_path, source, line, column)
        except ValueError as exc:  # jedi's own position checks
            raise ToolError(f"{tool}: {exc} (positions are 1-based)") from exc
        how = "jedi"
    else:
        if not code_ts.available():
            raise ToolError(code_ts.MISSING_HINT)
        data = await asyncio.to_thread(abs_path.read_bytes)
        ts_fn = code_ts_nav.ts_references if want_refs else code_ts_nav.ts_definitions
        locations = await asyncio.to_thread(ts_fn, root, rel, data, language, line, column)
        how = "tree-sitter, by name (not type-checked)" if want_refs else "tree-sitter, lexical scope + imports"
    locations.sort(key=lambda loc: (path_key(loc.path), loc.line, loc.column))
    shown = locations[:MAX_LOCATIONS]
    what = "reference(s)" if want_refs else "definition(s)"
    if not shown:
        text = f"No {what} found at {rel}:{line}:{column} ({how})."
    else:
        head = f"{len(locations)} {what} for the name at {rel}:{line}:{column} ({how})" + (
            f", first {len(shown)} shown" if len(locations) > len(shown) else "") + ":"
        body = [f"{loc.path}:{loc.line}:{loc.column}: [{loc.kind}] {loc.snippet}" for loc in shown]
        text = "\n".join([head, *body])
    text, cut = cap_text(text)
    return ToolResult(
        text=text, summary=f"{len(locations)} {what}", truncated=cut or len(locations) > len(shown),
        data={"locations": [loc.__dict__ for loc in shown], "engine": how},
    )


async def _references_tool(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    return await _navigate("getReferences", args, ctx)


async def _definition_tool(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    return await _navigate("goToDefinition", args, ctx)


# ---------------------------------------------------------------- getDiagnostics


def _scope_files(root: str, scope_rel: str | None, is_file: bool) -> tuple[list[str], list[str]]:
    """(python files, TS/JS files) in the scope, in walk order, capped."""
    files = [scope_rel] if is_file and scope_rel else list(walk_files(root, scope_rel or "."))
    py = [f for f in files if language_of(f) is Language.PYTHON][:MAX_DIAGNOSTIC_FILES]
    ts = [f for f in files if language_of(f) not in (None, Language.PYTHON)][:MAX_DIAGNOSTIC_FILES]
    return py, ts


async def _diagnostics_tool(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    check_args("getDiagnostics", args, ("path", "severity"))
    severity = _choice(args, "severity", SEVERITIES, "all")
    root = await _real_root(ctx)
    scope_rel: str | None = None
    is_file = False
    if get_str(args, "path") not in (None, "", "."):
        abs_path = resolve_path(ctx.root, args.get("path"), must_exist=True)
        scope_rel = relative_to_root(ctx.root, abs_path)
        is_file = abs_path.is_file()
        if is_file and language_of(scope_rel) is None:
            raise ToolError(f"getDiagnostics supports Python and TypeScript/JavaScript files; {scope_rel!r} is neither")
    py_files, ts_files = await asyncio.to_thread(_scope_files, root, scope_rel, is_file)
    diagnostics: list[Diag] = []
    checkers: list[str] = []
    if py_files:
        found, checker = await code_python.python_diagnostics(
            Path(root), scope_rel, py_files, ruff=code_python.find_ruff()
        )
        diagnostics += found
        checkers.append(checker)
    if ts_files:
        found, checker = await code_tsc.ts_diagnostics(root, scope_rel, ts_files)
        diagnostics += found
        checkers.append(checker)
    if severity != "all":
        diagnostics = [d for d in diagnostics if d.severity == severity]
    diagnostics.sort(key=lambda d: (path_key(d.path), d.line, d.column, d.code))
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings_count = len(diagnostics) - errors
    scope = scope_rel or "the workspace"
    counts = f"{errors} error(s), {warnings_count} warning(s)"
    if not py_files and not ts_files:
        text = f"No Python or TypeScript/JavaScript files in {scope}."
    else:
        shown = diagnostics[:MAX_DIAGNOSTICS]
        head = f"{counts} in {scope} (checked with: {'; '.join(checkers)})"
        if len(shown) < len(diagnostics):
            head += f"; first {len(shown)} shown"
        body = [f"{d.path}:{d.line}:{d.column}: {d.severity} {d.code}: {d.message}" for d in shown]
        text = "\n".join([head + (":" if body else "."), *body])
    text, cut = cap_text(text)
    return ToolResult(
        text=text, summary=counts, truncated=cut or len(diagnostics) > MAX_DIAGNOSTICS,
        data={"diagnostics": [d.__dict__ for d in diagnostics[:MAX_DIAGNOSTICS]], "checkers": checkers,
              "errors": errors, "warnings": warnings_count},
    )


# ---------------------------------------------------------------- tool table


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_POSITION = {
    "path": {"type": "string", "description": "File path relative to the workspace root."},
    "line": {"type": "integer", "minimum": 1, "description": "1-based line number."},
    "column": {"type": "integer", "minimum": 1, "description": "1-based column of a character in the name."},
}

TOOLS: list[Tool] = [
    Tool(
        name="findSymbol",
        description=(
            "Find where functions, classes, variables, interfaces or types are defined, by (part of) their name, "
            "across the workspace's Python and TypeScript/JavaScript files. Exact and prefix matches come first. "
            "Returns path:line:column of each definition (1-based), at most 50."
        ),
        parameters=_schema(
            {
                "query": {"type": "string", "description": "Name or part of a name, case-insensitive, e.g. 'UserService'."},
                "kind": {"type": "string", "enum": list(SYMBOL_KINDS), "description": "Only this kind (default all)."},
            },
            ["query"],
        ),
        fn=_find_symbol_tool, group="code", path_params=(),
    ),
    Tool(
        name="getReferences",
        description=(
            "List the places that use the name at a position (1-based line and column) in a Python or "
            "TypeScript/JavaScript file. Python: semantic (jedi). TS/JS: same-name identifiers. At most 50."
        ),
        parameters=_schema(dict(_POSITION), ["path", "line", "column"]),
        fn=_references_tool, group="code",
    ),
    Tool(
        name="goToDefinition",
        description=(
            "Find where the name at a position (1-based line and column) in a Python or TypeScript/JavaScript file "
            "is defined, following imports. Returns path:line:column of the definition(s)."
        ),
        parameters=_schema(dict(_POSITION), ["path", "line", "column"]),
        fn=_definition_tool, group="code",
    ),
    Tool(
        name="getDiagnostics",
        description=(
            "Check code for errors and warnings: Python with ruff (or pyflakes) plus syntax errors, TypeScript/"
            "JavaScript with syntax checks and tsc when the workspace has TypeScript installed. Omit path for the "
            "whole workspace; give a file or folder to narrow it. severity: error, warning or all (default)."
        ),
        parameters=_schema(
            {
                "path": {"type": "string", "description": "Optional file or folder relative to the workspace root."},
                "severity": {"type": "string", "enum": list(SEVERITIES), "description": "Which diagnostics to show (default all)."},
            },
            [],
        ),
        fn=_diagnostics_tool, group="code",
    ),
]
