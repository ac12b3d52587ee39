"""MCP servers the tests start as real processes (written with the SDK's MCPServer)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["DEMO_SERVER", "demo_http_server", "stdio_entry"]

DEMO_SERVER = Path(__file__).with_name("demo_server.py")


def stdio_entry(**extra: Any) -> dict[str, Any]:
    """The mcp.json entry that starts the demo server over stdio."""
    return {"command": sys.executable, "args": [str(DEMO_SERVER)], **extra}


@contextmanager
def demo_http_server(port: int = 0, timeout_s: float = 60.0) -> Iterator[str]:
    """The demo server over streamable HTTP on loopback (a free port unless given); yields its URL."""
    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(DEMO_SERVER), "--http", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the demo HTTP server exited with {process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the demo HTTP server did not listen on port {port} within {timeout_s} s") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.kill()
        process.wait()
