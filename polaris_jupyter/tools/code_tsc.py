"""TypeScript/JavaScript diagnostics: tree-sitter syntax errors plus ``tsc --noEmit``.

``tsc`` is used only when the workspace has TypeScript installed (``node_modules/.bin/tsc``
in the checked folder or a parent up to the root); otherwise the result says type checking
is not available and shows the syntax errors alone.
"""

from __future__ import annotations

import asyncio
import os
import re

from polaris_jupyter.tools import code_ts
from polaris_jupyter.tools.code_python import Diagnostic as Diag
from polaris_jupyter.tools.outline import OutlineCache

__all__ = ["TSC_TIMEOUT_S", "find_tsc", "run_tsc", "ts_diagnostics"]

TSC_TIMEOUT_S = 120.0


def find_tsc(root: str, start_dir: str) -> str | None:
    """``node_modules/.bin/tsc`` in ``start_dir`` or a parent, up to the workspace root."""
    current = start_dir
    while True:
        candidate = os.path.join(current, "node_modules", ".bin", "tsc")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        if os.path.realpath(current) == os.path.realpath(root):
            return None
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


_TSC_LINE = re.compile(r"^(?P<file>.+?)\((?P<line>\d+),(?P<col>\d+)\): (?P<sev>error|warning) (?P<code>TS\d+): (?P<msg>.*)$")


async def run_tsc(tsc: str, cwd: str, files: list[str] | None) -> list[tuple[str, int, int, str, str, str]]:
    """Run ``tsc --noEmit`` (project mode when ``files`` is None) → (file, line, col, sev, code, msg)."""
    args = [tsc, "--noEmit", "--pretty", "false"]
    if files is None:
        args += ["-p", "."]
    else:
        args += ["--allowJs", "--skipLibCheck", "--", *files]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        stdout, _ = await asyncio.wait_for(proc.communicate(), TSC_TIMEOUT_S)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    found = []
    for raw in stdout.decode("utf-8", "replace").splitlines():
        match = _TSC_LINE.match(raw.strip())
        if match:
            found.append(
                (match["file"], int(match["line"]), int(match["col"]), match["sev"], match["code"], match["msg"])
            )
    return found


async def ts_diagnostics(root: str, scope_rel: str | None, ts_files: list[str]) -> tuple[list[Diag], str]:
    cache = OutlineCache.for_root(root)

    def syntax() -> list[Diag]:
        out: list[Diag] = []
        for rel in ts_files:
            outline = cache.get(rel)
            for issue in outline.errors if outline is not None else []:
                out.append(Diag(rel, issue.line, issue.column, "error", "syntax", issue.message, "tree-sitter"))
        return out

    found = await asyncio.to_thread(syntax)
    plan = await asyncio.to_thread(_tsc_plan, root, scope_rel, ts_files)
    if plan is None:
        return found, (f"{_syntax_label()}; TypeScript type checking not available: no node_modules/.bin/tsc "
                       "in the workspace (install it with `npm install --save-dev typescript`)")
    tsc, project_dir, files_arg = plan
    try:
        raw = await run_tsc(tsc, project_dir, files_arg)
    except (OSError, asyncio.TimeoutError) as exc:
        return found, f"{_syntax_label()}; tsc not available ({type(exc).__name__}: {exc})"
    found += await asyncio.to_thread(_tsc_results, root, project_dir, scope_rel, ts_files, raw)
    return found, f"{_syntax_label()} + tsc"


def _syntax_label() -> str:
    return "tree-sitter syntax check" if code_ts.available() else f"no syntax check ({code_ts.MISSING_HINT})"


def _tsc_plan(root: str, scope_rel: str | None, ts_files: list[str]) -> tuple[str, str, list[str] | None] | None:
    """(tsc, folder to run it in, files or None for project mode), or None without tsc. Blocking."""
    start_dir = os.path.join(root, scope_rel or "")
    tsc = find_tsc(root, start_dir if os.path.isdir(start_dir) else os.path.dirname(start_dir))
    if tsc is None:
        return None
    project_dir = os.path.dirname(os.path.dirname(os.path.dirname(tsc)))
    if os.path.isfile(os.path.join(project_dir, "tsconfig.json")):
        return tsc, project_dir, None
    return tsc, project_dir, [os.path.relpath(os.path.join(root, f), project_dir) for f in ts_files]


def _tsc_results(
    root: str, project_dir: str, scope_rel: str | None, ts_files: list[str],
    raw: list[tuple[str, int, int, str, str, str]],
) -> list[Diag]:
    wanted = set(ts_files)
    out: list[Diag] = []
    for file, line, col, sev, code, msg in raw:
        rel = os.path.relpath(os.path.realpath(os.path.join(project_dir, file)), root).replace(os.sep, "/")
        if rel in wanted or (scope_rel is None and not rel.startswith("..")):
            out.append(Diag(rel, line, col, sev, code, msg, "tsc"))
    return out
