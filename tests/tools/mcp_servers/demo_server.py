"""A small MCP server for the tests, written with the SDK's MCPServer (FastMCP in mcp 1.x).

    python demo_server.py                      # stdio
    python demo_server.py --http PORT          # streamable HTTP on 127.0.0.1:PORT/mcp

Tools: add, echo, slow (sleeps), fail (raises), picture (an image), big (a long text), env
(read-only); remember (acts: not read-only) and crash (the process exits). ``env`` answers
``DEMO_MARK`` of the server's environment.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ImageContent, TextContent, ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True)
#: A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

server = MCPServer("demo", log_level="WARNING")


@server.tool(annotations=READ_ONLY)
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool(annotations=READ_ONLY)
def echo(text: str) -> str:
    """Echo the text back."""
    return text


def _write_at_once(path: Path, text: str) -> None:
    """Write then rename, so a test that sees the file sees all of it."""
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    part.replace(path)


@server.tool(annotations=READ_ONLY)
async def slow(seconds: float, marker: str = "") -> str:
    """Sleep for ``seconds``, then answer. With ``marker``: the file ``marker.started`` is written
    when the call starts and ``marker`` holds "cancelled" if it is cancelled (so a test sees that
    the call reached the server, and that the client's cancel did too)."""
    if marker:
        _write_at_once(Path(marker + ".started"), "started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if marker:
            _write_at_once(Path(marker), "cancelled")  # no await while being cancelled
        raise
    return f"slept {seconds}"


@server.tool(annotations=READ_ONLY)
def fail(reason: str) -> str:
    """Always raises."""
    raise ToolError(f"demo failure: {reason}")


@server.tool()
def remember(text: str) -> str:
    """A tool that acts (not marked read-only): approvals hold it where commands need consent."""
    return f"remembered: {text}"


@server.tool()
def crash() -> str:
    """The server process exits at once."""
    os._exit(3)


@server.tool(annotations=READ_ONLY)
def picture() -> list[TextContent | ImageContent]:
    """A caption and a tiny PNG image."""
    return [
        TextContent(text="a tiny picture"),
        ImageContent(data=base64.b64encode(PNG).decode(), mime_type="image/png"),
    ]


@server.tool(annotations=READ_ONLY)
def big(chars: int) -> str:
    """``chars`` characters of text."""
    return "x" * chars


@server.tool(annotations=READ_ONLY)
def env() -> str:
    """The value of DEMO_MARK in the server's environment."""
    return os.environ.get("DEMO_MARK", "<unset>")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
