"""The attack suite: every tool, every path argument, escaping commands, runaway processes.

Each test snapshots a sentinel folder next to the workspace and asserts that nothing in it
changed and that its secret content never appears in a tool's answer.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.tools import files, load_all, notebook, terminal
from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolRegistry, ToolResult
from polaris_jupyter.tools.bubblewrap import probe_bwrap, reset_probe_cache
from polaris_jupyter.tools.edits import MemoryEditJournal
from tests.tools.conftest import SECRET_TEXT, pids_with, snapshot, wait_for_pids

try:
    REGISTRY = load_all(ToolRegistry())
    LOAD_ERROR: str | None = None
except ImportError as exc:  # the other tool modules are missing: still attack ours
    REGISTRY = ToolRegistry(t for m in (files, notebook, terminal) for t in m.TOOLS)
    LOAD_ERROR = repr(exc)

#: Argument names that hold a workspace path even when a tool forgets to list them in path_params.
PATHLIKE_NAMES = {"path", "cwd", "currentFile", "file", "filePath", "folder", "dir", "directory"}


def _traversal_paths(outside: Path) -> list[str]:
    return [
        "../outside/secret.txt", "../outside", "..", "../..", "../../..", "a/../../outside/secret.txt",
        "./../outside/sub/data.py", str(outside / "secret.txt"), str(outside), "/etc/passwd", "/",
        "~", "~/.bashrc", "..\\outside\\secret.txt", "C:\\Windows\\win.ini", "%2e%2e/outside/secret.txt",
        "%2e%2e%2foutside%2fsecret.txt", "..%2foutside", "\uff0e\uff0e/outside/secret.txt",
        "\uff0e\uff0e\uff0foutside", "inside.py\x00../../outside/secret.txt", "inside\u202e.py",
        "escape/secret.txt", "escape/sub/data.py", "escape/sub", "rel_escape/secret.txt",
        "deep/chain/secret.txt",
    ]


#: Paths that name a symlink itself: deleting the link (not its target) is allowed.
LINK_NAMES = ["escape", "secret_link", "rel_escape"]


def _plant(workspace: Path, outside: Path) -> None:
    """Workspace content plus symlinks that point out of it (re-created after each call)."""
    (workspace / "inside.py").write_text("def inside():\n    return 1\n")
    (workspace / "nb.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    (workspace / "deep").mkdir(exist_ok=True)
    for link, target in [("escape", outside), ("secret_link", outside / "secret.txt"),
                         ("rel_escape", Path("..") / "outside"), ("deep/chain", Path("../escape"))]:
        path = workspace / link
        if not path.is_symlink():
            path.symlink_to(target)


def _dummy(name: str, schema: dict[str, Any]) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer" or kind == "number":
        return 1
    if kind == "boolean":
        return False
    return {"content": "pwned\n", "source": "pwned", "command": "ls", "query": "secret", "pattern": "secret",
            "searchTerm": "secret"}.get(name, "x")


def _path_params(tool: Tool) -> tuple[list[str], list[str]]:
    """(declared path params, path-looking params the tool did not declare)."""
    props = tool.parameters.get("properties", {})
    declared = [p for p in tool.path_params if p in props]
    guessed = [p for p in props if p in PATHLIKE_NAMES and p not in declared]
    return declared, guessed


def _args_for(tool: Tool, param: str, value: str) -> dict[str, Any]:
    props = tool.parameters.get("properties", {})
    args = {name: _dummy(name, props[name]) for name in tool.parameters.get("required", []) if name != param}
    args[param] = value
    return args


def _leaks(text: str) -> bool:
    return SECRET_TEXT in text


def test_registry_is_complete() -> None:
    assert LOAD_ERROR is None, f"load_all failed, only our own tools were attacked: {LOAD_ERROR}"
    assert len(REGISTRY) >= 17


@pytest.mark.asyncio
async def test_traversal_in_every_path_parameter_of_every_tool(workspace: Path, outside: Path) -> None:
    reset_probe_cache()
    _plant(workspace, outside)
    sentinel = snapshot(outside)
    ctx = ToolContext(root=workspace, run_id="attack", edits=MemoryEditJournal(),
                      settings={"command_timeout_s": 20})
    failures: list[str] = []
    attacked = 0
    for name in REGISTRY.names():
        tool = REGISTRY.get(name)
        assert tool is not None
        declared, guessed = _path_params(tool)
        for param in declared + guessed:
            for value in _traversal_paths(outside) + LINK_NAMES:
                attacked += 1
                label = f"{name}({param}={value!r})"
                try:
                    out = await tool.fn(_args_for(tool, param, value), ctx)
                except ToolError as exc:
                    if _leaks(str(exc)):
                        failures.append(f"{label}: error message leaks outside content")
                    continue
                except Exception as exc:
                    failures.append(f"{label}: crashed with {type(exc).__name__}: {exc}")
                    continue
                text = out.text + (out.diff or "") + str(out.data) if isinstance(out, ToolResult) else str(out)
                if _leaks(text):
                    failures.append(f"{label}: answer leaks outside content")
                link_itself = value in LINK_NAMES and name == "deleteFile"
                if param in declared and not link_itself:
                    failures.append(f"{label}: accepted instead of refused")
                _plant(workspace, outside)
    assert attacked > 0
    assert snapshot(outside) == sentinel, "something outside the workspace changed"
    assert not failures, "\n".join(failures)


@pytest.mark.asyncio
async def test_glob_and_regex_arguments_never_reach_outside(workspace: Path, outside: Path) -> None:
    """Search-style arguments (patterns, globs) with traversal must not read outside files."""
    _plant(workspace, outside)
    sentinel = snapshot(outside)
    ctx = ToolContext(root=workspace, run_id="attack")
    failures: list[str] = []
    patterns = ["../**", "../outside/*", "**/*.txt", "**/secret*", "/etc/*", "../../**/*", "escape/**",
                "TOP-SECRET-OUTSIDE-C.NTENT", "SECRET"]
    for name in REGISTRY.names():
        tool = REGISTRY.get(name)
        assert tool is not None
        if tool.group not in ("search", "context", "code"):
            continue
        props = tool.parameters.get("properties", {})
        string_params = [p for p, s in props.items() if s.get("type") == "string" and "enum" not in s]
        for param in string_params:
            for value in patterns:
                args = _args_for(tool, param, value)
                try:
                    out = await tool.fn(args, ctx)
                except ToolError as exc:
                    text = str(exc)
                else:
                    text = out.text + str(out.data) if isinstance(out, ToolResult) else str(out)
                if _leaks(text):
                    failures.append(f"{name}({param}={value!r}) leaks outside content")
    assert snapshot(outside) == sentinel
    assert not failures, "\n".join(failures)


#: Text no pattern may carry (NUL, unpaired surrogates) and broken regex/glob syntax.
HOSTILE_PATTERNS = ["x\x00y", "\x00", "*\x00.py", "\ud800", "a\udcff", "[", "(?", "(?P<", "\\", "**/{", "{a,",
                    "[!]", "a{1,99999999999}", "(" * 200 + ")" * 200, "*" * 900]


@pytest.mark.asyncio
async def test_hostile_text_in_every_pattern_argument_is_a_tool_error(workspace: Path, outside: Path) -> None:
    """Every string argument that is not a path (regexes, globs, queries, search terms) of every
    tool: a NUL byte, a broken surrogate or broken syntax is a ToolError or an answer, never an
    exception the loop reports as an unexpected failure. Search patterns and globs refuse NUL
    and surrogates with a message naming the argument."""
    _plant(workspace, outside)
    ctx = ToolContext(root=workspace, run_id="attack", edits=MemoryEditJournal(), settings={"command_timeout_s": 20})
    failures: list[str] = []
    attacked = 0
    for name in REGISTRY.names():
        tool = REGISTRY.get(name)
        assert tool is not None
        declared, guessed = _path_params(tool)
        props = tool.parameters.get("properties", {})
        pattern_params = [p for p, s in props.items() if s.get("type") == "string" and "enum" not in s
                          and p not in declared + guessed and p not in ("content", "source", "command")]
        for param in pattern_params:
            for value in HOSTILE_PATTERNS:
                attacked += 1
                label = f"{name}({param}={value[:12]!r})"
                try:
                    await tool.fn(_args_for(tool, param, value), ctx)
                except ToolError as exc:
                    if ("\x00" in value or "\ud800" in value) and tool.group == "search" and param not in str(exc):
                        failures.append(f"{label}: refused without naming the argument: {exc}")
                    continue
                except Exception as exc:
                    failures.append(f"{label}: crashed with {type(exc).__name__}: {exc}")
                    continue
                if tool.group == "search" and any(c in value for c in ("\x00", "\ud800", "\udcff")):
                    failures.append(f"{label}: accepted text with a NUL byte or a surrogate")
                _plant(workspace, outside)
    assert attacked > 50
    assert not failures, "\n".join(failures)


ESCAPING_COMMANDS = [
    "rm -rf ../outside", "sh -c 'rm -rf ../outside'", "bash -c id", "env python -c 1", "xargs rm",
    "find .. -delete", "cp ../outside/secret.txt .", "curl http://127.0.0.1", "/bin/rm -rf /",
    "git -c core.pager='rm -rf ../outside' log", "git -c alias.x='!rm -rf ..' x", "git --exec-path=.. status",
    "git -C .. status", "git -C ../outside status", "git --git-dir=../outside status", "git --work-tree=.. status",
    "git diff --output=../outside/pwned", "git diff --no-index ../outside/secret.txt inside.py",
    "git log --ext-diff", "git config core.fsmonitor 'rm -rf ..'", "git checkout -- .", "git clean -fdx",
    "git branch -D main", "git branch attack", "git show --textconv HEAD",
    "npm exec cowsay", "npm exec -- rimraf ../outside", "npm x rimraf", "npx rimraf ../outside",
    "npx -c 'rm -rf ../outside'", "npx --package=rimraf rimraf ..", "npx --yes cowsay", "npm install evil",
    "npm --script-shell=/bin/sh run x", "npm -g ls", "npm --prefix=../outside ls",
    "pip install evil", "pip --log ../outside/pwned list", "pip --python /bin/sh list", "pip download x",
    "python -m pip install evil", "python3 -m pip uninstall -y pip",
    "cat ../outside/secret.txt", "cat escape/secret.txt", "head -n 1 /etc/passwd", "tail ~/.bashrc",
    "wc --files0-from=../outside/secret.txt", "ls ..", "ls escape", "cat secret_link",
    "python -c 'print(1)' | sh", "python -c 1 && rm -rf ..", "python -c 1 > ../outside/pwned",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("command", ESCAPING_COMMANDS)
async def test_escaping_commands_are_refused(workspace: Path, outside: Path, command: str) -> None:
    _plant(workspace, outside)
    sentinel = snapshot(outside)
    with pytest.raises(ToolError) as info:
        await terminal.execute_command({"command": command}, ToolContext(root=workspace))
    assert len(str(info.value)) > 10 and not _leaks(str(info.value))
    assert snapshot(outside) == sentinel


async def _require_bwrap(root: Path) -> None:
    reset_probe_cache()
    status = await probe_bwrap(root)
    if not status.available:
        pytest.skip(f"bubblewrap unavailable here: {status.reason}")


INTERPRETER_ESCAPES = [
    "python -c \"open('{out}/pwned.txt', 'w').write('x')\"",
    "python -c \"import os; os.remove('{out}/secret.txt')\"",
    "python -c \"import shutil; shutil.rmtree('{out}/sub')\"",
    "python -c \"import os; os.chmod('{out}/secret.txt', 0o777)\"",
    "python -c \"open('../outside/secret.txt', 'a').write('appended')\"",
    "python -c \"open('escape/secret.txt', 'w').write('via symlink')\"",
    "python -c \"import os; os.symlink('/etc', '{out}/etc-link')\"",
    "node -e \"require('fs').writeFileSync('{out}/node-pwned.txt', 'x')\"",
    "node -e \"require('fs').rmSync('{out}/sub', {{recursive: true}})\"",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("template", INTERPRETER_ESCAPES)
async def test_allowed_interpreters_cannot_write_outside(workspace: Path, outside: Path, template: str) -> None:
    await _require_bwrap(workspace)
    _plant(workspace, outside)
    sentinel = snapshot(outside)
    if template.startswith("node") and not any(
        os.access(os.path.join(d, "node"), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)
    ):
        pytest.skip("node is not installed")
    result = await terminal.execute_command({"command": template.format(out=outside)}, ToolContext(root=workspace))
    assert result.data and result.data["sandbox"] == "bwrap"
    assert result.data["exitCode"] != 0  # the write failed inside the sandbox
    assert snapshot(outside) == sentinel
    assert not (outside / "pwned.txt").exists()


@pytest.mark.asyncio
async def test_allowed_interpreters_have_no_network(workspace: Path) -> None:
    await _require_bwrap(workspace)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept_loop(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)
            conn.close()

    stop = threading.Event()
    thread = threading.Thread(target=accept_loop, args=(stop,), daemon=True)
    thread.start()
    try:
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONN' + 'ECTED')"
        result = await terminal.execute_command({"command": f'python -c "{code}"'}, ToolContext(root=workspace))
    finally:
        stop.set()
        thread.join()
        server.close()
    assert "CONNECTED" not in result.text and result.data and result.data["exitCode"] != 0
    assert accepted == []


@pytest.mark.asyncio
async def test_daemon_unix_sockets_under_run_are_out_of_reach(workspace: Path) -> None:
    """The network namespace does not cover Unix sockets on disk (think /run/docker.sock)."""
    await _require_bwrap(workspace)
    if not os.access("/run", os.W_OK):
        pytest.skip("cannot create a test socket in /run")
    path = f"/run/polaris-test-{os.getpid()}-{id(workspace)}.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    server.setblocking(False)
    try:
        code = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect('{path}'); print('CONN' + 'ECTED')"
        result = await terminal.execute_command({"command": f'python -c "{code}"'}, ToolContext(root=workspace))
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
        os.unlink(path)
    assert "CONNECTED" not in result.text and result.data and result.data["exitCode"] != 0


@pytest.mark.asyncio
@pytest.mark.parametrize("sandbox", ["auto", "none"])
async def test_a_command_that_never_ends_is_killed(workspace: Path, outside: Path, sandbox: str) -> None:
    sentinel = snapshot(outside)
    token = f"polaris-never-ends-7f3a-{sandbox}"
    ctx = ToolContext(root=workspace, settings={"command_timeout_s": 1.5, "sandbox": sandbox})
    result = await terminal.execute_command({"command": f'python -c "while True: pass" {token}'}, ctx)
    assert result.data and result.data["timedOut"] is True and "TIMED OUT" in result.text
    assert await wait_for_pids(token, present=False) == []
    assert snapshot(outside) == sentinel


@pytest.mark.asyncio
async def test_a_command_printing_100_mb_is_capped_with_bounded_memory(workspace: Path) -> None:
    ctx = ToolContext(root=workspace, settings={"max_output_bytes": 200 * 1024 * 1024, "command_timeout_s": 100})
    code = "import sys; block = 'y' * (1024 * 1024); [sys.stdout.write(block) for _ in range(100)]; print('END')"
    tracemalloc.start()
    try:
        result = await terminal.execute_command({"command": f'python -c "{code}"'}, ctx)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.data and result.data["exitCode"] == 0
    assert result.data["stdoutBytes"] == 100 * 1024 * 1024 + 4
    assert result.truncated and len(result.text) < 25_000 and result.text.rstrip().endswith("END")
    assert peak_bytes < 16 * 1024 * 1024, f"peak Python memory {peak_bytes:,} bytes while capturing 100 MB"


@pytest.mark.asyncio
@pytest.mark.parametrize("sandbox", ["auto", "none"])
async def test_cancellation_kills_the_process_group(workspace: Path, sandbox: str) -> None:
    token = f"polaris-cancel-token-91c2-{sandbox}"
    code = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', sys.argv[1]]); time.sleep(600)")
    task = asyncio.create_task(
        terminal.execute_command({"command": f'python -c "{code}" {token}'},
                                 ToolContext(root=workspace, settings={"sandbox": sandbox}))
    )
    try:
        child_token = "import time; time.sleep(600)\x00" + token  # only the grandchild's argv has it
        assert await wait_for_pids(child_token, present=True), "the command's child should be running"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await wait_for_pids(token, present=False) == []


@pytest.mark.asyncio
async def test_detached_grandchildren_do_not_outlive_the_command(workspace: Path) -> None:
    await _require_bwrap(workspace)
    token = "polaris-daemon-token-55ab"
    code = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', "
            "sys.argv[1]], start_new_session=True); print('spawned')")
    result = await terminal.execute_command({"command": f'python -c "{code}" {token}'}, ToolContext(root=workspace))
    assert "spawned" in result.text
    assert await wait_for_pids(token, present=False) == []
    assert pids_with(token) == []


def test_python_used_by_the_suite_exists() -> None:
    assert sys.executable
