"""File tools (readFile, writeFile, deleteFile, listFiles, getProjectStructure) and ignore rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from polaris_jupyter.tools import FILE_TOOLS, files, load_all, notebook, terminal
from polaris_jupyter.tools.base import MAX_TOOL_OUTPUT_CHARS, ToolContext, ToolError, ToolRegistry
from polaris_jupyter.tools.edits import MemoryEditJournal
from polaris_jupyter.tools.ignore import IgnoreRules, walk_entries, walk_files
from tests.tools.conftest import call, snapshot

DESIGN_PARAMS = {
    "readFile": {"path", "startLine", "endLine"},
    "writeFile": {"path", "content"},
    "deleteFile": {"path"},
    "listFiles": {"path", "offset", "limit"},
    "getProjectStructure": set(),
    "readNotebook": {"path"},
    "editNotebookCell": {"path", "index", "source", "cellType"},
    "insertNotebookCell": {"path", "index", "source", "cellType"},
    "deleteNotebookCell": {"path", "index", "cellId"},
    "moveNotebookCell": {"path", "index", "cellId", "toIndex"},
    "executeCommand": {"command", "cwd"},
}


def test_tool_schemas_match_design() -> None:
    tools = [t for m in (files, notebook, terminal) for t in m.TOOLS]
    assert {t.name: set(t.parameters["properties"]) for t in tools} == DESIGN_PARAMS
    for tool in tools:
        schema = tool.parameters
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])
        assert set(tool.path_params) <= set(schema["properties"])
        assert len(tool.description) > 40
        assert tool.openai_schema()["function"]["name"] == tool.name
    assert list(FILE_TOOLS) == [t.name for t in files.TOOLS]


def test_load_all_registers_every_tool_of_the_design() -> None:
    registry = load_all(ToolRegistry())
    expected = {
        "readFile", "writeFile", "deleteFile", "listFiles", "getProjectStructure", "findSymbol",
        "getReferences", "goToDefinition", "getDiagnostics", "searchFiles", "searchCodebase",
        "findFilesByPattern", "getRelevantFiles", "executeCommand", "readNotebook", "editNotebookCell",
        "insertNotebookCell", "deleteNotebookCell", "moveNotebookCell", "runNotebookCell", "inspectVariables",
        "proposeCellEdit",
    }
    assert expected <= set(registry.names())
    assert set(registry.select(names=FILE_TOOLS).names()) == set(FILE_TOOLS)
    assert len(load_all(registry)) == len(registry)  # idempotent


# --- readFile -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_read_file_whole_and_ranges(workspace: Path, ctx: ToolContext) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    whole = await call("readFile", {"path": "src/a.py"}, ctx)
    assert whole.text == "".join(f"line {i}\n" for i in range(1, 11))
    assert "10 lines" in whole.summary and not whole.truncated
    part = await call("readFile", {"path": "src/a.py", "startLine": 3, "endLine": 4}, ctx)
    assert part.text == "[src/a.py: lines 3-4 of 10]\nline 3\nline 4\n"
    tail = await call("readFile", {"path": "src\\a.py", "startLine": "9"}, ctx)
    assert tail.text.endswith("line 9\nline 10\n")
    clipped = await call("readFile", {"path": "src/a.py", "startLine": 9, "endLine": 99}, ctx)
    assert clipped.data and clipped.data["endLine"] == 10


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"path": "src/a.py", "startLine": 0}, "at least 1"),
        ({"path": "src/a.py", "startLine": 5, "endLine": 2}, "must not be before"),
        ({"path": "src/a.py", "startLine": 50}, "past the end"),
        ({"path": "src/a.py", "startLine": "x"}, "integer"),
        ({"path": "src/a.py", "startLine": True}, "integer"),
        ({"path": "src/a.py", "extra": 1}, "unknown argument"),
        ({}, "missing required"),
        ({"path": 5}, "must be a string"),
        ({"path": "src"}, "folder"),
        ({"path": "nope.txt"}, "does not exist"),
    ],
)
async def test_read_file_bad_arguments(workspace: Path, ctx: ToolContext, args: dict, message: str) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("x\n")
    with pytest.raises(ToolError, match=message):
        await call("readFile", args, ctx)


@pytest.mark.asyncio
async def test_read_file_large_is_truncated_with_a_notice(workspace: Path, ctx: ToolContext) -> None:
    (workspace / "big.txt").write_text("".join(f"{i:06d} {'x' * 90}\n" for i in range(50_000)))
    result = await call("readFile", {"path": "big.txt"}, ctx)
    assert result.truncated
    assert len(result.text) <= MAX_TOOL_OUTPUT_CHARS
    assert "[truncated: showed lines 1-" in result.text and "startLine=" in result.text
    next_line = int(result.text.rsplit("startLine=", 1)[1].split()[0])
    follow = await call("readFile", {"path": "big.txt", "startLine": next_line}, ctx)
    assert follow.text.splitlines()[1].startswith(f"{next_line - 1:06d}")


@pytest.mark.asyncio
async def test_read_file_reaches_lines_beyond_the_read_window(workspace: Path, ctx: ToolContext) -> None:
    n_lines = 60_000  # ~4.6 MB: more than readFile reads in one go
    (workspace / "huge.txt").write_text("".join(f"row {i:07d} {'z' * 64}\n" for i in range(1, n_lines + 1)))
    far = await call("readFile", {"path": "huge.txt", "startLine": 55_000, "endLine": 55_002}, ctx)
    assert far.text.splitlines() == [
        f"[huge.txt: lines 55000-55002 of {n_lines}]",
        *(f"row {i:07d} {'z' * 64}" for i in (55_000, 55_001, 55_002)),
    ]
    assert not far.truncated
    last = await call("readFile", {"path": "huge.txt", "startLine": n_lines}, ctx)
    assert last.text.endswith(f"row {n_lines:07d} {'z' * 64}\n") and not last.truncated
    with pytest.raises(ToolError, match=f"has {n_lines} lines"):
        await call("readFile", {"path": "huge.txt", "startLine": n_lines + 1}, ctx)


@pytest.mark.asyncio
async def test_read_file_edge_shapes(workspace: Path, ctx: ToolContext) -> None:
    (workspace / "empty.txt").write_text("")
    empty = await call("readFile", {"path": "empty.txt"}, ctx)
    assert empty.text == "" and "0 lines" in empty.summary and not empty.truncated
    (workspace / "nonl.txt").write_text("a\nb")
    assert (await call("readFile", {"path": "nonl.txt", "startLine": 2}, ctx)).text.endswith("\nb")
    (workspace / "min.js").write_text("x=1;" * 100_000)
    minified = await call("readFile", {"path": "min.js"}, ctx)
    assert minified.truncated and "[line cut]" in minified.text and len(minified.text) < MAX_TOOL_OUTPUT_CHARS


@pytest.mark.asyncio
async def test_read_file_binary_is_described_not_dumped(workspace: Path, ctx: ToolContext) -> None:
    (workspace / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10)
    result = await call("readFile", {"path": "img.png"}, ctx)
    assert "binary" in result.text and "PNG image" in result.text and "2,568 bytes" in result.text
    assert "\x00" not in result.text
    (workspace / "blob.bin").write_bytes(b"\xff\xfe\x00\x01" * 100)
    assert "binary data" in (await call("readFile", {"path": "blob.bin"}, ctx)).text


@pytest.mark.asyncio
async def test_read_file_refuses_a_fifo_instead_of_hanging(workspace: Path, ctx: ToolContext) -> None:
    os.mkfifo(workspace / "pipe")
    with pytest.raises(ToolError, match="not a regular file"):
        await call("readFile", {"path": "pipe"}, ctx)


# --- writeFile ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_write_file_creates_updates_and_journals(
    workspace: Path, ctx: ToolContext, journal: MemoryEditJournal
) -> None:
    created = await call("writeFile", {"path": "pkg/sub/mod.py", "content": "a = 1\nb = 2\n"}, ctx)
    assert (workspace / "pkg" / "sub" / "mod.py").read_text() == "a = 1\nb = 2\n"
    assert created.diff and "+++ b/pkg/sub/mod.py" in created.diff and "+a = 1" in created.diff
    assert created.summary == "Created pkg/sub/mod.py (+2)"
    updated = await call("writeFile", {"path": "pkg/sub/mod.py", "content": "a = 1\nb = 3\n"}, ctx)
    assert updated.diff and "-b = 2" in updated.diff and "+b = 3" in updated.diff
    assert updated.data and updated.data["added"] == 1 and updated.data["removed"] == 1
    same = await call("writeFile", {"path": "pkg/sub/mod.py", "content": "a = 1\nb = 3\n"}, ctx)
    assert same.data == {"path": "pkg/sub/mod.py", "changed": False}
    edits = await journal.edits_for_run("run-1")
    assert [(e["path"], e["kind"], e["existedBefore"]) for e in edits] == [
        ("pkg", "folder", False), ("pkg/sub", "folder", False),
        ("pkg/sub/mod.py", "file", False), ("pkg/sub/mod.py", "file", True),
    ]
    assert sorted(os.listdir(workspace / "pkg" / "sub")) == ["mod.py"]  # no temp files left


@pytest.mark.asyncio
async def test_write_file_refusals(workspace: Path, ctx: ToolContext) -> None:
    (workspace / ".git").mkdir()
    (workspace / "dir").mkdir()
    (workspace / "file.txt").write_text("x")
    cases = [
        ({"path": ".git/hooks/pre-commit", "content": "#!/bin/sh"}, ".git"),
        ({"path": ".", "content": "x"}, "workspace root"),
        ({"path": "dir", "content": "x"}, "folder"),
        ({"path": "file.txt/child", "content": "x"}, "is a file"),
        ({"path": "a.txt"}, "missing required"),
        ({"path": "a.txt", "content": 5}, "must be a string"),
        ({"path": "a.txt", "content": "\ud800"}, "surrogate"),
    ]
    for args, message in cases:
        with pytest.raises(ToolError, match=message):
            await call("writeFile", args, ctx)
    small = ToolContext(root=workspace, settings={"max_write_bytes": 10})
    with pytest.raises(ToolError, match="at most 10"):
        await call("writeFile", {"path": "big.txt", "content": "x" * 11}, small)
    assert not (workspace / "a.txt").exists() and not (workspace / ".git" / "hooks").exists()


@pytest.mark.asyncio
async def test_write_through_an_inner_symlink_edits_the_real_file(workspace: Path, ctx: ToolContext) -> None:
    (workspace / "real.txt").write_text("old\n")
    (workspace / "alias.txt").symlink_to("real.txt")
    result = await call("writeFile", {"path": "alias.txt", "content": "new\n"}, ctx)
    assert (workspace / "real.txt").read_text() == "new\n"
    assert (workspace / "alias.txt").is_symlink()
    assert result.data and result.data["path"] == "real.txt"


# --- deleteFile -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_delete_file_folder_and_link(
    workspace: Path, outside: Path, ctx: ToolContext, journal: MemoryEditJournal
) -> None:
    before_outside = snapshot(outside)
    (workspace / "one.txt").write_text("1\n")
    (workspace / "tree" / "a" / "empty").mkdir(parents=True)
    (workspace / "tree" / "a" / "x.txt").write_text("x\n")
    (workspace / "tree" / "escape").symlink_to(outside)
    (workspace / "secret_link").symlink_to(outside / "secret.txt")
    single = await call("deleteFile", {"path": "one.txt"}, ctx)
    assert not (workspace / "one.txt").exists() and single.diff and "-1" in single.diff
    folder = await call("deleteFile", {"path": "tree"}, ctx)
    assert not (workspace / "tree").exists()
    assert folder.data == {"path": "tree", "files": 1, "folders": 3}
    assert "symlink" in folder.text
    link = await call("deleteFile", {"path": "secret_link"}, ctx)
    assert "symlink" in link.text and not (workspace / "secret_link").exists()
    assert snapshot(outside) == before_outside
    paths = [e["path"] for e in await journal.edits_for_run("run-1")]
    assert paths == ["one.txt", "tree", "tree/a", "tree/a/empty", "tree/a/x.txt"]
    with pytest.raises(ToolError, match="does not exist"):
        await call("deleteFile", {"path": "one.txt"}, ctx)
    with pytest.raises(ToolError, match="workspace root"):
        await call("deleteFile", {"path": "."}, ctx)


@pytest.mark.asyncio
async def test_delete_refuses_what_it_could_not_undo(workspace: Path) -> None:
    (workspace / "big").mkdir()
    (workspace / "big" / "a.bin").write_bytes(b"x" * 2000)
    small = ToolContext(root=workspace, settings={"max_delete_bytes": 1000}, edits=MemoryEditJournal())
    with pytest.raises(ToolError, match="too much to keep for undo"):
        await call("deleteFile", {"path": "big"}, small)
    assert (workspace / "big" / "a.bin").exists()


@pytest.mark.asyncio
async def test_write_edit_delete_then_revert_restores_everything(
    workspace: Path, ctx: ToolContext, journal: MemoryEditJournal
) -> None:
    (workspace / "keep.txt").write_text("keep\n")
    (workspace / "lib" / "deep").mkdir(parents=True)
    (workspace / "lib" / "deep" / "m.py").write_text("m = 1\n")
    (workspace / "lib" / "bin.dat").write_bytes(bytes(range(256)))
    initial = snapshot(workspace)
    await call("writeFile", {"path": "keep.txt", "content": "changed\n"}, ctx)
    await call("writeFile", {"path": "new/dir/n.py", "content": "n = 1\n"}, ctx)
    await call("writeFile", {"path": "keep.txt", "content": "changed twice\n"}, ctx)
    await call("deleteFile", {"path": "lib"}, ctx)
    await call("writeFile", {"path": "lib", "content": "a file where a folder was\n"}, ctx)
    reverted = await journal.revert_run(workspace, "run-1")
    assert set(reverted) == {"keep.txt", "new/dir/n.py", "lib/deep/m.py", "lib/bin.dat", "lib"}
    assert snapshot(workspace) == initial
    assert await journal.revert_run(workspace, "run-1") == reverted
    assert snapshot(workspace) == initial


# --- listFiles / getProjectStructure ----------------------------------------------------------


@pytest.mark.asyncio
async def test_list_files(workspace: Path, ctx: ToolContext) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "a.py").write_text("abc")
    (workspace / "node_modules").mkdir()
    (workspace / "README.md").write_text("# hi\n")
    root = await call("listFiles", {}, ctx)
    entries = {e["name"]: e for e in root.data["entries"]} if root.data else {}
    assert entries["src"]["type"] == "dir" and entries["README.md"]["size"] == 5
    assert entries["node_modules"]["ignored"] is True and entries["src"]["ignored"] is False
    assert root.text.splitlines()[1] == "node_modules/  (dir, ignored)"
    sub = await call("listFiles", {"path": "src"}, ctx)
    assert sub.data and sub.data["entries"][0]["path"] == "src/a.py"
    with pytest.raises(ToolError, match="is a file"):
        await call("listFiles", {"path": "README.md"}, ctx)


@pytest.mark.asyncio
async def test_list_files_of_a_huge_folder_tells_the_true_count_and_pages(workspace: Path, ctx: ToolContext) -> None:
    """1,500 entries with long names: the true count, each page within the tool output cap, and
    following the named offsets visits every entry exactly once, in order."""
    big = workspace / "big"
    big.mkdir()
    names = sorted(f"a-rather-long-generated-file-name-{i:04d}.json" for i in range(1490))
    for name in names:
        (big / name).write_text("{}")
    folders = [f"folder-{i:02d}" for i in range(10)]
    for name in folders:
        (big / name).mkdir()
    seen: list[str] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        page = await call("listFiles", {"path": "big", "offset": offset}, ctx)
        pages += 1
        assert len(page.text) <= MAX_TOOL_OUTPUT_CHARS, len(page.text)
        assert page.text.startswith("big/ holds 1500 entries; showing ")
        assert page.data and page.data["total"] == 1500 and page.truncated
        seen += [e["name"] for e in page.data["entries"]]
        offset = page.data["nextOffset"]
        if offset is not None:
            assert f"call listFiles with path='big', offset={offset} for the next page" in page.text
        assert pages < 20
    assert seen == folders + names  # folders first, nothing lost, nothing twice
    small = await call("listFiles", {"path": "big", "offset": 1495, "limit": 3}, ctx)
    assert small.data and [e["name"] for e in small.data["entries"]] == names[1485:1488]
    assert small.text.splitlines()[0] == "big/ holds 1500 entries; showing 1496-1498 (folders first, then by name):"
    assert small.text.endswith("[2 more entries not shown: call listFiles with path='big', offset=1498 for the "
                               "next page, or findFilesByPattern to filter]")
    for bad, message in [({"path": "big", "offset": 1500}, "past the end: big/ holds 1500 entries"),
                         ({"path": "big", "offset": -1}, "'offset' must be at least 0"),
                         ({"path": "big", "limit": 0}, "'limit' must be at least 1"),
                         ({"path": "big", "limit": 5000}, "'limit' must be at most 1000")]:
        with pytest.raises(ToolError, match=message):
            await call("listFiles", bad, ctx)
    (workspace / "empty").mkdir()
    empty = await call("listFiles", {"path": "empty"}, ctx)
    assert empty.text == "empty/ is empty." and not empty.truncated


def _make_project(root: Path) -> None:
    for rel in [
        "src/app.py", "src/util/helpers.py", "README.md", "notes.log", "keep.log", "data/raw/a.csv",
        "data/readme.txt", ".git/config", "node_modules/x/index.js", ".venv/lib/site.py", "env2/lib/x.py",
        "pkg/__pycache__/m.cpython-311.pyc", ".ipynb_checkpoints/nb-checkpoint.ipynb", "dist/pkg.whl",
        "build/lib/x.py", ".mypy_cache/x.json", "web/.gitignore", "web/secret.env", "web/app.ts",
        "web/gen/out.js", "web/gen/keep.js", "mod.egg-info/PKG-INFO", "src/a.pyc", "docs/build.md",
    ]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    (root / "env2" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / ".gitignore").write_text("# comment\n*.log\n!keep.log\n/data/raw/\n\n")
    (root / "web" / ".gitignore").write_text("*.env\ngen/*\n!gen/keep.js\n")


EXPECTED_FILES = [
    ".gitignore", "README.md", "data/readme.txt", "docs/build.md", "keep.log", "src/app.py",
    "src/util/helpers.py", "web/.gitignore", "web/app.ts", "web/gen/keep.js",
]


def test_walk_files_skips_builtin_and_gitignored(workspace: Path, outside: Path) -> None:
    _make_project(workspace)
    (workspace / "src" / "escape").symlink_to(outside)
    (workspace / "src" / "secret_link.txt").symlink_to(outside / "secret.txt")
    (workspace / "src" / "inner_link.py").symlink_to("app.py")
    (workspace / "src" / "loop").symlink_to(".")
    files_found = list(walk_files(workspace))
    assert files_found == sorted(files_found)
    assert files_found == sorted([*EXPECTED_FILES, "src/inner_link.py"])
    assert list(walk_files(workspace, "web")) == ["web/.gitignore", "web/app.ts", "web/gen/keep.js"]
    assert list(walk_files(workspace, "../outside")) == []
    dirs = {rel for rel, is_dir in walk_entries(workspace) if is_dir}
    assert dirs == {"data", "docs", "pkg", "src", "src/util", "web", "web/gen", "src/loop"}


@pytest.mark.parametrize(
    ("rel", "is_dir", "ignored"),
    [
        ("notes.log", False, True), ("keep.log", False, False), ("src/deep/x.log", False, True),
        ("data/raw", True, True), ("data/raw/a.csv", False, True), ("x/data/raw", True, False),
        ("web/secret.env", False, True), ("web/gen/out.js", False, True), ("web/gen/keep.js", False, False),
        ("node_modules", True, True), ("a/node_modules/b.js", False, True), ("env2", True, True),
        ("env2/lib/x.py", False, True), ("src/app.py", False, False), ("mod.egg-info", True, True),
        ("build", True, True), ("docs/build.md", False, False), ("src/a.pyc", False, True), (".", True, False),
    ],
)
def test_is_ignored(workspace: Path, rel: str, is_dir: bool, ignored: bool) -> None:
    _make_project(workspace)
    assert IgnoreRules.for_root(workspace).is_ignored(rel, is_dir) is ignored


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("*.py", ["a.py", "d/e/a.py"], ["a.pyi", "a.pyx"]),
        ("/top.txt", ["top.txt"], ["d/top.txt"]),
        ("d/*.txt", ["d/a.txt"], ["d/e/a.txt", "x/d/a.txt"]),
        ("**/logs", ["logs", "a/b/logs"], ["logsx"]),
        ("a/**/z", ["a/z", "a/b/z", "a/b/c/z"], ["b/a/z"]),
        ("abc/**", ["abc/x", "abc/x/y"], ["abc", "x/abc/y"]),
        ("f?o", ["foo", "d/fxo"], ["fo", "f/o"]),
        ("[ab].txt", ["a.txt", "b.txt"], ["c.txt"]),
        ("[!ab].txt", ["c.txt"], ["a.txt"]),
        ("\\#hash", ["#hash"], ["hash"]),
        ("\\!bang", ["!bang"], ["bang"]),
        ("space\\ ", ["space "], ["space"]),
        ("trailing   ", ["trailing"], ["trailing   "]),
        ("dir/", [], ["dir"]),  # folder-only rule never matches a file
    ],
)
def test_gitignore_patterns(tmp_path: Path, pattern: str, matches: list[str], misses: list[str]) -> None:
    (tmp_path / ".gitignore").write_text(pattern + "\n")
    rules = IgnoreRules.for_root(tmp_path)
    for rel in matches:
        assert rules.is_ignored(rel, False), f"{pattern!r} should ignore {rel!r}"
    for rel in misses:
        assert not rules.is_ignored(rel, False), f"{pattern!r} should not ignore {rel!r}"


def test_git_info_exclude_is_honoured(tmp_path: Path) -> None:
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("secret/\n")
    assert IgnoreRules.for_root(tmp_path).is_ignored("secret", True)


@pytest.mark.asyncio
async def test_get_project_structure(workspace: Path, ctx: ToolContext) -> None:
    _make_project(workspace)
    result = await call("getProjectStructure", {}, ctx)
    lines = result.text.splitlines()
    assert lines[0] == "ws/"
    assert "  src/" in lines and "    app.py" in lines and "      helpers.py" in lines
    tree = result.text.split("\n(")[0]
    for hidden in ("node_modules", ".venv", "env2", "__pycache__", ".git/", "dist", "notes.log", "raw", "secret.env",
                   ".ipynb_checkpoints", ".mypy_cache", "out.js", "egg-info"):
        assert hidden not in tree
    assert result.data == {"files": 10, "folders": 7}
    capped = ToolContext(root=workspace, settings={"max_tree_entries": 3})
    short = await call("getProjectStructure", {}, capped)
    assert short.truncated and "truncated after 3 entries" in short.text
    with pytest.raises(ToolError, match="unknown argument"):
        await call("getProjectStructure", {"path": "src"}, ctx)
