"""MCP servers and the tools list over REST on a real Jupyter server: GET /mcp, POST /mcp/reload,
GET /tools, with the demo MCP server (a real process) configured in the workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import async_wait_until, rest
from tests.tools.mcp_servers import stdio_entry


async def mcp_status(jp_fetch: Any) -> dict[str, Any]:
    status, body = await rest(jp_fetch, "mcp")
    assert status == 200
    return dict(body)


async def test_workspace_servers_are_listed_with_status_tools_and_problems(
    jp_fetch: Any, polaris: Any, jp_root_dir: Path
) -> None:
    first = await mcp_status(jp_fetch)
    assert first["servers"] == [] and first["problems"] == []
    workspace_json = jp_root_dir / ".polaris" / "mcp.json"
    assert str(workspace_json) in first["configPaths"]

    workspace_json.parent.mkdir()
    workspace_json.write_text(json.dumps({"mcpServers": {
        "demo": stdio_entry(),
        "nope": {"url": "ftp://example.invalid"},
        "off": {"command": "whatever", "disabled": True},
    }}))
    status, reloaded = await rest(jp_fetch, "mcp", "reload", method="POST")
    assert status == 200 and [s["name"] for s in reloaded["servers"]] == ["demo", "nope", "off"]
    assert reloaded["servers"][0]["status"] == "connecting", "reload answers at once; the server connects after"

    async def demo_ready() -> dict[str, Any] | None:
        body = await mcp_status(jp_fetch)
        demo = body["servers"][0]
        return body if demo["status"] == "ready" else None

    body: dict[str, Any] = await async_wait_until(demo_ready, timeout_s=60, what="demo ready")  # type: ignore[arg-type]
    demo, nope, off = body["servers"]
    assert demo["transport"] == "stdio" and demo["error"] is None and demo["source"] == str(workspace_json)
    add = next(t for t in demo["tools"] if t["name"] == "demo__add")
    assert add == {"name": "demo__add", "tool": "add", "server": "demo", "description": "Add two integers.",
                   "readOnly": True}
    assert nope["status"] == "failed" and "starting with http:// or https://" in nope["error"]
    assert off["status"] == "disabled"
    assert body["problems"] == [{"path": str(workspace_json), "server": "nope", "error": nope["error"]}]

    status, tools = await rest(jp_fetch, "tools")
    assert status == 200
    by_name = {t["name"]: t for t in tools["tools"]}
    assert by_name["readFile"] == {**by_name["readFile"], "access": "read", "server": None, "group": "files"}
    assert by_name["writeFile"]["access"] == "edit" and by_name["executeCommand"]["access"] == "execute"
    assert by_name["demo__add"]["access"] == "read" and by_name["demo__add"]["server"] == "demo"
    assert by_name["demo__remember"]["access"] == "execute"


async def test_a_bad_file_is_reported_and_the_server_keeps_serving(jp_fetch: Any, polaris: Any, jp_root_dir: Path) -> None:
    workspace_json = jp_root_dir / ".polaris" / "mcp.json"
    workspace_json.parent.mkdir()
    workspace_json.write_text('{"mcpServers": {"demo": {"command": ')
    status, body = await rest(jp_fetch, "mcp", "reload", method="POST")
    assert status == 200 and body["servers"] == []
    assert body["problems"] == [{"path": str(workspace_json), "server": None,
                                 "error": "not valid JSON: Expecting value at line 1, column 37"}]
    status, health = await rest(jp_fetch, "health")
    assert status == 200 and health["ok"]
