"""A task module that fails to import does not take the extension down (issue 11, item 8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"polaris_jupyter": True}},
        "PolarisConfig": {
            "db_path": str(tmp_path / "polaris.db"),
            "task_modules": ["tests.server.bad_task_module", "tests.server.sample_tasks"],
        },
    }


async def test_a_broken_task_module_is_reported_and_the_rest_works(jp_fetch: Any, polaris: Any, caplog: pytest.LogCaptureFixture) -> None:
    health = json.loads((await jp_fetch("polaris", "api", "v1", "health")).body)
    assert health["ok"] is False
    (error,) = health["taskModuleErrors"]
    assert error["module"] == "tests.server.bad_task_module"
    assert error["error"].startswith("TypeError: unsupported operand") and "bad_task_module.py" in error["traceback"]
    tasks = json.loads((await jp_fetch("polaris", "api", "v1", "tasks")).body)["tasks"]
    assert {"test-echo", "process-message", "cleanup"} <= {t["id"] for t in tasks}
    triggered = json.loads((await jp_fetch("polaris", "api", "v1", "tasks", "test-echo", "trigger", method="POST", body=json.dumps({"payload": 1}))).body)
    assert triggered["id"].startswith("run_")


async def test_a_request_during_start_gets_503_with_retry_after(jp_fetch: Any, jp_serverapp: Any) -> None:
    """Before the engine started (no ``polaris`` fixture): 503, Retry-After, a clear message."""
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("polaris", "api", "v1", "runs")
    assert refused.value.code == 503
    assert refused.value.response is not None and refused.value.response.headers["Retry-After"] == "1"
    assert "starting" in json.loads(refused.value.response.body)["message"]
