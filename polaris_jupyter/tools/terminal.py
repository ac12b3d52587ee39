"""executeCommand: run one allowlisted program in the workspace, sandboxed where possible.

No shell: the command is split with shlex and checked by :mod:`command_policy`. The process
gets its own process group (and, with bubblewrap, its own PID namespace); it is killed with
SIGKILL when it times out, prints more than the output limit, or when the calling task is
cancelled (a run cancel). Output is captured in bounded buffers while it is read (head and
tail of each stream), so a command printing gigabytes costs no memory. The environment loses
every variable whose name holds KEY, TOKEN, SECRET or PASSWORD, and their values are masked in
the output should the command find them elsewhere.

Settings (``ctx.settings``): ``allowed_commands``, ``npx_allowed``, ``command_timeout_s``
(default 30), ``max_output_bytes`` (default 32 MB; the command is killed beyond it),
``sandbox`` ("auto" default, "bwrap" = refuse to run without it, "none" = never use it).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polaris_jupyter.tools._args import check_args, get_str
from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolResult, cap_text
from polaris_jupyter.tools.bubblewrap import SandboxStatus, bwrap_prefix, probe_bwrap
from polaris_jupyter.tools.command_policy import (
    DEFAULT_NPX_BINS,
    Allowlist,
    check_command,
    normalize_allowlist,
    parse_command,
)
from polaris_jupyter.tools.sandbox import relative_to_root, resolve_path

__all__ = ["TOOLS", "ProcessOutcome", "run_process", "scrubbed_env", "secret_values"]

DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 3600.0
DEFAULT_MAX_OUTPUT_BYTES = 32 * 1024 * 1024
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
_MIN_MASKED_CHARS = 6
_CHUNK_BYTES = 65536


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def scrubbed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The server environment plus ``extra``, without secrets or GIT_* redirections."""
    env = {**os.environ, **(extra or {})}
    env = {k: v for k, v in env.items() if not _is_secret_name(k) and not k.startswith("GIT_")}
    env.update(
        GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", GIT_PAGER="cat", PAGER="cat", TERM="dumb",
        NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", npm_config_update_notifier="false",
    )
    return env


def secret_values(extra: dict[str, str] | None = None) -> list[str]:
    """Values of secret-looking variables (longest first), to mask in command output."""
    env = {**os.environ, **(extra or {})}
    values = {v for k, v in env.items() if _is_secret_name(k) and len(v) >= _MIN_MASKED_CHARS}
    return sorted(values, key=len, reverse=True)


def mask(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, "[masked]")
    return text


@dataclass
class _Capture:
    """Keeps the first ``head_bytes`` and the last ``tail_bytes`` of a stream, counts the rest."""

    head_bytes: int
    tail_bytes: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_bytes - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_bytes:
                del self.tail[: len(self.tail) - self.tail_bytes]

    def render(self) -> str:
        kept = len(self.head) + len(self.tail)
        head = bytes(self.head).decode("utf-8", "replace")
        tail = bytes(self.tail).decode("utf-8", "replace")
        if kept >= self.total:
            return head + tail
        return f"{head}\n… [{self.total - kept:,} bytes omitted] …\n{tail}"


