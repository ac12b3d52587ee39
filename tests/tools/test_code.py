"""Code tools: findSymbol, goToDefinition, getReferences (jedi / tree-sitter), getDiagnostics."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.tools import code, code_python
from polaris_jupyter.tools.base import ToolContext, ToolError, ToolResult

TOOLS = {tool.name: tool for tool in code.TOOLS}


async def call(name: str, args: dict[str, Any], root: Path) -> ToolResult:
    out = await TOOLS[name].fn(args, ToolContext(root=root))
    assert isinstance(out, ToolResult)
    return out


def write(root: Path, rel: str, content: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


MODELS_PY = """\
class User:
    def __init__(self, name: str) -> None:
        self.name = name

    def greet(self) -> str:
        return "hi " + self.name


def make_user(name):
    return User(name)
"""

APP_PY = """\
from pkg.models import User, make_user


def main():
    u = make_user("ann")
    print(u.greet())
    return User("bob")
"""

UTIL_TS = """\
export interface Point { x: number; y: number }
export type Id = string;
export function distance(a: Point, b: Point): number {
  return Math.hypot(a.x - b.x, a.y - b.y);
}
export default class Shape { area(): number { return 0 } }
"""

MAIN_TS = """\
import Shape, { distance, Point } from "./util";
const origin: Point = { x: 0, y: 0 };
function run(p: Point, distanceScale: number) {
  const d = distance(origin, p);
  const origin2 = origin;
  return d * distanceScale + new Shape().area();
}
function shadow(origin: number) {
  return origin + 1;
}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/models.py", MODELS_PY)
    write(root, "pkg/app.py", APP_PY)
    write(root, "web/util.ts", UTIL_TS)
    write(root, "web/main.ts", MAIN_TS)
    write(root, "notes.md", "# notes\n")
    return root


def locations(result: ToolResult) -> list[tuple[str, int, int]]:
    assert result.data is not None
    return [(loc["path"], loc["line"], loc["column"]) for loc in result.data["locations"]]


@pytest.mark.asyncio
async def test_find_symbol_python_and_typescript(project: Path) -> None:
    result = await call("findSymbol", {"query": "user"}, project)
    assert result.data is not None
    found = [(s["path"], s["line"], s["column"], s["kind"], s["name"]) for s in result.data["symbols"]]
    assert found[0] == ("pkg/models.py", 1, 7, "class", "User")  # exact name first
    assert ("pkg/models.py", 9, 5, "function", "make_user") in found
    ts = await call("findSymbol", {"query": "Point", "kind": "interface"}, project)
    assert ts.data is not None
    assert [(s["path"], s["line"], s["column"]) for s in ts.data["symbols"]] == [("web/util.ts", 1, 18)]
    methods = await call("findSymbol", {"query": "greet", "kind": "function"}, project)
    assert methods.data is not None and methods.data["symbols"][0]["container"] == "User"
    types = await call("findSymbol", {"query": "id", "kind": "type"}, project)
    assert types.data is not None and [s["name"] for s in types.data["symbols"]] == ["Id"]
    none = await call("findSymbol", {"query": "nothing_like_this"}, project)
    assert none.data is not None and none.data["total"] == 0 and "No symbols" in none.text
    with pytest.raises(ToolError, match="kind"):
        await call("findSymbol", {"query": "x", "kind": "macro"}, project)


@pytest.mark.asyncio
async def test_python_go_to_definition_across_files(project: Path) -> None:
    # line 5 of app.py: '    u = make_user("ann")' — column 9 is the 'm' of make_user (1-based)
    result = await call("goToDefinition", {"path": "pkg/app.py", "line": 5, "column": 9}, project)
    assert locations(result) == [("pkg/models.py", 9, 5)]
    assert "def make_user" in result.text
    # the same name one column to the left (the space) is not a name
    method = await call("goToDefinition", {"path": "pkg/app.py", "line": 6, "column": 13}, project)
    assert locations(method) == [("pkg/models.py", 5, 9)]  # u.greet → User.greet


@pytest.mark.asyncio
async def test_python_references_are_semantic(project: Path) -> None:
    result = await call("getReferences", {"path": "pkg/models.py", "line": 1, "column": 7}, project)
    assert set(locations(result)) == {
        ("pkg/models.py", 1, 7), ("pkg/models.py", 10, 12), ("pkg/app.py", 1, 24), ("pkg/app.py", 7, 12)
    }
    assert locations(result) == sorted(locations(result), key=lambda loc: (loc[0].split("/"), loc[1], loc[2]))


