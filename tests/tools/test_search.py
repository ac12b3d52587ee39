"""Search tools: searchFiles (rg and Python engines agree), searchCodebase, findFilesByPattern."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.tools import search
from polaris_jupyter.tools.base import ToolContext, ToolError, ToolResult
from polaris_jupyter.tools.search_text import SNIPPET_CHARS, TextQuery, find_rg, path_key

TOOLS = {tool.name: tool for tool in search.TOOLS}
needs_rg = pytest.mark.skipif(find_rg() is None, reason="ripgrep (rg) not installed: apt-get install ripgrep")


async def call(name: str, args: dict[str, Any], root: Path) -> ToolResult:
    out = await TOOLS[name].fn(args, ToolContext(root=root))
    assert isinstance(out, ToolResult)
    return out


def write(root: Path, rel: str, content: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, ".gitignore", "ignored/\n*.log\n")
    write(root, "src/app.py", "import os\n\ndef handler(event):\n    # TODO: validate\n    return os.getcwd()\n")
    write(root, "src/util.ts", "export function handler(x: number): number {\n  return x * 2; // todo later\n}\n")
    write(root, "src/nested/.gitignore", "secret_*.py\n")
    write(root, "src/nested/secret_keys.py", "TODO = 'hidden by nested gitignore'\n")
    write(root, "src/nested/kept.py", "todo_list = []\n")
    write(root, "a.txt", "TODO at the top level\n")
    write(root, "a/b.txt", "todo in a folder named a\n")
    write(root, ".hidden/conf.txt", "todo in a hidden folder\n")
    write(root, "ignored/x.py", "TODO ignored folder\n")
    write(root, "debug.log", "TODO ignored by glob\n")
    write(root, "node_modules/pkg/index.js", "// TODO in node_modules\n")
    write(root, "env/pyvenv.cfg", "home = /usr\n")
    write(root, "env/lib/site.py", "TODO inside a virtualenv\n")
    write(root, "blob.bin", b"TODO\x00binary\x00")
    write(root, "bom.py", "\ufeffTODO = 'bom first line'\n")
    write(root, "unicode.md", "Ünïcödé TODO — naïve café\nKelvin \u212a sign\n")
    write(root, "long.js", "var a = 1; " * 60 + "/* TODO deep in a long line */" + " var b = 2;" * 60 + "\n")
    (root / "link_to_app.py").symlink_to(root / "src" / "app.py")
    return root


def rows(result: ToolResult) -> list[tuple[str, int, int, str]]:
    assert result.data is not None
    return [(r["path"], r["line"], r["column"], r["snippet"]) for r in result.data["results"]]


@pytest.mark.asyncio
async def test_search_files_respects_ignore_rules_and_orders_by_path(tree: Path) -> None:
    result = await call("searchFiles", {"pattern": "todo"}, tree)
    paths = [r[0] for r in rows(result)]
    assert paths == [".hidden/conf.txt", "a/b.txt", "a.txt", "bom.py", "long.js", "src/app.py",
                     "src/nested/kept.py", "src/util.ts", "unicode.md"]
    assert paths == sorted(paths, key=path_key)
    for banned in ("ignored/", "debug.log", "node_modules", "env/", "blob.bin", "secret_keys", "link_to_app"):
        assert not any(banned in p for p in paths), banned
    app = next(r for r in rows(result) if r[0] == "src/app.py")
    assert app[1:] == (4, 7, "# TODO: validate")  # 1-based line and column, trimmed snippet
    bom = next(r for r in rows(result) if r[0] == "bom.py")
    assert bom[1:3] == (1, 1)
    long_line = next(r for r in rows(result) if r[0] == "long.js")
    assert "TODO deep" in long_line[3] and len(long_line[3]) <= SNIPPET_CHARS + 2
    assert result.summary.startswith("9 matches")


@needs_rg
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("pattern", "glob", "case"),
    [
        ("todo", None, False),
        ("TODO", None, True),
        ("^todo", None, False),
        (r"def \w+\(", None, False),
        ("handler", "*.ts", False),
        ("todo", "src/**/*.py", False),
        ("todo", "*.{py,ts}", False),
        (r"caf\u00e9|k sign", None, False),
        ("\u212a", None, False),
        (r"(?<=# )TODO", None, True),
        ("x(?=\\))", None, False),
        (r"\d+", None, False),
        ("no-such-thing-anywhere", None, False),
    ],
)
async def test_rg_and_python_engines_give_identical_results(
    tree: Path, pattern: str, glob: str | None, case: bool
) -> None:
    ctx = ToolContext(root=tree)
    with_rg = await search.search_files(ctx, pattern, glob, case, engine="rg")
    with_python = await search.search_files(ctx, pattern, glob, case, engine="python")
    assert with_python.engine == "python"
    assert with_rg.matches == with_python.matches
    assert with_rg.truncated == with_python.truncated


@needs_rg
@pytest.mark.asyncio
async def test_rg_is_used_when_present_and_python_handles_what_rg_cannot(tree: Path) -> None:
    plain = await call("searchFiles", {"pattern": "todo"}, tree)
    assert plain.data is not None and plain.data["engine"] == "rg"
    lookbehind = await call("searchFiles", {"pattern": r"(?<=# )TODO", "caseSensitive": True}, tree)
    assert lookbehind.data is not None and lookbehind.data["engine"] == "python"  # rg has no look-around
    assert rows(lookbehind) == [("src/app.py", 4, 7, "# TODO: validate")]


@pytest.mark.asyncio
async def test_python_fallback_when_rg_is_missing(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "find_rg", lambda: None)
    result = await call("searchFiles", {"pattern": "handler", "filePattern": "*.ts"}, tree)
    assert result.data is not None and result.data["engine"] == "python"
    assert rows(result) == [("src/util.ts", 1, 17, "export function handler(x: number): number {")]


@pytest.mark.asyncio
@pytest.mark.parametrize("engine", ["rg", "python"])
async def test_results_are_capped_at_50_in_order(tmp_path: Path, engine: str) -> None:
    if engine == "rg" and find_rg() is None:
        pytest.skip("rg not installed")
    root = tmp_path / "ws"
    for i in range(30):
        write(root, f"f{i:02d}.txt", "needle one\nhay\nneedle two\n")
    outcome = await search.search_files(ToolContext(root=root), "needle", None, False, engine=engine)
    assert len(outcome.matches) == 50 and outcome.truncated
    expected = [(f"f{i:02d}.txt", line) for i in range(25) for line in (1, 3)]
    assert [(m.path, m.line) for m in outcome.matches] == expected
    exactly = await search.search_files(ToolContext(root=root), "needle two", None, False, engine=engine)
    assert len(exactly.matches) == 30 and not exactly.truncated


SCAN_TEXTS = [
    "a\nb\n\nab  b\na\nb y\nend\n  \nKelvin \u212a sign\ncaf\u00e9 \u00c9t\u00e9\nno newline at the end: b",
    "\n\n\nxyz\r\nend of crlf\r\nEND OF LINE end of line\n",
    "Kelvin and kelvin and KELVIN .\nplain ascii end of file, no newline at all: ab  b sign",
    "na\u00efve End Of text \u00e9t\u00e9\nsecond end of\u00e9 line\n\u00c9T\u00c9 ab|end\n",
    "",
]


@pytest.mark.parametrize("case_sensitive", [True, False])
@pytest.mark.parametrize(
    "pattern",
    ["^", "$", r"a\s+b", "[^x]+y", "b$", r"^\s*$", r"\bend\b", "x*", "(?<=a)b", "\u00e9t", "k", r"\w+ \w+$", "z\r?$",
     "end of", "kelvin .", r"(?<=no )newline", "ab  b", r"no (newline)+ at", "sign$", "crlf\r$", "ab|end"],
)
def test_line_scan_equals_a_naive_line_by_line_search(tmp_path: Path, pattern: str, case_sensitive: bool) -> None:
    """The hit-to-hit scanner must find exactly the lines a plain per-line loop finds."""
    query = TextQuery(pattern, case_sensitive, None)
    regex = re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
    for number, text in enumerate(SCAN_TEXTS):
        (tmp_path / f"t{number}.txt").write_text(text, encoding="utf-8", newline="")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        expected = [(i, m.start() + 1) for i, line in enumerate(lines, 1) if (m := regex.search(line))]
        got = [(m.line, m.column) for m in query.scan(str(tmp_path), f"t{number}.txt", 1000)]
        assert got == expected, (pattern, text)


@pytest.mark.asyncio
async def test_invalid_regex_is_a_clear_tool_error(tree: Path) -> None:
    for bad in ("(", "[a-", "*x", "a{2,1}"):
        with pytest.raises(ToolError, match="invalid regular expression"):
            await call("searchFiles", {"pattern": bad}, tree)
    with pytest.raises(ToolError, match="missing required"):
        await call("searchFiles", {}, tree)
    with pytest.raises(ToolError, match="unknown argument"):
        await call("searchFiles", {"pattern": "x", "path": "src"}, tree)
    with pytest.raises(ToolError, match="caseSensitive"):
        await call("searchFiles", {"pattern": "x", "caseSensitive": "maybe"}, tree)


@pytest.mark.asyncio
async def test_find_files_by_pattern(tree: Path) -> None:
    async def files(pattern: str) -> list[str]:
        result = await call("findFilesByPattern", {"pattern": pattern}, tree)
        assert result.data is not None
        return list(result.data["files"])

    assert await files("**/*.py") == ["bom.py", "link_to_app.py", "src/app.py", "src/nested/kept.py"]
    assert await files("*.py") == await files("**/*.py")
    assert await files("src/**/*.{py,ts}") == ["src/app.py", "src/nested/kept.py", "src/util.ts"]
    assert await files("src/*.ts") == ["src/util.ts"]
    assert await files("a/*") == ["a/b.txt"]
    assert await files("?.txt") == ["a/b.txt", "a.txt"]  # no "/": the file name at any depth
    assert await files("*.log") == []  # ignored by .gitignore
    with pytest.raises(ToolError, match="must not contain"):
        await files("../**")
    with pytest.raises(ToolError, match="relative"):
        await files("/etc/*")


@pytest.mark.asyncio
async def test_find_files_cap(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    for i in range(70):
        write(root, f"d/f{i:02d}.py", "")
    result = await call("findFilesByPattern", {"pattern": "**/*.py"}, root)
    assert result.data is not None and result.truncated
    assert result.data["files"] == [f"d/f{i:02d}.py" for i in range(50)]


@pytest.fixture
def code_tree(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "pkg/models.py", (
        "from dataclasses import dataclass\n__all__ = ['User']\nLIMIT = 3\n\n@dataclass\nclass User:\n"
        "    name: str\n\n    def greet(self) -> str:\n        return 'hi ' + self.name\n"
    ))
    write(root, "pkg/service.py", (
        "import logging\nfrom .models import User\n\nlog = logging.getLogger(__name__)\n\n"
        "def create_user(name):\n    log.info('create %s', name)\n    return User(name)\n"
    ))
    write(root, "web/api.ts", (
        "import { get } from './http';\nconst req = require('node:http');\nexport interface UserDto { name: string }\n"
        "export type Id = string;\nexport class UserClient {\n  fetchUser(id: Id) { return get(`/users/${id}`); }\n}\n"
        "export const MAX = 5;\nfunction helper() { return new UserClient().fetchUser('1'); }\n"
    ))
    write(root, "ignored/gen.py", "def create_user(): pass\n")
    write(root, ".gitignore", "ignored/\n")
    return root


async def codebase(root: Path, **args: Any) -> list[tuple[str, int, str, str]]:
    result = await call("searchCodebase", args, root)
    assert result.data is not None
    return [(r["path"], r["line"], r["kind"], r["name"]) for r in result.data["results"]]


@pytest.mark.asyncio
async def test_search_codebase_kinds(code_tree: Path) -> None:
    assert await codebase(code_tree, patternType="import") == [
        ("pkg/models.py", 1, "import", "dataclasses"),
        ("pkg/service.py", 1, "import", "logging"),
        ("pkg/service.py", 2, "import", ".models"),
        ("web/api.ts", 1, "import", "./http"),
        ("web/api.ts", 2, "import", "node:http"),
    ]
    assert await codebase(code_tree, patternType="function") == [
        ("pkg/models.py", 9, "function", "greet"),
        ("pkg/service.py", 6, "function", "create_user"),
        ("web/api.ts", 6, "function", "fetchUser"),
        ("web/api.ts", 9, "function", "helper"),
    ]
    assert await codebase(code_tree, patternType="class") == [
        ("pkg/models.py", 6, "class", "User"),
        ("web/api.ts", 3, "interface", "UserDto"),
        ("web/api.ts", 4, "type", "Id"),
        ("web/api.ts", 5, "class", "UserClient"),
    ]
    variables = await codebase(code_tree, patternType="variable")
    assert ("pkg/models.py", 3, "variable", "LIMIT") in variables
    assert ("pkg/service.py", 4, "variable", "log") in variables
    assert ("web/api.ts", 8, "variable", "MAX") in variables
    assert not any(name == "name" and path == "pkg/service.py" for path, _, _, name in variables)  # parameters
    exports = await codebase(code_tree, patternType="export")
    assert ("pkg/models.py", 2, "export", "User") in exports
    assert {name for path, _, _, name in exports if path == "web/api.ts"} == {"UserDto", "Id", "UserClient", "MAX"}
    calls = await codebase(code_tree, patternType="call", searchTerm="user")
    assert ("pkg/service.py", 8, "call", "User") in calls
    assert ("web/api.ts", 9, "call", "new UserClient().fetchUser") in calls


@pytest.mark.asyncio
async def test_search_codebase_filters(code_tree: Path) -> None:
    hits = await codebase(code_tree, patternType="all", searchTerm="create_user")
    assert {(p, k) for p, _, k, _ in hits} == {("pkg/service.py", "function")}  # ignored/gen.py skipped
    ts_only = await codebase(code_tree, patternType="all", searchTerm="user", filePattern="*.ts")
    assert ts_only and all(p.endswith(".ts") for p, _, _, _ in ts_only)
    with pytest.raises(ToolError, match="patternType must be one of"):
        await codebase(code_tree, patternType="macro")


@pytest.mark.asyncio
async def test_search_codebase_matches_own_names_before_container_names(tmp_path: Path) -> None:
    """searchTerm 'cookie' with patternType function: the functions and methods NAMED after
    cookies come first; methods of a class whose name holds 'cookie' only fill the rest."""
    root = tmp_path / "ws"
    methods = "".join(f"    def method_{i:02d}(self):\n        return {i}\n\n" for i in range(60))
    write(root, "a/jar.py", f"class RequestsCookieJar:\n{methods}    def set_cookie(self, c):\n        return c\n")
    write(root, "b/util.py", (
        "def get_cookie(jar, name):\n    return jar[name]\n\n\n"
        "def parse_cookie_header(text):\n    return text.split(';')\n\n\n"
        "def unrelated():\n    return None\n\n\nclass Session:\n    def cookies(self):\n        return {}\n"
    ))
    write(root, "c/web.ts", "export function readCookie(name: string) { return name }\n")
    result = await call("searchCodebase", {"patternType": "function", "searchTerm": "cookie"}, root)
    assert result.data is not None
    names = [(r["path"], r["name"]) for r in result.data["results"]]
    assert names[:5] == [("a/jar.py", "set_cookie"), ("b/util.py", "get_cookie"), ("b/util.py", "parse_cookie_header"),
                         ("b/util.py", "cookies"), ("c/web.ts", "readCookie")]
    assert names[5:] == [("a/jar.py", f"method_{i:02d}") for i in range(45)]  # then the class's other methods
    assert result.truncated and len(names) == 50
    assert "a/jar.py:2:9: [function] RequestsCookieJar.method_00 — def method_00(self):" in result.text
    assert result.data["results"][3]["container"] == "Session"
    own_only = await call("searchCodebase", {"patternType": "function", "searchTerm": "parse_cookie"}, root)
    assert own_only.data and [r["name"] for r in own_only.data["results"]] == ["parse_cookie_header"]


@pytest.mark.asyncio
async def test_nul_bytes_and_broken_text_in_patterns_are_tool_errors(tree: Path) -> None:
    """A NUL byte in filePattern used to escape as ValueError from the rg command line."""
    for args, name in [({"pattern": "TODO", "filePattern": "*.py\x00"}, "filePattern"),
                       ({"pattern": "TO\x00DO"}, "pattern"), ({"pattern": "TODO", "filePattern": "\ud800"}, "filePattern")]:
        with pytest.raises(ToolError, match=f"argument '{name}' (contains a NUL byte|holds an unpaired surrogate)"):
            await call("searchFiles", args, tree)
    with pytest.raises(ToolError, match="argument 'filePattern' contains a NUL byte"):
        await call("searchCodebase", {"patternType": "all", "filePattern": "\x00"}, tree)
    with pytest.raises(ToolError, match="argument 'pattern' contains a NUL byte"):
        await call("findFilesByPattern", {"pattern": "**/*\x00"}, tree)
    with pytest.raises(ToolError, match="contains a NUL byte"):
        TextQuery("TODO", False, "*.py\x00")


@pytest.mark.asyncio
async def test_search_codebase_reparses_changed_files(code_tree: Path) -> None:
    assert await codebase(code_tree, patternType="function", searchTerm="brand_new") == []
    target = code_tree / "pkg" / "service.py"
    target.write_text(target.read_text() + "\n\ndef brand_new_function():\n    pass\n")
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 1_000_000_000))
    assert await codebase(code_tree, patternType="function", searchTerm="brand_new") == [
        ("pkg/service.py", 11, "function", "brand_new_function")
    ]


def test_schemas_match_design() -> None:
    expected = {
        "searchFiles": ({"pattern", "filePattern", "caseSensitive"}, ["pattern"]),
        "searchCodebase": ({"patternType", "searchTerm", "filePattern"}, ["patternType"]),
        "findFilesByPattern": ({"pattern"}, ["pattern"]),
    }
    assert {t.name for t in search.TOOLS} == set(expected)
    for tool in search.TOOLS:
        props, required = expected[tool.name]
        assert set(tool.parameters["properties"]) == props
        assert tool.parameters["required"] == required
        assert tool.parameters["additionalProperties"] is False
        assert tool.group == "search" and len(tool.description) > 60


@pytest.mark.asyncio
async def test_a_broken_rg_falls_back_to_python(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tree.parent / "bin" / "rg"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'rg: something broke' >&2\nexit 2\n")
    fake.chmod(0o755)
    monkeypatch.setattr(search, "find_rg", lambda: str(fake))
    result = await call("searchFiles", {"pattern": "handler", "filePattern": "*.ts"}, tree)
    assert result.data is not None and result.data["engine"] == "python"
    assert rows(result) == [("src/util.ts", 1, 17, "export function handler(x: number): number {")]
    monkeypatch.setattr(search, "find_rg", lambda: str(tree.parent / "bin" / "missing-rg"))
    again = await call("searchFiles", {"pattern": "handler", "filePattern": "*.ts"}, tree)
    assert again.data is not None and again.data["engine"] == "python" and rows(again) == rows(result)


@pytest.mark.asyncio
async def test_minified_bundles_are_text_searchable_but_not_outlined(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    bundle = "function bundledHelper(){return 1};" + ";".join(f"var v{i}=f{i}(x)" for i in range(3000))
    write(root, "static/app.min.js", bundle + "\n")
    write(root, "src/feed.py", "\f\n# a form feed above must not shift line numbers\ndef bundled_helper_py():\n    pass\n")
    assert await codebase(root, patternType="function", searchTerm="bundled") == [
        ("src/feed.py", 3, "function", "bundled_helper_py")
    ]
    text_hits = await call("searchFiles", {"pattern": "bundledHelper"}, root)
    assert [r[0] for r in rows(text_hits)] == ["static/app.min.js"]
