"""A real Jupyter server (pytest-jupyter) with the Polaris extension and a temp database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"polaris_jupyter": True}},
        "PolarisConfig": {
            "db_path": str(tmp_path / "polaris.db"),
            "task_modules": ["tests.server.sample_tasks"],
        },
    }


@pytest.fixture
def polaris(jp_serverapp: Any, jp_asyncio_loop: Any) -> Iterator[Any]:
    """The started runtime (pytest-jupyter does not run the extension's async start hook).

    Server tests are plain ``async def`` (no asyncio mark): pytest-jupyter runs them in the
    server's loop, which is also where this runtime lives.
    """
    runtime = jp_serverapp.web_app.settings["polaris_runtime"]
    jp_asyncio_loop.run_until_complete(runtime.start())
    yield runtime
    jp_asyncio_loop.run_until_complete(runtime.stop())
