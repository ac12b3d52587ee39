"""Running the tool calls of one model step.

Calls that touch the same workspace path (a tool's ``path_params``; a folder counts as touching
everything below it) run in the order the model gave them; all others run concurrently. Every
failure becomes text for the model (invalid JSON, unknown tool, :class:`ToolError`, an
unexpected exception, which is also logged), and every result is capped in size.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import posixpath
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from polaris_jupyter.agent.events import LoopEvent, ToolCallFinished, ToolCallRecord, ToolCallStarted
from polaris_jupyter.tools.base import Tool, ToolContext, ToolError, ToolRegistry, ToolResult, cap_text

__all__ = ["PlannedCall", "paths_conflict", "plan_call", "run_tool_calls"]

Emit = Callable[[LoopEvent], Awaitable[None]]

_SUMMARY_CHARS = 200


@dataclass
class PlannedCall:
    """A tool call as parsed from the model: ``problem`` is set when it cannot run at all."""

    call_id: str
    name: str
    raw_arguments: str
    arguments: dict[str, Any]
    tool: Tool | None
    problem: str | None = None

    def transcript_arguments(self) -> str:
        """Arguments as sent back to the model: raw when valid JSON, else ``{}`` (strict servers parse them)."""
        return self.raw_arguments if _is_json(self.raw_arguments) else "{}"

    def paths(self) -> set[str]:
        if self.tool is None or self.problem is not None:
            return set()
        out: set[str] = set()
        for param in self.tool.path_params:
            value = self.arguments.get(param)
            if isinstance(value, str):
                out.add(_norm(value))
        return out


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _norm(path: str) -> str:
    norm = posixpath.normpath(path.replace("\\", "/").strip() or ".")
    return norm.lstrip("/") or "."


def paths_conflict(a: set[str], b: set[str]) -> bool:
    """Same path, or one is a folder containing the other (``.`` contains everything)."""
    for x in a:
        for y in b:
            if x == y or x == "." or y == "." or y.startswith(x + "/") or x.startswith(y + "/"):
                return True
    return False


def plan_call(call_id: str, name: str, raw_arguments: str, registry: ToolRegistry) -> PlannedCall:
    """Parse the model's call; an unknown tool or bad arguments give a call with ``problem`` text."""
    tool = registry.get(name)
    raw = raw_arguments or ""
    if tool is None:
        available = ", ".join(registry.names()) or "none"
        return PlannedCall(call_id, name, raw, {}, None,
                           f"Error: unknown tool {name!r}. Available tools: {available}.")
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        shown = raw if len(raw) <= 300 else raw[:300] + "…"
        return PlannedCall(call_id, name, raw, {}, tool,
                           f"Error: the arguments of {name} are not valid JSON ({exc}). Received: {shown!r}. "
                           "Call the tool again with a JSON object that matches its parameters.")
    if not isinstance(parsed, dict):
        return PlannedCall(call_id, name, raw, {}, tool,
                           f"Error: the arguments of {name} must be a JSON object, got "
                           f"{type(parsed).__name__}.")
    return PlannedCall(call_id, name, raw, parsed, tool)


def _summary(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= _SUMMARY_CHARS else line[: _SUMMARY_CHARS - 1] + "…"


async def _execute(call: PlannedCall, ctx: ToolContext, max_chars: int) -> ToolCallFinished:
    started = time.perf_counter()
    ok, error, diff, truncated, summary = False, None, None, False, ""
    if call.problem is not None or call.tool is None:
        text = call.problem or f"Error: unknown tool {call.name!r}."
        error = text.removeprefix("Error: ")
    else:
        try:
            out = await call.tool.fn(call.arguments, dataclasses.replace(ctx, call_id=call.call_id))
            if isinstance(out, ToolResult):
                result = out
            elif isinstance(out, str):
                result = ToolResult(text=out)
            else:
                result = ToolResult(text=json.dumps(out, default=str, ensure_ascii=False))
            ok, text, diff, truncated, summary = True, result.text, result.diff, result.truncated, result.summary
        except ToolError as exc:
            error = str(exc) or type(exc).__name__
            text = f"Error: {error}"
        except Exception as exc:  # a bug in a tool must not end the run: the model gets told
            ctx.log.exception("tool %s failed (call %s, run %s)", call.name, call.call_id, ctx.run_id)
            error = f"{type(exc).__name__}: {exc}"
            text = f"Error: the tool {call.name} failed unexpectedly ({error})."
    text, cut = cap_text(text, max_chars)
    return ToolCallFinished(
        call_id=call.call_id, name=call.name, ok=ok, summary=summary or _summary(text), result_text=text,
        duration_ms=(time.perf_counter() - started) * 1000.0, error=error, diff=diff,
        truncated=truncated or cut,
    )


async def run_tool_calls(calls: list[PlannedCall], ctx: ToolContext, emit: Emit, *, step: int,
                         max_output_chars: int) -> list[ToolCallRecord]:
    """Run one step's calls (path-ordered, otherwise concurrent); results in the model's order."""
    for call in calls:
        await emit(ToolCallStarted(call.call_id, call.name, dict(call.arguments)))

    async def run(call: PlannedCall, before: list[asyncio.Task[ToolCallFinished]]) -> ToolCallFinished:
        if before:
            await asyncio.wait(before)
        finished = await _execute(call, ctx, max_output_chars)
        await emit(finished)
        return finished

    tasks: list[asyncio.Task[ToolCallFinished]] = []
    for i, call in enumerate(calls):
        mine = call.paths()
        before = [tasks[j] for j in range(i) if mine and paths_conflict(mine, calls[j].paths())]
        tasks.append(asyncio.create_task(run(call, before), name=f"tool:{call.name}:{call.call_id}"))
    try:
        results = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [
        ToolCallRecord(step, r.call_id, r.name, dict(c.arguments), r.ok, r.summary, r.result_text,
                       r.duration_ms, r.error, r.diff, r.truncated)
        for c, r in zip(calls, results, strict=True)
    ]
