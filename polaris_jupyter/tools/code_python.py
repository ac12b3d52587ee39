"""Python code intelligence: ``ast`` outlines, jedi navigation, ruff/pyflakes diagnostics.

Everything here is synchronous and meant to run in ``asyncio.to_thread`` (jedi and the parsers
are CPU-bound), except :func:`python_diagnostics` which runs ruff as an asyncio subprocess.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shutil
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from polaris_jupyter.tools.base import ToolError
from polaris_jupyter.tools.code_roots import python_source_roots
from polaris_jupyter.tools.outline import (
    CodeRef,
    Language,
    Outline,
    SymbolDef,
    SymbolKind,
    SyntaxIssue,
    char_column,
)

__all__ = [
    "Diagnostic",
    "Location",
    "find_ruff",
    "jedi_definitions",
    "jedi_references",
    "python_diagnostics",
    "python_outline",
]

RUFF_TIMEOUT_S = 60.0
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: jedi keeps process-wide caches and is not thread-safe: one call at a time.
_JEDI_LOCK = threading.Lock()

#: pyflakes messages that mean the code will fail at run time; the rest are warnings.
_PYFLAKES_ERRORS = frozenset(
    {"UndefinedName", "UndefinedExport", "UndefinedLocal", "DuplicateArgument", "ReturnOutsideFunction",
     "YieldOutsideFunction", "ContinueOutsideLoop", "BreakOutsideLoop", "TwoStarredExpressions",
     "ForwardAnnotationSyntaxError"}
)
#: ruff codes reported as errors (syntax errors, undefined names, ...); everything else is a warning.
_RUFF_ERROR_PREFIXES = ("E9", "F821", "F822", "F823", "F831", "F701", "F702", "F704", "F706", "F707")


@dataclass(frozen=True)
class Location:
    path: str
    line: int
    column: int
    snippet: str
    kind: str = ""
    name: str = ""


@dataclass(frozen=True)
class Diagnostic:
    path: str
    line: int
    column: int
    severity: str  # "error" | "warning"
    code: str
    message: str
    source: str


# ---------------------------------------------------------------- outline (ast)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    return ""


class _OutlineVisitor(ast.NodeVisitor):
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self._ascii = [line.isascii() for line in lines]
        self.out = Outline(language=Language.PYTHON)
        self._scope: list[tuple[str, str]] = []  # (kind, name)

    def _col(self, lineno: int, byte_col: int) -> int:
        if not 0 < lineno <= len(self.lines) or self._ascii[lineno - 1]:
            return byte_col + 1
        return char_column(self.lines[lineno - 1], byte_col)

    def _name_col(self, lineno: int, byte_col: int, name: str) -> int:
        text = self.lines[lineno - 1] if 0 < lineno <= len(self.lines) else ""
        start = self._col(lineno, byte_col) - 1
        at = text.find(name, start)
        return (at if at >= 0 else start) + 1

    def _define(self, name: str, kind: SymbolKind, node: ast.stmt | ast.expr, byte_col: int | None = None) -> None:
        col = self._name_col(node.lineno, node.col_offset if byte_col is None else byte_col, name)
        container = self._scope[-1][1] if self._scope else None
        self.out.symbols.append(SymbolDef(name, kind, node.lineno, col, container, top_level=not self._scope))

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._define(node.name, SymbolKind.FUNCTION, node)
        for deco in node.decorator_list:
            self.visit(deco)
        self._scope.append(("function", node.name))
        for stmt in node.body:
            self.visit(stmt)
        self._scope.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = {_dotted(b).rsplit(".", 1)[-1] for b in node.bases}
        kind = SymbolKind.INTERFACE if bases & {"Protocol", "TypedDict"} else SymbolKind.CLASS
        self._define(node.name, kind, node)
        for expr in [*node.bases, *node.decorator_list]:
            self.visit(expr)
        self._scope.append(("class", node.name))
        for stmt in node.body:
            self.visit(stmt)
        self._scope.pop()

    def _in_function(self) -> bool:
        return any(kind == "function" for kind, _ in self._scope)

    def _targets(self, target: ast.expr, kind: SymbolKind) -> None:
        if isinstance(target, ast.Name):
            self._define(target.id, kind, target, target.col_offset)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._targets(elt, kind)

    def visit_Assign(self, node: ast.Assign) -> None:
        if not self._in_function():
            for target in node.targets:
                self._targets(target, SymbolKind.VARIABLE)
            if not self._scope:
                self._maybe_all(node.targets, node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if not self._in_function():
            is_alias = _dotted(node.annotation).rsplit(".", 1)[-1] == "TypeAlias"
            self._targets(node.target, SymbolKind.TYPE if is_alias else SymbolKind.VARIABLE)
        self.generic_visit(node)

    def visit_TypeAlias(self, node: ast.AST) -> None:  # Python 3.12 ``type X = ...``
        name = getattr(node, "name", None)
        if isinstance(name, ast.Name) and isinstance(node, ast.stmt):
            self._define(name.id, SymbolKind.TYPE, node)

    def _maybe_all(self, targets: list[ast.expr], value: ast.expr) -> None:
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and isinstance(
            value, (ast.List, ast.Tuple)
        ):
            for elt in value.elts:
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                    self.out.exports.append(
                        CodeRef(elt.value, elt.lineno, self._col(elt.lineno, elt.col_offset), "__all__")
                    )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            detail = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
            self.out.imports.append(CodeRef(alias.name, node.lineno, self._col(node.lineno, node.col_offset), detail))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        names = ", ".join(a.name for a in node.names)
        self.out.imports.append(
            CodeRef(module, node.lineno, self._col(node.lineno, node.col_offset), f"from {module} import {names}")
        )

    def visit_Call(self, node: ast.Call) -> None:
        callee = _dotted(node.func)
        if callee:
            self.out.calls.append(CodeRef(callee, node.lineno, self._col(node.lineno, node.col_offset)))
        self.generic_visit(node)


def python_outline(text: str) -> Outline:
    """Symbols, imports, ``__all__`` exports and calls of a Python module (syntax errors noted)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except SyntaxError as exc:
        out = Outline(language=Language.PYTHON)
        out.errors.append(SyntaxIssue(exc.lineno or 1, exc.offset or 1, exc.msg))
        return out
    except (ValueError, RecursionError, MemoryError) as exc:
        out = Outline(language=Language.PYTHON)
        out.errors.append(SyntaxIssue(1, 1, f"cannot parse: {exc}"))
        return out
    visitor = _OutlineVisitor(_LINE_BREAK.split(text))  # ast's line breaks, not str.splitlines' (\f, \x1c…)
    visitor.visit(tree)
    return visitor.out


