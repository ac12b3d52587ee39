"""MCP servers as tools: the manager the runtime owns.

``McpManager`` reads the ``mcpServers`` files (``mcp_config.py``), keeps one
:class:`~polaris_jupyter.tools.mcp_connection.McpConnection` per server (each its own long-lived
task, connecting in the background, restarted with backoff when it dies, stopped with the
runtime) and offers the tools of the servers that are ready to each chat turn, namespaced
``server__tool`` (``mcp_tools.py``)::

    manager = McpManager(config, root_dir)
    await manager.start()                      # returns at once; servers connect in the background
    registry = manager.registry_with(load_all())  # workspace tools + every ready server's tools
    manager.to_json()                          # servers, statuses, errors, tools (GET /mcp)
    await manager.stop()

The files are read at start and on :meth:`reload` (a user action), never because a file
changed: a tool that may write ``.polaris/mcp.json`` must not be able to start programs by it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polaris_jupyter.tools.base import ToolRegistry
from polaris_jupyter.tools.mcp_config import (
    ConfigProblem,
    McpServerSpec,
    McpStatus,
    load_mcp_config,
    mcp_config_paths,
)
from polaris_jupyter.tools.mcp_connection import Backoff, McpConnection, McpUnavailable
from polaris_jupyter.tools.mcp_tools import McpTool, make_tool

if TYPE_CHECKING:
    from polaris_jupyter.config import PolarisConfig

__all__ = ["McpManager", "McpStatus", "McpTool", "McpUnavailable", "tools_json"]

log = logging.getLogger("polaris_jupyter.tools.mcp")


class McpManager:
    """Every configured MCP server of one runtime (see the module docstring)."""

    def __init__(
        self,
        config: PolarisConfig,
        root_dir: Path,
        *,
        paths: list[Path] | None = None,
        backoff: Backoff | None = None,
        health_interval_s: float = 15.0,
        on_change: Callable[[McpConnection], None] | None = None,
    ) -> None:
        self.config = config
        self.root_dir = root_dir
        self._paths = paths
        self.backoff = backoff or Backoff()
        self.health_interval_s = health_interval_s
        #: Called on every status change of a server (with its connection).
        self.on_change = on_change
        self.connections: dict[str, McpConnection] = {}
        self.problems: list[ConfigProblem] = []
        self.config_paths: list[str] = []
        self._lock = asyncio.Lock()
        self._tool_cache: dict[str, tuple[tuple[int, int, float], list[McpTool]]] = {}
        self._started = False

    @property
    def paths(self) -> list[Path]:
        if self._paths is not None:
            return self._paths
        return mcp_config_paths(self.root_dir, include_workspace=self.config.mcp_workspace_config)

    async def start(self) -> None:
        """Read the files and start connecting (in the background: this does not wait for any server)."""
        self._started = True
        await self.reload()

    async def stop(self) -> None:
        """Stop every server (their sessions end, their programs are stopped) and forget them."""
        self._started = False
        async with self._lock:
            connections, self.connections = list(self.connections.values()), {}
            await asyncio.gather(*(c.stop() for c in connections))

    async def reload(self) -> dict[str, Any]:
        """Read the files again: servers whose entry changed or went away are stopped, new and
        changed ones started, the rest keep their session. Returns :meth:`to_json`."""
        async with self._lock:
            config = await asyncio.to_thread(load_mcp_config, self.paths)
            self.problems, self.config_paths = config.problems, [str(p) for p in self.paths]
            for problem in config.problems:
                log.warning("polaris: MCP config %s: %s%s", problem.path,
                            f"server {problem.server}: " if problem.server else "", problem.error)
            gone = [c for name, c in self.connections.items() if config.servers.get(name) != c.spec]
            await asyncio.gather(*(c.stop() for c in gone))
            kept = {name: c for name, c in self.connections.items() if c not in gone}
            self.connections = {}
            for name, spec in config.servers.items():
                self.connections[name] = kept.get(name) or self._connect(spec)
        return self.to_json()

    def _connect(self, spec: McpServerSpec) -> McpConnection:
        connection = McpConnection(
            spec, root=self.root_dir, connect_timeout_s=self.config.mcp_connect_timeout_s,
            health_interval_s=self.health_interval_s, backoff=self.backoff, on_change=self.on_change,
        )
        if self._started:
            connection.start()
        return connection

    # -- tools ------------------------------------------------------------------------------
    def tools(self) -> list[McpTool]:
        """The tools of every ready server, namespaced; a name two servers produce is kept once."""
        out: dict[str, McpTool] = {}
        for connection in self.connections.values():
            if connection.status is not McpStatus.READY:
                continue
            for tool in self._server_tools(connection):
                if tool.name in out:
                    log.warning("polaris: MCP tool %s of server %s hides another tool of the same name",
                                tool.name, connection.spec.name)
                    continue
                out[tool.name] = tool
        return list(out.values())

    def _server_tools(self, connection: McpConnection) -> list[McpTool]:
        """The registry's tools of one server, built once per listing (each checks its arguments
        with a validator compiled from the server's schema)."""
        timeout_s = connection.spec.call_timeout_s or self.config.mcp_call_timeout_s
        key = (id(connection), id(connection.tools), timeout_s)
        cached = self._tool_cache.get(connection.spec.name)
        if cached is None or cached[0] != key:
            cached = (key, [make_tool(info, connection.call, timeout_s) for info in connection.tools])
            self._tool_cache[connection.spec.name] = cached
        return cached[1]

    def registry_with(self, base: ToolRegistry) -> ToolRegistry:
        """A new registry: ``base``'s tools, then the ready servers' tools (``base`` is not changed)."""
        registry = ToolRegistry(tool for name in base.names() if (tool := base.get(name)) is not None)
        for tool in self.tools():
            if tool.name not in registry:
                registry.register(tool)
        return registry

    # -- status -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Servers (status, error, tools), the files read and what was wrong with them."""
        return {
            "servers": [c.to_json() for c in self.connections.values()],
            "problems": [p.to_json() for p in self.problems],
            "configPaths": list(self.config_paths),
        }


def tools_json(registry: ToolRegistry) -> list[dict[str, Any]]:
    """Every tool of ``registry`` as the Tools list shows it: name, description, group, access
    (``tools/permissions.py``) and the MCP server it comes from (None for a built-in tool)."""
    from polaris_jupyter.tools.permissions import tool_access

    out = []
    for name in registry.names():
        tool = registry.get(name)
        if tool is None:
            continue
        out.append({
            "name": tool.name, "description": tool.description, "group": tool.group,
            "access": tool_access(tool).value, "server": tool.server if isinstance(tool, McpTool) else None,
        })
    return out
