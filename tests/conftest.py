"""Shared test setup. pytest-jupyter's plugin runs unmarked async tests in its own loop (server
tests); tests marked ``@pytest.mark.asyncio`` use pytest-asyncio (strict mode).

Under CI (``CI`` set), a skipped test fails: the test command installs every requirement
(chromium, bubblewrap, ripgrep, the [local] extra), so a skip there can only hide a regression.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import MODEL_ENV

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees a real provider key or another server's URL (tests.helpers.MODEL_ENV); what
    a test or the server under test sets is undone afterwards. Keys entered in the UI are read
    from an empty test file, never the user's (subprocesses inherit it), and the user's Jupyter
    config dir (its polaris/mcp.json) is replaced by an empty one."""
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POLARIS_KEYS_PATH", str(tmp_path_factory.mktemp("keys") / "keys.json"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path_factory.mktemp("jupyter-config")))


@pytest.fixture(autouse=True)
def _tool_calls_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chat tool calls run without approval (permission mode ``auto``, servers started by a test
    inherit it); the tests about approvals ask for ``ask`` themselves."""
    monkeypatch.setenv("POLARIS_PERMISSION_MODE", "auto")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every requirement is installed: {reason}"