# ---------------------------------------------------------------- jedi navigation


def _script(root: Path, abs_path: Path, source: str):  # type: ignore[no-untyped-def]
    """A jedi script whose imports find the workspace's own packages (``src/``, pyproject roots)
    before the interpreter's site-packages: jedi puts those folders after them by default."""
    import jedi

    roots = [str(p) for p in python_source_roots(root, abs_path)]
    environment_path = jedi.Project(str(root)).get_environment().get_sys_path()  # memoized by jedi
    sys_path = roots + [p for p in environment_path if p and p not in roots]
    project = jedi.Project(str(root), sys_path=sys_path)
    return jedi.Script(code=source, path=str(abs_path), project=project)


def _to_jedi_column(source: str, line: int, column: int) -> int:
    lines = source.splitlines() or [""]
    if line > len(lines):
        raise ToolError(f"line {line} is past the end of the file ({len(lines)} lines)")
    text = lines[line - 1]
    if column > len(text) + 1:
        raise ToolError(f"column {column} is past the end of line {line} ({len(text)} characters)")
    return column - 1


def _jedi_locations(root: Path, names: list, kind_label: str) -> list[Location]:  # type: ignore[type-arg]
    root_real = os.path.realpath(root)
    out: list[Location] = []
    for name in names:
        module_path = name.module_path
        if module_path is None or name.line is None:
            out.append(Location("<builtin>", 0, 0, f"{name.type} {name.full_name or name.name}", name.type, name.name))
            continue
        real = os.path.realpath(module_path)
        if real == root_real or not real.startswith(root_real + os.sep):
            # no source text from outside the workspace: the module, the kind and the name only
            label = f"<outside workspace: {name.module_name}>"
            out.append(Location(label, name.line, name.column + 1, f"{name.type} {name.name}", name.type, name.name))
            continue
        rel = Path(real).relative_to(root_real).as_posix()
        try:
            snippet = name.get_line_code().strip()
        except Exception:  # jedi can fail to re-read a file that changed meanwhile
            snippet = name.description
        out.append(Location(rel, name.line, name.column + 1, snippet[:200], name.type or kind_label, name.name))
    return out


def jedi_definitions(root: Path, abs_path: Path, source: str, line: int, column: int) -> list[Location]:
    col0 = _to_jedi_column(source, line, column)
    with _JEDI_LOCK:
        script = _script(root, abs_path, source)
        names = script.goto(line, col0, follow_imports=True, follow_builtin_imports=False)
        if not names:
            names = script.infer(line, col0)
        return _jedi_locations(root, names, "definition")


