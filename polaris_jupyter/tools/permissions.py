"""What each tool may do, and what a conversation's permission mode lets happen without asking.

Every tool is classified once, here: it only *reads* the workspace (or a kernel's state), it
*edits* files or notebooks, or it *executes* something (a command, a notebook cell) whose
effects cannot be foreseen. A tool may state its own class (``Tool.access``, e.g. a tool of an
MCP server that says it is read-only); otherwise this table decides, and a tool in neither is
treated as ``execute``, so an unknown tool never runs without the user's say.

The modes (DESIGN §10), per conversation, default ``PolarisConfig.permission_mode``:

======== ============================ ===========================
mode     asks before                  offers the model
======== ============================ ===========================
ask      edits and executions         every tool
auto-edit executions                  every tool
auto     nothing                      every tool
plan     (nothing to ask)             read tools only
======== ============================ ===========================

In ``plan`` the write and execute tools are not sent to the model at all, so it cannot call
them (and a call it makes up anyway is an unknown tool).
"""

from __future__ import annotations

import enum
from typing import Any

from polaris_jupyter.errors import InvalidInput
from polaris_jupyter.tools.base import Tool, ToolRegistry

__all__ = [
    "BUILTIN_ACCESS",
    "DEFAULT_MODE",
    "PermissionMode",
    "ToolAccess",
    "needs_approval",
    "parse_mode",
    "tool_access",
    "tools_for_mode",
]


class ToolAccess(str, enum.Enum):
    READ = "read"
    EDIT = "edit"
    EXECUTE = "execute"


class PermissionMode(str, enum.Enum):
    ASK = "ask"
    AUTO_EDIT = "auto-edit"
    AUTO = "auto"
    PLAN = "plan"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    PermissionMode.ASK: "asks before every edit and command",
    PermissionMode.AUTO_EDIT: "edits apply, commands ask",
    PermissionMode.AUTO: "nothing asks",
    PermissionMode.PLAN: "read-only: no edit or command tools are offered",
}
DEFAULT_MODE = PermissionMode.ASK

_R, _E, _X = ToolAccess.READ, ToolAccess.EDIT, ToolAccess.EXECUTE
#: The built-in tools (``polaris_jupyter.tools.TOOL_MODULES``); a test pins that every one is here.
BUILTIN_ACCESS: dict[str, ToolAccess] = {
    "readFile": _R, "listFiles": _R, "getProjectStructure": _R,
    "findSymbol": _R, "getReferences": _R, "goToDefinition": _R, "getDiagnostics": _R,
    "searchFiles": _R, "searchCodebase": _R, "findFilesByPattern": _R, "getRelevantFiles": _R,
    "readNotebook": _R, "inspectVariables": _R,
    "proposeCellEdit": _R,  # writes nothing: the user applies or discards the proposal
    "writeFile": _E, "deleteFile": _E,
    "editNotebookCell": _E, "insertNotebookCell": _E, "deleteNotebookCell": _E, "moveNotebookCell": _E,
    "executeCommand": _X, "runNotebookCell": _X,
}

_ASKS: dict[PermissionMode, frozenset[ToolAccess]] = {
    PermissionMode.ASK: frozenset({_E, _X}),
    PermissionMode.AUTO_EDIT: frozenset({_X}),
    PermissionMode.AUTO: frozenset(),
    PermissionMode.PLAN: frozenset({_E, _X}),  # never offered; a call that comes anyway asks
}


def parse_mode(value: Any) -> PermissionMode:
    """A mode from its wire name; :class:`InvalidInput` naming the modes otherwise."""
    try:
        return PermissionMode(value)
    except ValueError:
        names = ", ".join(m.value for m in PermissionMode)
        raise InvalidInput(f"unknown permission mode {value!r}; use one of {names}") from None


def tool_access(tool: Tool) -> ToolAccess:
    """The tool's own ``access`` if it states one, else the table's, else ``execute``."""
    if tool.access is not None:
        return ToolAccess(tool.access)
    return BUILTIN_ACCESS.get(tool.name, ToolAccess.EXECUTE)


def needs_approval(tool: Tool, mode: PermissionMode) -> bool:
    return tool_access(tool) in _ASKS[mode]


def tools_for_mode(registry: ToolRegistry, mode: PermissionMode) -> ToolRegistry:
    """The tools offered to the model in ``mode``: all of them, or the read tools in ``plan``."""
    if mode is not PermissionMode.PLAN:
        return registry
    names = [name for name in registry.names() if tool_access(registry.get(name)) is ToolAccess.READ]  # type: ignore[arg-type]
    return registry.select(names=names)