@pytest.mark.asyncio
async def test_typescript_definition_follows_imports_and_scopes(project: Path) -> None:
    imported = await call("goToDefinition", {"path": "web/main.ts", "line": 4, "column": 13}, project)
    assert locations(imported) == [("web/util.ts", 3, 17)]  # distance(...) → util.ts
    default = await call("goToDefinition", {"path": "web/main.ts", "line": 6, "column": 37}, project)
    assert locations(default) == [("web/util.ts", 6, 22)]  # new Shape() → export default class Shape
    local = await call("goToDefinition", {"path": "web/main.ts", "line": 5, "column": 19}, project)
    assert locations(local) == [("web/main.ts", 2, 7)]  # origin → const origin
    shadowed = await call("goToDefinition", {"path": "web/main.ts", "line": 9, "column": 10}, project)
    assert locations(shadowed) == [("web/main.ts", 8, 17)]  # the parameter, not the module const
    param = await call("goToDefinition", {"path": "web/main.ts", "line": 6, "column": 14}, project)
    assert locations(param) == [("web/main.ts", 3, 24)]  # distanceScale parameter


@pytest.mark.asyncio
async def test_typescript_references_by_name(project: Path) -> None:
    result = await call("getReferences", {"path": "web/util.ts", "line": 1, "column": 18}, project)
    assert locations(result) == [
        ("web/main.ts", 1, 27), ("web/main.ts", 2, 15), ("web/main.ts", 3, 17),
        ("web/util.ts", 1, 18), ("web/util.ts", 3, 29), ("web/util.ts", 3, 39),
    ]
    assert "not type-checked" in result.text


@pytest.mark.asyncio
async def test_positions_are_validated(project: Path) -> None:
    with pytest.raises(ToolError, match="past the end of the file"):
        await call("goToDefinition", {"path": "pkg/app.py", "line": 99, "column": 1}, project)
    with pytest.raises(ToolError, match="past the end of line"):
        await call("getReferences", {"path": "pkg/app.py", "line": 1, "column": 200}, project)
    with pytest.raises(ToolError, match="at least 1"):
        await call("goToDefinition", {"path": "pkg/app.py", "line": 0, "column": 1}, project)
    with pytest.raises(ToolError, match="no identifier"):
        await call("goToDefinition", {"path": "web/main.ts", "line": 1, "column": 40}, project)
    with pytest.raises(ToolError, match="neither"):
        await call("getReferences", {"path": "notes.md", "line": 1, "column": 1}, project)
    with pytest.raises(ToolError, match="does not exist"):
        await call("goToDefinition", {"path": "pkg/missing.py", "line": 1, "column": 1}, project)
    with pytest.raises(ToolError, match="outside"):
        await call("goToDefinition", {"path": "../x.py", "line": 1, "column": 1}, project)
    with pytest.raises(ToolError, match="missing required"):
        await call("getReferences", {"path": "pkg/app.py", "line": 1}, project)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "ok.py", "import os\n\nprint(os.sep)\n")
    write(root, "lint.py", "import sys\n\nprint(undefined_name)\n")
    write(root, "bad.py", "def broken(:\n    pass\n")
    write(root, "web/bad.ts", "const x: number = (;\nexport function f() { return 1 }\n")
    write(root, "web/good.ts", "export const y = 2;\n")
    return root


