"""executeCommand: policy, process handling, output capture, secrets and the bubblewrap sandbox."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from polaris_jupyter.tools import bubblewrap
from polaris_jupyter.tools.base import ToolContext, ToolError
from polaris_jupyter.tools.command_policy import (
    GIT_SAFE_PREFIX,
    check_command,
    normalize_allowlist,
    parse_command,
)
from tests.tools.conftest import call, wait_for_pids

HAVE_GIT = bool(os.path.exists("/usr/bin/git"))


@pytest.fixture(autouse=True)
def _fresh_probe() -> Iterator[None]:
    bubblewrap.reset_probe_cache()
    yield
    bubblewrap.reset_probe_cache()


def _real(path: Path) -> str:
    return os.path.realpath(path)


def _exists(path: Path) -> bool:
    return path.exists()


async def bwrap_works(root: Path) -> bool:
    return (await bubblewrap.probe_bwrap(root)).available


# --- policy (no process is started) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("", "empty"), ("   ", "empty"), ("python -c 'unclosed", "quotes"), ("ls | wc", "shell syntax"),
        ("ls && rm -rf x", "shell syntax"), ("ls ; id", "shell syntax"), ("cat a > b", "shell syntax"),
        ("cat a 2>/dev/null", "shell syntax"), ("cat <a", "shell syntax"), ("ls &", "shell syntax"),
        ("a\x00b", "NUL"),
    ],
)
def test_parse_command_refusals(command: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        parse_command(command)


def test_parse_command_keeps_quoted_arguments() -> None:
    assert parse_command("python -c 'print(1 > 0)' --x=\"a b\"") == ["python", "-c", "print(1 > 0)", "--x=a b"]


def _check(workspace: Path, command: str, allowed: object = None) -> list[str]:
    return check_command(parse_command(command), root=workspace, cwd=workspace,
                         allowed=normalize_allowlist(allowed), search_path=os.environ.get("PATH"))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("rm -rf /", "not an allowed command"), ("bash -c id", "not an allowed command"),
        ("sh -c id", "not an allowed command"), ("curl http://x", "not an allowed command"),
        ("env python", "not an allowed command"), ("/usr/bin/python -V", "not by path"),
        ("./python -V", "not by path"), ("..\\python", "not an allowed command"),
        ("git -c core.pager=sh log", "'-c' is not allowed"), ("git --exec-path=/tmp status", "--exec-path"),
        ("git --git-dir=/tmp/x status", "--git-dir"), ("git -C /tmp status", "outside the workspace"),
        ("git -C ../x status", "refused"), ("git config user.name x", "git config is not allowed"),
        ("git push", "not allowed"), ("git commit -m x", "not allowed"), ("git diff --output=x", "--output"),
        ("git diff --no-index /etc/passwd a", "--no-index"), ("git log --ext-diff", "--ext-diff"),
        ("git show -O/etc/passwd", "-O"), ("git branch evil", "only list"), ("git branch -D main", "-D"),
        ("git branch -m a b", "-m"), ("git", "needs a subcommand"),
        ("pip install requests", "install is not allowed"), ("pip3 uninstall -y x", "not allowed"),
        ("pip --log /tmp/x list", "--log"), ("pip --python /bin/sh list", "--python"),
        ("python -m pip install x", "install is not allowed"), ("python3 -m pip download x", "not allowed"),
        ("npm install left-pad", "npm install is not allowed"), ("npm exec cowsay", "npm exec cowsay is not allowed"),
        ("npm x -- cowsay", "not allowed"), ("npm --script-shell=/bin/sh run t", "--script-shell"),
        ("npm -g ls", "-g"), ("npx cowsay", "npx cowsay is not allowed"), ("npx -c 'rm -rf /'", "'-c' is not allowed"),
        ("npx --package=evil tsc", "--package"), ("npx -y tsc", "-y"), ("npx", "needs a program"),
        ("cat /etc/passwd", "outside the workspace"), ("cat ../x", "outside"), ("head -n 5 ~/.bashrc", "outside"),
        ("tail -f ../../x", "outside"), ("wc --files0-from=/etc/x", "--files0-from"), ("ls /", "outside"),
        ("cat -", "standard input"),
    ],
)
def test_check_command_refusals(workspace: Path, command: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        _check(workspace, command)


def test_check_command_accepts_and_rewrites(workspace: Path) -> None:
    (workspace / "sub").mkdir()
    argv = _check(workspace, "git -C sub log --oneline -n 3")
    assert argv[0].endswith("/git")
    assert argv[1:] == [*GIT_SAFE_PREFIX, "-C", "sub", "log", "--no-ext-diff", "--no-textconv", "--oneline", "-n", "3"]
    assert _check(workspace, "git status --short")[-3:] == ["--no-pager", "status", "--short"]
    assert _check(workspace, "git branch -a -v")[-3:] == ["branch", "-a", "-v"]
    assert _check(workspace, "git branch --list 'feat/*'")[-2:] == ["--list", "feat/*"]
    assert _check(workspace, "npx tsc --noEmit")[1:] == ["--no", "--", "tsc", "--noEmit"]
    assert _check(workspace, "npm exec -- eslint .")[1:] == ["exec", "--no", "--", "eslint", "."]
    assert _check(workspace, "npm run build")[1:] == ["run", "build"]
    assert _check(workspace, "pip list --format json")[1:] == ["list", "--format", "json"]
    assert _check(workspace, "python3 -m pytest -q")[1:] == ["-m", "pytest", "-q"]
    assert _check(workspace, "head -n 5 sub/../a.txt")[1:] == ["-n", "5", "sub/../a.txt"]
    assert _check(workspace, "ls -la sub")[1:] == ["-la", "sub"]


def test_configured_allowlist(workspace: Path) -> None:
    with pytest.raises(ToolError, match="not an allowed command"):
        _check(workspace, "python -V", allowed=["ls"])
    assert _check(workspace, "ls", allowed="ls, cat")[0].endswith("/ls")
    assert _check(workspace, "git blame a.txt", allowed={"git": ["blame"]})[-2:] == ["blame", "a.txt"]
    with pytest.raises(ToolError, match="git status is not allowed"):
        _check(workspace, "git status", allowed={"git": ["blame"]})
    with pytest.raises(ToolError, match="not installed"):
        _check(workspace, "surely-not-a-program-xyz", allowed=["surely-not-a-program-xyz"])
    with pytest.raises(ToolError, match="must be a list"):
        normalize_allowlist(42)


# --- running ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_runs_a_command_and_reports_exit_code_and_streams(workspace: Path, ctx: ToolContext) -> None:
    (workspace / "pkg").mkdir()
    ok = await call("executeCommand", {"command": "python -c \"import os; print('cwd=' + os.getcwd())\"",
                                       "cwd": "pkg"}, ctx)
    assert ok.data and ok.data["exitCode"] == 0
    assert f"cwd={_real(workspace / 'pkg')}" in ok.text and "(cwd: pkg)" in ok.text
    assert ok.summary.endswith("→ exit 0")
    bad = await call("executeCommand", {"command": "python -c \"import sys; print('oops', file=sys.stderr); sys.exit(3)\""}, ctx)
    assert bad.data and bad.data["exitCode"] == 3
    assert "exit code: 3" in bad.text and "--- stderr ---\noops" in bad.text
    with pytest.raises(ToolError, match="not a folder"):
        (workspace / "f.txt").write_text("x")
        await call("executeCommand", {"command": "ls", "cwd": "f.txt"}, ctx)
    with pytest.raises(ToolError, match="unknown argument"):
        await call("executeCommand", {"command": "ls", "shell": True}, ctx)


@pytest.mark.asyncio
async def test_secrets_are_scrubbed_from_env_and_masked_in_output(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_SECRET_VALUE", "server-side-hidden-42")
    ctx = ToolContext(root=workspace, env={"SERVICE_API_KEY": "sk-live-abcdef123456", "PLAIN_SETTING": "visible-1"})
    (workspace / "leak.txt").write_text("found sk-live-abcdef123456 and server-side-hidden-42 in a file\n")
    code = ("import os; print(sorted(k for k in os.environ if any(w in k.upper() for w in "
            "('KEY', 'TOKEN', 'SECRET', 'PASSWORD')))); print(os.environ.get('PLAIN_SETTING')); "
            "print(open('leak.txt').read())")
    result = await call("executeCommand", {"command": f'python -c "{code}"'}, ctx)
    assert "[]\nvisible-1\n" in result.text
    assert "found [masked] and [masked] in a file" in result.text
    assert "sk-live-abcdef123456" not in result.text and "server-side-hidden-42" not in result.text
    echoed = await call("executeCommand", {"command": "python -c \"print('sk-live-abcdef123456')\""}, ctx)
    assert "sk-live-abcdef123456" not in echoed.text + echoed.summary + str(echoed.data)


@pytest.mark.asyncio
async def test_long_output_keeps_head_and_tail(workspace: Path, ctx: ToolContext) -> None:
    result = await call("executeCommand", {"command": "python -c \"[print(i) for i in range(200000)]\""}, ctx)
    assert result.truncated and result.data
    assert result.data["stdoutBytes"] == sum(len(f"{i}\n") for i in range(200000))
    assert "--- stdout ---\n0\n1\n2\n" in result.text
    assert "bytes omitted" in result.text and result.text.rstrip().endswith("199999")


@pytest.mark.asyncio
async def test_timeout_kills_the_process_group(workspace: Path) -> None:
    token = "polaris-timeout-token-1"
    ctx = ToolContext(root=workspace, settings={"command_timeout_s": 1})
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', sys.argv[1]]); time.sleep(600)"
    result = await call("executeCommand", {"command": f'python -c "{code}" {token}'}, ctx)
    assert result.data and result.data["timedOut"] is True
    assert "TIMED OUT after 1 s" in result.text and "timed out" in result.summary
    assert await wait_for_pids(token, present=False) == []


@pytest.mark.asyncio
async def test_output_limit_kills_a_flooding_command(workspace: Path) -> None:
    ctx = ToolContext(root=workspace, settings={"max_output_bytes": 1_000_000, "command_timeout_s": 60})
    result = await call("executeCommand", {"command": "python -c \"while True: print('x' * 999)\""}, ctx)
    assert result.data and result.data["outputLimitHit"] is True and not result.data["timedOut"]
    assert "KILLED: output passed 1,000,000 bytes" in result.text


@pytest.mark.asyncio
async def test_sandbox_switched_off_says_so(workspace: Path) -> None:
    ctx = ToolContext(root=workspace, settings={"sandbox": "none"})
    result = await call("executeCommand", {"command": "python -c \"print(1)\""}, ctx)
    assert "sandbox: NONE" in result.text and result.data and result.data["sandbox"] == "none"


@pytest.mark.asyncio
async def test_missing_bwrap_falls_back_or_refuses(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = bubblewrap.shutil.which
    monkeypatch.setattr(bubblewrap.shutil, "which", lambda name, *a, **k: None if name == "bwrap" else real_which(name))
    result = await call("executeCommand", {"command": "python -c \"print(1)\""}, ToolContext(root=workspace))
    assert "sandbox: NONE — bubblewrap (bwrap) is not installed; only the command allowlist applies" in result.text
    with pytest.raises(ToolError, match="must run inside bubblewrap"):
        await call("executeCommand", {"command": "ls"}, ToolContext(root=workspace, settings={"sandbox": "bwrap"}))


@pytest.mark.asyncio
async def test_bwrap_probe_failure_is_detected(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = workspace / "fake-bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    real_which = bubblewrap.shutil.which
    monkeypatch.setattr(bubblewrap.shutil, "which", lambda name, *a, **k: str(fake) if name == "bwrap" else real_which(name))
    status = await bubblewrap.probe_bwrap(workspace)
    assert not status.available and "cannot run here" in status.reason and "namespace" in status.reason
    assert (await bubblewrap.probe_bwrap(workspace)) is status  # cached


@pytest.mark.asyncio
async def test_inside_bwrap_the_workspace_is_writable_and_the_rest_is_not(workspace: Path, outside: Path) -> None:
    if not await bwrap_works(workspace):
        pytest.skip("bubblewrap cannot run on this machine")
    (workspace / ".git").mkdir()
    ctx = ToolContext(root=workspace)
    code = ("import os\n"
            "open('made.txt', 'w').write('ok')\n"
            "open('/tmp/private.txt', 'w').write('tmp is private')\n"
            "for p in ['.git/hooks-planted', '/usr/polaris-x', os.environ.get('HOME', '/root') + '/polaris-x']:\n"
            "    try:\n        open(p, 'w').write('x'); print('WROTE', p)\n"
            "    except OSError as e:\n        print('refused', p, e.errno)\n")
    (workspace / "probe.py").write_text(code)
    result = await call("executeCommand", {"command": "python probe.py"}, ctx)
    assert "sandbox: bubblewrap" in result.text and "WROTE" not in result.text
    assert (workspace / "made.txt").read_text() == "ok"
    assert not (workspace / ".git" / "hooks-planted").exists()
    assert not _exists(Path("/tmp/private.txt"))


@pytest.mark.asyncio
@pytest.mark.skipif(not HAVE_GIT, reason="git is not installed")
async def test_git_read_only_commands_work_in_a_repo(workspace: Path, ctx: ToolContext) -> None:
    proc = await asyncio.create_subprocess_exec("git", "init", "-q", str(workspace))
    await proc.wait()
    (workspace / "a.txt").write_text("x\n")
    status = await call("executeCommand", {"command": "git status --short"}, ctx)
    assert status.data and status.data["exitCode"] == 0 and "?? a.txt" in status.text
    branch = await call("executeCommand", {"command": "git branch --show-current"}, ctx)
    assert branch.data and branch.data["exitCode"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("home_in_workspace", [False, True])
async def test_credentials_in_home_are_hidden_inside_bwrap(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home_in_workspace: bool
) -> None:
    """Both layouts: HOME elsewhere (not under /tmp, which the sandbox replaces), and the common
    Jupyter case of HOME being the workspace itself."""
    if not await bwrap_works(workspace):
        pytest.skip("bubblewrap cannot run on this machine")
    home = workspace if home_in_workspace else Path(tempfile.mkdtemp(prefix="polaris-home-", dir="/var/tmp"))
    try:
        (home / ".ssh").mkdir()
        (home / ".ssh" / "id_rsa").write_text("PRIVATE-KEY-MATERIAL\n")
        (home / ".netrc").write_text("machine x login y password NETRC-PASSWORD\n")
        (home / "notes.txt").write_text("ordinary file\n")
        monkeypatch.setenv("HOME", str(home))
        code = ("import os; h = os.path.expanduser('~'); print(os.listdir(h + '/.ssh')); "
                "print(repr(open(h + '/.netrc').read())); print(open(h + '/notes.txt').read())")
        result = await call("executeCommand", {"command": f'python -c "{code}"'}, ToolContext(root=workspace))
    finally:
        if not home_in_workspace:
            shutil.rmtree(home)
    assert "[]\n''\nordinary file" in result.text
    assert "PRIVATE-KEY-MATERIAL" not in result.text and "NETRC-PASSWORD" not in result.text
