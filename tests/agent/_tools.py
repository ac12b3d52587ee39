"""Small tools for the loop tests: they record what happened with timestamps (never durations)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolRegistry, ToolResult

OBJ = {"type": "object", "properties": {"path": {"type": "string"}, "text": {"type": "string"}}}


@dataclass
class Journal:
    """Start/end times per call, in the order they happened."""

    spans: list[tuple[str, str, float, float]] = field(default_factory=list)  # (tool, path, start, end)
    arrived: int = 0
    both_here: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: list[str] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)


def make_registry(journal: Journal) -> ToolRegistry:
    async def echo(args: dict[str, Any], ctx: ToolContext) -> str:
        return f"echo:{args.get('text', '')}"

    async def write(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        start = time.perf_counter()
        for _ in range(3):  # yield a few times so an unordered twin could interleave
            await asyncio.sleep(0.01)
        journal.spans.append(("write", args["path"], start, time.perf_counter()))
        return ToolResult(text=f"wrote {args['path']}", summary=f"Wrote {args['path']}", diff="+x")

    async def rendezvous(args: dict[str, Any], ctx: ToolContext) -> str:
        """Succeeds only if the other rendezvous call runs at the same time (concurrency proof)."""
        journal.arrived += 1
        if journal.arrived >= 2:
            journal.both_here.set()
        try:
            await asyncio.wait_for(journal.both_here.wait(), 10)
        except asyncio.TimeoutError:
            raise ToolError("the other call never ran concurrently") from None
        return f"met at {args['path']}"

    async def fail(args: dict[str, Any], ctx: ToolContext) -> str:
        raise ToolError(f"cannot do that with {args.get('path')!r}: not allowed")

    async def boom(args: dict[str, Any], ctx: ToolContext) -> str:
        raise RuntimeError("kaboom")

    async def big(args: dict[str, Any], ctx: ToolContext) -> str:
        return "x" * 50_000

    async def hang(args: dict[str, Any], ctx: ToolContext) -> str:
        journal.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            journal.cancelled.append(str(args.get("path")))
            raise
        return "never"

    def tool(name: str, fn: Any, path_params: tuple[str, ...] = ("path",)) -> Tool:
        return Tool(name=name, description=f"test tool {name}", parameters=OBJ, fn=fn, path_params=path_params)

    return ToolRegistry([
        tool("echo", echo, ()), tool("write", write), tool("rendezvous", rendezvous), tool("fail", fail),
        tool("boom", boom), tool("big", big), tool("hang", hang),
    ])


def make_ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(root=tmp_path, run_id="run_test")