def jedi_references(root: Path, abs_path: Path, source: str, line: int, column: int) -> list[Location]:
    col0 = _to_jedi_column(source, line, column)
    with _JEDI_LOCK:
        script = _script(root, abs_path, source)
        names = script.get_references(line, col0, include_builtins=False, scope="project")
        return _jedi_locations(root, names, "reference")


# ---------------------------------------------------------------- diagnostics


def find_ruff() -> str | None:
    """ruff on PATH, else the one installed next to this interpreter (a venv's bin/)."""
    found = shutil.which("ruff")
    if found:
        return found
    sibling = Path(sys.executable).parent / ("ruff.exe" if os.name == "nt" else "ruff")
    return str(sibling) if sibling.is_file() and os.access(sibling, os.X_OK) else None


def _syntax_diagnostics(rel_path: str, source: str) -> list[Diagnostic]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, rel_path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return [Diagnostic(rel_path, exc.lineno or 1, exc.offset or 1, "error", "syntax-error", exc.msg, "python")]
    except ValueError as exc:
        return [Diagnostic(rel_path, 1, 1, "error", "syntax-error", str(exc), "python")]
    return []


async def _ruff_diagnostics(ruff: str, root: Path, rel_paths: list[str] | None) -> list[Diagnostic]:
    args = [ruff, "check", "--output-format", "json", "--no-cache", "--exit-zero", "--no-fix"]
    args += ["--", *rel_paths] if rel_paths else ["--", "."]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=str(root), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), RUFF_TIMEOUT_S)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    return await asyncio.to_thread(_parse_ruff, stdout, stderr, root)


def _parse_ruff(stdout: bytes, stderr: bytes, root: Path) -> list[Diagnostic]:
    try:
        items = json.loads(stdout.decode("utf-8", "replace") or "[]")
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"ruff failed: {stderr.decode('utf-8', 'replace')[:500]}") from exc
    root_real = os.path.realpath(root)
    out: list[Diagnostic] = []
    for item in items:
        code = item.get("code") or "syntax-error"
        filename = os.path.realpath(os.path.join(root_real, item.get("filename", "")))
        rel = os.path.relpath(filename, root_real).replace(os.sep, "/")
        loc = item.get("location") or {}
        is_syntax = code in ("syntax-error", "invalid-syntax")
        severity = "error" if is_syntax or code.startswith(_RUFF_ERROR_PREFIXES) else "warning"
        out.append(
            Diagnostic(rel, int(loc.get("row", 1)), int(loc.get("column", 1)), severity, code,
                       str(item.get("message", "")), "ruff")
        )
    return out


def _pyflakes_file(rel_path: str, source: str) -> list[Diagnostic]:
    from pyflakes import checker  # type: ignore[import-untyped]

    syntax = _syntax_diagnostics(rel_path, source)
    if syntax:
        return syntax
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = ast.parse(source, filename=rel_path)
    out: list[Diagnostic] = []
    for msg in checker.Checker(tree, filename=rel_path).messages:
        name = type(msg).__name__
        severity = "error" if name in _PYFLAKES_ERRORS else "warning"
        text = msg.message % msg.message_args
        out.append(Diagnostic(rel_path, msg.lineno, int(msg.col) + 1, severity, name, text, "pyflakes"))
    return out


def _have_pyflakes() -> bool:
    try:
        import pyflakes  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


async def python_diagnostics(
    root: Path, scope_rel: str | None, py_files: list[str], *, ruff: str | None
) -> tuple[list[Diagnostic], str]:
    """Diagnostics for a file or folder (``scope_rel``; None = workspace) and the checker used.

    With ruff the workspace's own ruff configuration applies and ruff walks ``scope_rel``
    itself; otherwise ``py_files`` are checked one by one. Syntax errors always come through
    (ruff reports them, the fallbacks use ``compile``).
    """
    note = ""
    if ruff:
        try:
            return await _ruff_diagnostics(ruff, root, [scope_rel] if scope_rel else None), "ruff"
        except (OSError, RuntimeError, asyncio.TimeoutError) as exc:
            note = f" (ruff failed: {str(exc)[:200]})"
    if _have_pyflakes():
        checker_name = "pyflakes"
        fn = _pyflakes_file
    else:
        checker_name = "compile() only: install ruff or pyflakes for lint diagnostics"
        fn = _syntax_diagnostics

    def run_all() -> list[Diagnostic]:
        out: list[Diagnostic] = []
        for rel in py_files:
            try:
                with open(os.path.join(root, rel), encoding="utf-8-sig", errors="replace") as fh:
                    source = fh.read()
            except OSError:
                continue
            out.extend(fn(rel, source))
        return out

    return await asyncio.to_thread(run_all), checker_name + note
