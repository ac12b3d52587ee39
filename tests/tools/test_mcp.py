"""MCP servers as tools, against a real MCP server process (tests/tools/mcp_servers/demo_server.py)
over stdio and over streamable HTTP: listing, calls, argument checks, errors, timeouts, output
caps, cancellation, a server that dies (failed, then restarted), and stopping."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.tools.base import MAX_TOOL_OUTPUT_CHARS, ToolContext, ToolError, ToolRegistry
from polaris_jupyter.tools.mcp import McpManager, McpStatus, McpTool, McpUnavailable
from polaris_jupyter.tools.mcp_connection import Backoff, McpConnection
from tests.helpers import async_wait_until
from tests.tools.mcp_servers import demo_http_server, stdio_entry

pytestmark = pytest.mark.asyncio
FAST = Backoff(min_s=0.05, max_s=0.2)


def write_config(path: Path, servers: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


async def ready(manager: McpManager, name: str = "demo", timeout_s: float = 60.0) -> McpConnection:
    connection = manager.connections[name]
    await async_wait_until(lambda: connection.status is McpStatus.READY, timeout_s=timeout_s,
                           what=f"MCP server {name} ready ({connection.status.value}: {connection.error})")
    return connection


class Manager:
    """Builds managers on config files in a temp dir and stops them after the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.made: list[McpManager] = []
        self.changes: list[tuple[str, McpStatus, str | None]] = []

    async def start(self, servers: dict[str, Any], **kw: Any) -> McpManager:
        config = write_config(self.tmp_path / "jcfg" / "polaris" / "mcp.json", servers)
        kw.setdefault("backoff", FAST)
        manager = McpManager(PolarisConfig(mcp_call_timeout_s=20), self.tmp_path, paths=[config],
                             on_change=lambda c: self.changes.append((c.spec.name, c.status, c.error)), **kw)
        self.made.append(manager)
        await manager.start()
        return manager


@pytest_asyncio.fixture
async def managers(tmp_path: Path) -> AsyncIterator[Manager]:
    made = Manager(tmp_path)
    try:
        yield made
    finally:
        for manager in made.made:
            await manager.stop()


@pytest.fixture
def http_url() -> Iterator[str]:
    with demo_http_server() as url:
        yield url


def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(root=tmp_path)


def by_name(manager: McpManager) -> dict[str, McpTool]:
    return {tool.name: tool for tool in manager.tools()}


# -- over stdio ---------------------------------------------------------------------------------
async def test_stdio_tools_are_listed_namespaced_with_schema_and_read_only_hint(managers: Manager, tmp_path: Path) -> None:
    manager = await managers.start({"demo": stdio_entry()})
    assert manager.connections["demo"].status is McpStatus.CONNECTING, "start() does not wait for the server"
    connection = await ready(manager)
    tools = by_name(manager)
    assert {"demo__add", "demo__echo", "demo__slow", "demo__fail", "demo__crash"} <= set(tools)
    add = tools["demo__add"]
    assert add.parameters["type"] == "object" and set(add.parameters["properties"]) == {"a", "b"}
    assert add.parameters["required"] == ["a", "b"] and "$schema" not in add.parameters
    assert add.description.startswith("[MCP server demo] Add two integers")
    assert add.is_read_only and add.group == "mcp" and add.path_params == ()
    assert tools["demo__slow"].is_read_only and add.access == "read"
    assert not tools["demo__remember"].is_read_only and tools["demo__remember"].access == "execute"
    status = manager.to_json()["servers"][0]
    assert status["status"] == "ready" and status["error"] is None and status["transport"] == "stdio"
    assert {"name": "demo__add", "tool": "add", "server": "demo", "description": "Add two integers.",
            "readOnly": True} in status["tools"]
    assert status["connectMs"] is not None and status["connections"] == 1 == connection.connections