@pytest.mark.asyncio
@pytest.mark.parametrize("checker", ["ruff", "pyflakes", "compile"])
async def test_python_diagnostics(broken: Path, checker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if checker == "ruff" and code_python.find_ruff() is None:
        pytest.skip("ruff not installed")
    if checker != "ruff":
        monkeypatch.setattr(code_python, "find_ruff", lambda: None)
    if checker == "pyflakes" and importlib.util.find_spec("pyflakes") is None:
        pytest.skip("pyflakes not installed")
    if checker == "compile":
        monkeypatch.setattr(code_python, "_have_pyflakes", lambda: False)
    result = await call("getDiagnostics", {"severity": "error"}, broken)
    assert result.data is not None
    errors = {(d["path"], d["line"]) for d in result.data["diagnostics"]}
    assert ("bad.py", 1) in errors  # syntax error, from every checker
    assert ("web/bad.ts", 1) in errors  # tree-sitter syntax error
    assert all(d["severity"] == "error" for d in result.data["diagnostics"])
    assert not any(path in ("ok.py", "web/good.ts") for path, _ in errors)
    if checker != "compile":
        assert ("lint.py", 3) in errors  # undefined name is an error
        warnings = await call("getDiagnostics", {"path": "lint.py", "severity": "warning"}, broken)
        assert warnings.data is not None
        assert [(d["path"], d["line"]) for d in warnings.data["diagnostics"]] == [("lint.py", 1)]  # unused import
    else:
        assert "install ruff or pyflakes" in result.text
    assert checker in " ".join(result.data["checkers"])


@pytest.mark.asyncio
async def test_typescript_diagnostics_without_tsc_say_not_available(broken: Path) -> None:
    result = await call("getDiagnostics", {"path": "web"}, broken)
    assert "TypeScript type checking not available" in result.text
    assert result.data is not None
    assert [(d["path"], d["line"], d["source"]) for d in result.data["diagnostics"]] == [
        ("web/bad.ts", 1, "tree-sitter")
    ]
    clean = await call("getDiagnostics", {"path": "web/good.ts"}, broken)
    assert clean.data is not None and clean.data["errors"] == 0 and "not available" in clean.text


@pytest.mark.asyncio
async def test_typescript_diagnostics_use_workspace_tsc(broken: Path) -> None:
    tsc = broken / "node_modules" / ".bin" / "tsc"
    tsc.parent.mkdir(parents=True)
    tsc.write_text(
        "#!/bin/sh\necho \"args: $*\" > tsc-args.txt\n"
        "echo \"web/good.ts(1,14): error TS2322: Type 'number' is not assignable to type 'string'.\"\n"
        "exit 2\n"
    )
    tsc.chmod(tsc.stat().st_mode | stat.S_IXUSR)
    result = await call("getDiagnostics", {"path": "web/good.ts"}, broken)
    assert result.data is not None
    assert [(d["path"], d["line"], d["column"], d["code"], d["source"]) for d in result.data["diagnostics"]] == [
        ("web/good.ts", 1, 14, "TS2322", "tsc")
    ]
    assert "--noEmit" in (broken / "tsc-args.txt").read_text()
    (broken / "tsconfig.json").write_text("{}\n")
    await call("getDiagnostics", {}, broken)
    assert "-p ." in (broken / "tsc-args.txt").read_text()  # project mode when tsconfig.json exists


@pytest.mark.asyncio
async def test_diagnostics_argument_errors(broken: Path) -> None:
    with pytest.raises(ToolError, match="severity"):
        await call("getDiagnostics", {"severity": "fatal"}, broken)
    with pytest.raises(ToolError, match="outside"):
        await call("getDiagnostics", {"path": "../.."}, broken)
    empty = broken / "empty"
    empty.mkdir()
    result = await call("getDiagnostics", {"path": "empty"}, broken)
    assert "No Python or TypeScript" in result.text


def test_schemas_match_design() -> None:
    expected = {
        "findSymbol": ({"query", "kind"}, ["query"]),
        "getReferences": ({"path", "line", "column"}, ["path", "line", "column"]),
        "goToDefinition": ({"path", "line", "column"}, ["path", "line", "column"]),
        "getDiagnostics": ({"path", "severity"}, []),
    }
    assert {t.name for t in code.TOOLS} == set(expected)
    for tool in code.TOOLS:
        props, required = expected[tool.name]
        assert set(tool.parameters["properties"]) == props
        assert tool.parameters["required"] == required
        assert tool.parameters["additionalProperties"] is False
        assert tool.group == "code" and len(tool.description) > 60
    assert code.TOOLS[0].parameters["properties"]["kind"]["enum"] == [
        "function", "class", "variable", "interface", "type", "all"
    ]


@pytest.mark.asyncio
async def test_concurrent_calls_give_the_same_answers(project: Path) -> None:
    """The agent loop runs independent tool calls concurrently: jedi is serialised, parsers are per thread."""
    import asyncio

    calls = [
        ("goToDefinition", {"path": "pkg/app.py", "line": 5, "column": 9}),
        ("getReferences", {"path": "pkg/models.py", "line": 1, "column": 7}),
        ("goToDefinition", {"path": "web/main.ts", "line": 4, "column": 13}),
        ("getReferences", {"path": "web/util.ts", "line": 1, "column": 18}),
    ]
    alone = [locations(await call(name, args, project)) for name, args in calls]
    together = await asyncio.gather(*(call(name, args, project) for name, args in calls * 3))
    assert [locations(result) for result in together] == alone * 3


@pytest.mark.asyncio
async def test_without_tree_sitter_ts_tools_say_what_to_install(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from polaris_jupyter.tools import code_ts

    monkeypatch.setattr(code_ts, "available", lambda: False)
    with pytest.raises(ToolError, match="pip install tree-sitter"):
        await call("goToDefinition", {"path": "web/main.ts", "line": 4, "column": 13}, project)
    symbols = await call("findSymbol", {"query": "Point"}, project)
    assert symbols.data is not None and symbols.data["total"] == 0
    diagnostics = await call("getDiagnostics", {"path": "web"}, project)
    assert "no syntax check" in diagnostics.text and "not available" in diagnostics.text
    python_still_works = await call("goToDefinition", {"path": "pkg/app.py", "line": 5, "column": 9}, project)
    assert locations(python_still_works) == [("pkg/models.py", 9, 5)]
