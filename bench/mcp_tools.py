"""MCP tools: connect time and tool-call round trip, over stdio and streamable HTTP, next to the bare SDK.

The server is the tests' demo MCP server (``tests/tools/mcp_servers/demo_server.py``, the SDK's
MCPServer) as a real process. For each transport:

* connect: ``McpManager.start()`` → the server ready with its tools listed (``connectMs``: start
  the program or open the session, initialize, list tools), over ``--connects`` fresh managers;
* call: ``demo__add`` through the registry's tool (argument check, the call, result text),
  ``--calls`` times one after another; the peer is a bare ``ClientSession.call_tool`` on a
  session of its own to the same kind of server.

Medians and p95 in ms; the last line is one JSON object.

    python bench/mcp_tools.py --calls 200 --connects 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from polaris_jupyter.config import PolarisConfig  # noqa: E402
from polaris_jupyter.tools.base import ToolContext  # noqa: E402
from polaris_jupyter.tools.mcp import McpManager, McpStatus  # noqa: E402
from tests.tools.mcp_servers import DEMO_SERVER, demo_http_server, stdio_entry  # noqa: E402


def ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered), 2), "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2)}


async def timed(n: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(5):  # warm up
        await call()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def ready_manager(entry: dict[str, Any], tmp: Path) -> McpManager:
    path = tmp / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"demo": entry}}))
    manager = McpManager(PolarisConfig(), tmp, paths=[path])
    await manager.start()
    connection = manager.connections["demo"]
    while connection.status is not McpStatus.READY:
        if connection.status is McpStatus.FAILED:
            raise RuntimeError(f"the demo server failed: {connection.error}")
        await asyncio.sleep(0.005)
    return manager


async def bare_sdk(entry: dict[str, Any], n: int) -> list[float]:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client

    async def run(read: Any, write: Any) -> list[float]:
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await timed(n, lambda: session.call_tool("add", {"a": 1, "b": 2}))

    if "url" in entry:
        async with streamable_http_client(entry["url"]) as (read, write):
            return await run(read, write)
    params = StdioServerParameters(command=entry["command"], args=entry["args"])
    async with stdio_client(params) as (read, write):
        return await run(read, write)


async def measure(transport: str, entry: dict[str, Any], calls: int, connects: int) -> dict[str, Any]:
    connect_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(connects):
            manager = await ready_manager(entry, Path(tmp))
            connect_ms.append(manager.connections["demo"].connect_ms or 0.0)
            await manager.stop()
        manager = await ready_manager(entry, Path(tmp))
        try:
            add = next(t for t in manager.tools() if t.name == "demo__add")
            ctx = ToolContext(root=Path(tmp))
            ours = await timed(calls, lambda: add.fn({"a": 1, "b": 2}, ctx))
        finally:
            await manager.stop()
    peer = await bare_sdk(entry, calls)
    return {"transport": transport, "connect_ms": ms(connect_ms), "call_ms": ms(ours), "bare_sdk_call_ms": ms(peer)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--connects", type=int, default=3)
    args = parser.parse_args()
    results = [await measure("stdio", stdio_entry(), args.calls, args.connects)]
    with demo_http_server() as url:
        results.append(await measure("http", {"url": url}, args.calls, args.connects))
    print(f"{'transport':<10}{'connect p50':>14}{'call p50':>12}{'call p95':>12}{'bare SDK p50':>15}")
    for r in results:
        print(f"{r['transport']:<10}{r['connect_ms']['p50']:>11.1f} ms{r['call_ms']['p50']:>9.2f} ms"
              f"{r['call_ms']['p95']:>9.2f} ms{r['bare_sdk_call_ms']['p50']:>12.2f} ms")
    print(json.dumps({"bench": "mcp", "server": str(DEMO_SERVER.relative_to(REPO)), "results": results}))


if __name__ == "__main__":
    asyncio.run(main())