async def test_stdio_call_results_errors_and_argument_checks(managers: Manager, tmp_path: Path) -> None:
    manager = await managers.start({"demo": stdio_entry(env={"DEMO_MARK": "from-${MARK_SOURCE:-default}"})})
    await ready(manager)
    tools = by_name(manager)
    result = await tools["demo__add"].fn({"a": 2, "b": 40}, ctx(tmp_path))
    assert not isinstance(result, str) and result.text == "42" and result.data == {"server": "demo", "tool": "add"}
    env = await tools["demo__env"].fn({}, ctx(tmp_path))
    assert not isinstance(env, str) and env.text == "from-default", "env of the entry, ${VAR:-default} expanded"
    with pytest.raises(ToolError, match=r"demo__fail failed: .*demo failure: disk on fire"):
        await tools["demo__fail"].fn({"reason": "disk on fire"}, ctx(tmp_path))
    with pytest.raises(ToolError, match=r"demo__add: argument 'a': 'two' is not of type 'integer' \(parameters: a, b\)"):
        await tools["demo__add"].fn({"a": "two", "b": 1}, ctx(tmp_path))
    with pytest.raises(ToolError, match=r"demo__add: 'b' is a required property"):
        await tools["demo__add"].fn({"a": 1}, ctx(tmp_path))
    picture = await tools["demo__picture"].fn({}, ctx(tmp_path))
    assert not isinstance(picture, str)
    assert picture.text == "a tiny picture\n[image: image/png, 70 bytes; not shown as text]"
    big = await tools["demo__big"].fn({"chars": MAX_TOOL_OUTPUT_CHARS + 500}, ctx(tmp_path))
    assert not isinstance(big, str) and big.truncated
    assert big.text.endswith("[truncated: 500 more characters not shown]")


