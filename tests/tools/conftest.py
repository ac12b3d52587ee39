"""Fixtures for the workspace-tool tests: a workspace, a sentinel folder outside it, a journal."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.tools import files, notebook, terminal
from polaris_jupyter.tools.base import ToolContext, ToolResult
from polaris_jupyter.tools.edits import MemoryEditJournal

MY_TOOLS = {tool.name: tool for module in (files, notebook, terminal) for tool in module.TOOLS}
SECRET_TEXT = "TOP-SECRET-OUTSIDE-CONTENT"


def snapshot(folder: Path) -> dict[str, Any]:
    """Every entry under ``folder`` with its kind, bytes / link target and mode."""
    state: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                state[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                state[rel] = ("dir", path.stat().st_mode)
            else:
                state[rel] = ("file", path.read_bytes(), path.stat().st_mode)
    return state


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A sentinel folder next to the workspace that no tool may change or reveal."""
    folder = tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    (folder / "secret.txt").write_text(SECRET_TEXT + "\n")
    (folder / "sub" / "data.py").write_text(f"X = '{SECRET_TEXT}'\n")
    return folder


@pytest.fixture
def journal() -> MemoryEditJournal:
    return MemoryEditJournal()


@pytest.fixture
def ctx(workspace: Path, journal: MemoryEditJournal) -> ToolContext:
    return ToolContext(root=workspace, run_id="run-1", edits=journal)


async def call(name: str, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    """Run one of our tools by name the way the agent loop does."""
    out = await MY_TOOLS[name].fn(args, ctx)
    assert isinstance(out, ToolResult)
    return out


def pids_with(token: str) -> list[int]:
    """Live (non-zombie) processes whose command line holds ``token``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                cmdline = handle.read()
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != b"Z":
            found.append(int(name))
    return found


async def wait_for_pids(token: str, *, present: bool, minimum: int = 1, attempts: int = 400) -> list[int]:
    """Poll /proc until at least ``minimum`` processes with ``token`` run (present=True) or
    until none is left (present=False)."""
    pids = pids_with(token)
    for _ in range(attempts):
        if (len(pids) >= minimum) if present else not pids:
            return pids
        await asyncio.sleep(0.025)
        pids = pids_with(token)
    return pids
