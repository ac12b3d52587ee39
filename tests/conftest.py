"""Shared test setup. pytest-jupyter's plugin runs unmarked async tests in its own loop (server
tests); tests marked ``@pytest.mark.asyncio`` use pytest-asyncio (strict mode)."""

from __future__ import annotations

pytest_plugins = ["pytest_jupyter.jupyter_server"]