async def test_a_call_over_its_time_limit_is_cancelled_on_the_server(managers: Manager, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled.txt"
    manager = await managers.start({"demo": stdio_entry(timeout=0.5)})
    await ready(manager)
    slow = by_name(manager)["demo__slow"]
    with pytest.raises(ToolError, match=r"demo__slow did not answer within 0.5 s, so the call was cancelled"):
        await slow.fn({"seconds": 60, "marker": str(marker)}, ctx(tmp_path))
    await async_wait_until(marker.exists, what="the server saw the cancel")
    assert marker.read_text() == "cancelled"
    add = await by_name(manager)["demo__add"].fn({"a": 1, "b": 1}, ctx(tmp_path))
    assert not isinstance(add, str) and add.text == "2", "the session survives a timed-out call"


async def test_a_cancelled_caller_cancels_the_call(managers: Manager, tmp_path: Path) -> None:
    marker = tmp_path / "cancelled.txt"
    manager = await managers.start({"demo": stdio_entry()})
    await ready(manager)
    slow = by_name(manager)["demo__slow"]

    async def run() -> object:
        return await slow.fn({"seconds": 60, "marker": str(marker)}, ctx(tmp_path))

    call = asyncio.create_task(run())
    await async_wait_until(Path(f"{marker}.started").exists, what="the call reached the server")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await async_wait_until(marker.exists, what="the server saw the cancel")


async def test_a_server_that_exits_is_failed_then_restarted(managers: Manager, tmp_path: Path) -> None:
    manager = await managers.start({"demo": stdio_entry()})
    connection = await ready(manager)
    with pytest.raises(McpUnavailable, match="closed the connection"):
        await by_name(manager)["demo__crash"].fn({}, ctx(tmp_path))
    await async_wait_until(lambda: connection.connections == 2 and connection.status is McpStatus.READY,
                           timeout_s=60, what="restarted")
    failed = [error for name, status, error in managers.changes if status is McpStatus.FAILED]
    assert failed and "closed the connection" in (failed[0] or "")
    result = await by_name(manager)["demo__add"].fn({"a": 3, "b": 4}, ctx(tmp_path))
    assert not isinstance(result, str) and result.text == "7"


async def test_a_server_that_cannot_start_is_failed_with_its_stderr(managers: Manager, tmp_path: Path) -> None:
    script = tmp_path / "broken_server.py"
    script.write_text("import os, sys\nprint('cannot open the database /nowhere with', os.environ['API_TOKEN'], "
                      "file=sys.stderr)\nsys.exit(2)\n")
    manager = await managers.start({
        "broken": {"command": sys.executable, "args": [str(script)], "env": {"API_TOKEN": "s3cr3t-token-value"}},
        "missing": {"command": "no-such-mcp-server-program"},
        "off": {"command": "whatever", "disabled": True},
    }, backoff=Backoff(min_s=30, max_s=60))
    broken, missing = manager.connections["broken"], manager.connections["missing"]
    await async_wait_until(lambda: broken.status is McpStatus.FAILED and missing.status is McpStatus.FAILED,
                           timeout_s=60, what="both failed")
    assert "cannot open the database /nowhere with ***" in (broken.error or "")
    assert "s3cr3t" not in json.dumps(manager.to_json()), "env values are masked in the reason"
    assert missing.error == "cannot start 'no-such-mcp-server-program': no such program (is it installed and on PATH?)"
    assert manager.connections["off"].status is McpStatus.DISABLED
    assert broken.to_json()["retryAt"] is not None and manager.tools() == []
    with pytest.raises(McpUnavailable, match="is disabled"):
        await manager.connections["off"].call("x", {}, 1)


async def test_an_unset_variable_fails_the_server_with_its_name(managers: Manager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMO_TOKEN_FOR_TEST", raising=False)
    manager = await managers.start({"demo": stdio_entry(env={"TOKEN": "${DEMO_TOKEN_FOR_TEST}"})},
                                   backoff=Backoff(min_s=30, max_s=60))
    connection = manager.connections["demo"]
    await async_wait_until(lambda: connection.status is McpStatus.FAILED, what="failed")
    assert connection.error is not None and "DEMO_TOKEN_FOR_TEST is not set (used in env.TOKEN)" in connection.error


async def test_stop_ends_the_program_and_reload_keeps_unchanged_servers(managers: Manager, tmp_path: Path) -> None:
    manager = await managers.start({"demo": stdio_entry(), "other": stdio_entry()})
    demo, other = await ready(manager), await ready(manager, "other")
    write_config(Path(manager.paths[0]), {"demo": stdio_entry(), "third": stdio_entry(env={"X": "1"})})
    answer = await manager.reload()
    assert [s["name"] for s in answer["servers"]] == ["demo", "third"]
    assert manager.connections["demo"] is demo and demo.status is McpStatus.READY, "unchanged: same session"
    assert demo.connections == 1 and other._task is None, "the removed server was stopped"
    await ready(manager, "third")
    await manager.stop()
    assert manager.connections == {} and demo._task is None


async def test_registry_with_adds_ready_servers_to_a_copy(managers: Manager, tmp_path: Path) -> None:
    from polaris_jupyter.tools import load_all

    base = load_all(ToolRegistry())
    manager = await managers.start({"demo": stdio_entry()})
    before = manager.registry_with(base)
    assert "demo__add" not in before and len(before) == len(base), "a connecting server offers nothing yet"
    await ready(manager)
    registry = manager.registry_with(base)
    assert "demo__add" in registry and "readFile" in registry and "demo__add" not in base


# -- over streamable HTTP -------------------------------------------------------------------------
async def test_http_server_lists_and_calls_with_headers(managers: Manager, tmp_path: Path, http_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_HTTP_TOKEN", "t0k3n")
    manager = await managers.start({"web": {"url": http_url, "headers": {"Authorization": "Bearer ${DEMO_HTTP_TOKEN}"}}})
    connection = await ready(manager, "web")
    status = connection.to_json()
    assert status["transport"] == "http" and status["target"] == http_url and "headers" not in status
    assert "t0k3n" not in json.dumps(manager.to_json()), "header values are never shown"
    tools = by_name(manager)
    assert tools["web__add"].is_read_only
    result = await tools["web__add"].fn({"a": 20, "b": 22}, ctx(tmp_path))
    assert not isinstance(result, str) and result.text == "42"
    with pytest.raises(ToolError, match="demo failure: over http"):
        await tools["web__fail"].fn({"reason": "over http"}, ctx(tmp_path))


async def test_http_server_that_goes_away_is_failed_and_reconnected_when_back(managers: Manager, tmp_path: Path) -> None:
    with demo_http_server() as url:
        manager = await managers.start({"web": {"url": url}}, health_interval_s=0.1)
        connection = await ready(manager, "web")
    # The server process is gone (the context manager killed it).
    await async_wait_until(lambda: connection.status is McpStatus.FAILED, timeout_s=60, what="failed")
    assert connection.error
    with pytest.raises(McpUnavailable, match="not connected"):
        await connection.call("add", {"a": 1, "b": 2}, 5)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with demo_http_server(port=port) as same:
        assert same == url
        await async_wait_until(lambda: connection.status is McpStatus.READY, timeout_s=60, what="reconnected")
        result = await by_name(manager)["web__add"].fn({"a": 1, "b": 2}, ctx(tmp_path))
        assert not isinstance(result, str) and result.text == "3"



async def test_stop_while_connecting_ends_the_program(managers: Manager, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = tmp_path / "mute_server.py"
    script.write_text(f"import os, pathlib, time\npathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\ntime.sleep(120)\n")
    manager = await managers.start({"mute": {"command": sys.executable, "args": [str(script)]}})
    await async_wait_until(pid_file.exists, timeout_s=60, what="the program started")
    pid = int(pid_file.read_text())
    assert manager.connections["mute"].status is McpStatus.CONNECTING
    await manager.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
