"""Fixtures for kernel-side tests: a scripted model, a workspace, an in-kernel Polaris client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polaris_jupyter.kernel import Polaris, connect, disconnect
from polaris_jupyter.testing import ScriptedModelServer
from tests.helpers import MODEL_ENV

#: Env vars that would point Polaris at a real model or at another server (tests.helpers).
FOREIGN_ENV = MODEL_ENV


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedModelServer]:
    """A scripted model as the only provider (``local``); enqueue replies on it."""
    server = ScriptedModelServer.start_in_thread(model="scripted-1")
    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POLARIS_LOCAL_BASE_URL", server.base_url)
    monkeypatch.setenv("POLARIS_LOCAL_MODEL", "scripted-1")
    monkeypatch.setenv("POLARIS_PROVIDER", "local")
    yield server
    server.stop()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text("def greet(name):\n    return f'hello {name}'\n")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def local_client(model: ScriptedModelServer, workspace: Path, tmp_path: Path) -> Iterator[Polaris]:
    """The kernel client with an engine hosted in this process (the fallback backend)."""
    client = connect("local", root_dir=str(workspace), db_path=str(tmp_path / "kernel.db"))
    yield client
    disconnect()