@dataclass
class ProcessOutcome:
    exit_code: int | None
    stdout: _Capture
    stderr: _Capture
    timed_out: bool = False
    output_limit_hit: bool = False


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run_process(
    argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float, max_output_bytes: int
) -> ProcessOutcome:
    """Run ``argv`` in its own session; always leaves no process of its group behind."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    outcome = ProcessOutcome(None, _Capture(6000, 4000), _Capture(3000, 4000))

    async def pump(stream: asyncio.StreamReader | None, capture: _Capture) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_CHUNK_BYTES):
            capture.feed(chunk)
            if outcome.stdout.total + outcome.stderr.total > max_output_bytes and not outcome.output_limit_hit:
                outcome.output_limit_hit = True
                _kill_group(proc.pid)

    async def collect() -> int:
        await asyncio.gather(pump(proc.stdout, outcome.stdout), pump(proc.stderr, outcome.stderr))
        return await proc.wait()

    try:
        outcome.exit_code = await asyncio.wait_for(collect(), timeout=timeout_s)
    except asyncio.TimeoutError:
        outcome.timed_out = True
    finally:
        _kill_group(proc.pid)  # stragglers of a finished command, or the whole group on timeout/cancel
        if proc.returncode is None:
            try:
                await proc.wait()
            except asyncio.CancelledError:
                proc.kill()
                raise
    if outcome.exit_code is None:
        outcome.exit_code = proc.returncode
    return outcome


def _timeout_s(ctx: ToolContext) -> float:
    value = ctx.settings.get("command_timeout_s", DEFAULT_TIMEOUT_S)
    try:
        timeout_s = float(value)
    except (TypeError, ValueError):
        timeout_s = DEFAULT_TIMEOUT_S
    return min(max(timeout_s, 0.1), MAX_TIMEOUT_S)


async def _sandbox_status(ctx: ToolContext) -> SandboxStatus:
    mode = str(ctx.settings.get("sandbox", "auto")).lower()
    if mode in ("none", "off", "false"):
        return SandboxStatus(False, "the sandbox is switched off by configuration")
    status = await probe_bwrap(ctx.root)
    if not status.available and mode in ("bwrap", "required", "true"):
        raise ToolError(f"commands must run inside bubblewrap, but {status.reason}; refusing to run")
    return status


def _plan(
    root: Path, cwd_arg: str | None, argv: list[str], allowed: Allowlist, search_path: str | None,
    npx_bins: tuple[str, ...],
) -> tuple[Path, str, list[str]]:
    """Blocking checks (paths, PATH lookup): the working folder and the argv to run."""
    cwd = resolve_path(root, cwd_arg or ".", must_exist=True)
    cwd_rel = relative_to_root(root, cwd)
    if not cwd.is_dir():
        raise ToolError(f"cwd {cwd_rel!r} is not a folder")
    checked = check_command(argv, root=root, cwd=cwd, allowed=allowed, search_path=search_path, npx_bins=npx_bins)
    return cwd, cwd_rel, checked


async def execute_command(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    args = check_args("executeCommand", args, ("command", "cwd"), ("command",))
    command = get_str(args, "command", max_chars=20_000) or ""
    env = scrubbed_env(ctx.env)
    secrets = secret_values(ctx.env)
    argv_in = parse_command(command)
    allowed = normalize_allowlist(ctx.settings.get("allowed_commands"))
    npx_bins = tuple(str(name) for name in ctx.settings.get("npx_allowed", DEFAULT_NPX_BINS))
    cwd, cwd_rel, argv = await asyncio.to_thread(
        _plan, ctx.root, get_str(args, "cwd"), argv_in, allowed, env.get("PATH"), npx_bins
    )
    status = await _sandbox_status(ctx)
    if status.available and status.bwrap:
        env["TMPDIR"] = "/tmp"
        env.setdefault("XDG_CACHE_HOME", "/tmp/.cache")
        env["npm_config_cache"] = "/tmp/.npm"
        prefix = await asyncio.to_thread(bwrap_prefix, status.bwrap, ctx.root, cwd)
        full_argv = [*prefix, *argv]
        sandbox_note = "sandbox: bubblewrap (only the workspace is writable; no network)"
    else:
        full_argv = argv
        sandbox_note = f"sandbox: NONE — {status.reason}; only the command allowlist applies"
    timeout_s = _timeout_s(ctx)
    max_output_bytes = int(ctx.settings.get("max_output_bytes", DEFAULT_MAX_OUTPUT_BYTES))
    try:
        outcome = await run_process(full_argv, cwd=cwd, env=env, timeout_s=timeout_s,
                                    max_output_bytes=max_output_bytes)
    except OSError as exc:
        raise ToolError(f"could not start {argv[0]!r}: {exc.strerror or exc}") from None
    shown = mask(" ".join(command.split()), secrets)
    if outcome.timed_out:
        status_line = f"TIMED OUT after {timeout_s:g} s: the process group was killed"
        summary = f"{shown[:80]} → timed out ({timeout_s:g} s)"
    elif outcome.output_limit_hit:
        status_line = f"KILLED: output passed {max_output_bytes:,} bytes"
        summary = f"{shown[:80]} → killed (too much output)"
    else:
        status_line = f"exit code: {outcome.exit_code}"
        summary = f"{shown[:80]} → exit {outcome.exit_code}"
    stdout = mask(outcome.stdout.render(), secrets)
    stderr = mask(outcome.stderr.render(), secrets)
    parts = [f"$ {shown}" + (f"   (cwd: {cwd_rel})" if cwd_rel != "." else ""), f"{status_line}   [{sandbox_note}]"]
    parts.append("--- stdout ---\n" + (stdout if stdout else "(empty)"))
    if stderr:
        parts.append("--- stderr ---\n" + stderr)
    text, cut = cap_text("\n".join(parts))
    truncated = cut or outcome.stdout.total + outcome.stderr.total > len(outcome.stdout.head) + len(
        outcome.stdout.tail) + len(outcome.stderr.head) + len(outcome.stderr.tail)
    data = {
        "command": shown, "cwd": cwd_rel, "exitCode": outcome.exit_code, "timedOut": outcome.timed_out,
        "outputLimitHit": outcome.output_limit_hit, "sandbox": "bwrap" if status.available else "none",
        "sandboxReason": status.reason, "stdoutBytes": outcome.stdout.total, "stderrBytes": outcome.stderr.total,
    }
    return ToolResult(text, summary=summary, truncated=truncated, data=data)


TOOLS: list[Tool] = [
    Tool(
        name="executeCommand",
        description=(
            "Run one program in the workspace, without a shell (no pipes, redirections or &&). Allowed by "
            "default: python, pytest, pip (list/show/check), ruff, mypy, git (status/diff/log/show/branch), "
            "node, npm, npx (tsc/eslint/prettier), tsc, eslint, prettier, ls, cat, head, tail, wc. Runs in a "
            "sandbox where only the workspace is writable and there is no network; times out after 30 s by "
            "default; long output is cut."
        ),
        parameters={
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command line, e.g. 'python -m pytest -q tests'."},
                "cwd": {"type": "string", "description": "Folder to run in, relative to the workspace root; default '.'."},
            },
            "required": ["command"],
            "additionalProperties": False,
        },
        fn=execute_command,
        group="terminal",
        path_params=("cwd",),
    ),
]
