"""The tool contract shared by the agent loop, project generation and every workspace tool.

A tool is data (name, description, JSON-Schema parameters) plus one async function. The agent
loop only ever sees this module: it turns a registry into the ``tools`` array of a
chat-completions request, runs the calls the model makes, and hands the result text back.
A tool signals a problem the model can fix by raising :class:`ToolError`; the loop returns the
message to the model as text instead of failing the run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from polaris_jupyter.tools.notebook_kernel import NotebookKernels
    from polaris_jupyter.tools.notebook_proposals import ProposalStore

__all__ = [
    "MAX_TOOL_OUTPUT_CHARS",
    "EditRecorder",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "cap_text",
    "default_registry",
]

#: Hard cap on the text a tool hands back to the model (the loop enforces it again).
MAX_TOOL_OUTPUT_CHARS = 20_000

logger = logging.getLogger("polaris_jupyter.tools")


class ToolError(Exception):
    """A problem the model caused and can fix (bad path, bad arguments, command refused).

    The message is shown to the model verbatim, so it must say what was wrong and what is allowed.
    """


@dataclass
class ToolResult:
    """What a tool returns: ``text`` for the model, the rest for the tool-call card in the UI."""

    text: str
    summary: str = ""
    truncated: bool = False
    diff: str | None = None
    data: dict[str, Any] | None = None


class EditRecorder(Protocol):
    """Keeps the pre-image of every file a run changes, so the run's edits can be reverted."""

    async def record(
        self, run_id: str, rel_path: str, before: bytes | None, after: bytes | None, diff: str
    ) -> None: ...

    async def recent_paths(self, limit: int = 50) -> list[str]: ...


@dataclass
class ToolContext:
    """Everything a tool may touch: the workspace root, the run it acts for, the edit journal,
    the notebooks' kernels and where proposed cell edits are kept (None where there are none)."""

    root: Path
    run_id: str | None = None
    edits: EditRecorder | None = None
    env: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    log: logging.Logger = logger
    kernels: NotebookKernels | None = None
    proposals: ProposalStore | None = None
    #: The id of the tool call being run (set per call by the tool runner).
    call_id: str | None = None


ToolFn = Callable[[dict[str, Any], ToolContext], Awaitable["ToolResult | str"]]


@dataclass(frozen=True)
class Tool:
    """One tool. ``path_params`` name the arguments that hold workspace paths: the loop runs
    calls that touch the same path in order and the rest concurrently."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFn
    group: str = "misc"
    path_params: tuple[str, ...] = ("path",)
    #: "read", "edit" or "execute"; None: classified by ``tools.permissions`` (unknown → execute).
    access: str | None = None

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ToolRegistry:
    """Tools by name. ``select`` picks a subset (e.g. file tools for project generation)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> Tool:
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def select(self, names: Iterable[str] | None = None, groups: Iterable[str] | None = None) -> ToolRegistry:
        wanted = set(names or ())
        wanted_groups = set(groups or ())
        return ToolRegistry(
            t for t in self._tools.values() if t.name in wanted or t.group in wanted_groups
        )

    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.openai_schema() for t in self._tools.values()]


def cap_text(text: str, limit_chars: int = MAX_TOOL_OUTPUT_CHARS) -> tuple[str, bool]:
    """Cut ``text`` to ``limit_chars`` and say so at the end, so the model knows it saw a part."""
    if len(text) <= limit_chars:
        return text, False
    dropped = len(text) - limit_chars
    return text[:limit_chars] + f"\n… [truncated: {dropped} more characters not shown]", True


#: The registry the workspace tools register into (filled by ``polaris_jupyter.tools.load_all``).
default_registry = ToolRegistry()
