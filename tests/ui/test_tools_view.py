"""The Tools list in a real JupyterLab (Chromium): opened from the sidebar's Tools button, it
shows the built-in tools with their access, and, after "Reload MCP config", the demo MCP
server (a real process configured in the workspace's .polaris/mcp.json) going ready with its
namespaced tools, a misconfigured server failed with the reason, and a bad entry's problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.tools.mcp_servers import stdio_entry
from tests.ui.conftest import LabServer
from tests.ui.test_sidebar_smoke import ALLOWED_ERRORS, open_lab, open_sidebar

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_tools_view_shows_builtin_and_mcp_tools_with_status(page: Any, lab_server: LabServer, artifacts_dir: Path) -> None:
    open_lab(page, lab_server)
    sidebar = open_sidebar(page)
    sidebar.locator(".pj-open-tools").click()
    view = page.locator("#polaris-tools")
    view.locator(".pj-builtin-section").wait_for(state="visible", timeout=15_000)
    read_file = view.locator('.pj-tool-row[data-tool="readFile"]')
    assert read_file.get_attribute("data-access") == "read"
    assert view.locator('.pj-tool-row[data-tool="executeCommand"]').get_attribute("data-access") == "execute"
    assert view.locator(".pj-mcp-none").is_visible(), "no servers configured yet"

    config = lab_server.root / ".polaris" / "mcp.json"
    config.parent.mkdir(exist_ok=True)
    config.write_text(json.dumps({"mcpServers": {
        "demo": stdio_entry(),
        "missing": {"command": "no-such-mcp-server-program"},
        "bad": {"url": "ftp://example.invalid"},
    }}))
    view.locator(".pj-mcp-reload").click()
    demo = view.locator('.pj-mcp-server[data-server="demo"]')
    page.wait_for_function(
        "() => document.querySelector('#polaris-tools .pj-mcp-server[data-server=\"demo\"]')"
        "?.getAttribute('data-status') === 'ready'",
        timeout=60_000,
    )
    assert demo.locator(".pj-mcp-status").inner_text() == "ready"
    add = demo.locator('.pj-tool-row[data-tool="demo__add"]')
    assert add.get_attribute("data-access") == "read" and "Add two integers" in add.inner_text()
    assert demo.locator('.pj-tool-row[data-tool="demo__remember"]').get_attribute("data-access") == "execute"
    missing = view.locator('.pj-mcp-server[data-server="missing"]')
    page.wait_for_function(
        "() => document.querySelector('#polaris-tools .pj-mcp-server[data-server=\"missing\"]')"
        "?.getAttribute('data-status') === 'failed'",
        timeout=30_000,
    )
    assert "no such program" in missing.locator(".pj-mcp-error").inner_text()
    problem = view.locator(".pj-mcp-problem")
    assert str(config) in problem.inner_text() and "server bad" in problem.inner_text()
    page.screenshot(path=str(artifacts_dir / "tools-view.png"))
    errors = page.polaris_log.unexpected(ALLOWED_ERRORS)
    assert not errors, f"console/page errors: {errors}"
