"""Workspace tools (DESIGN.md §5): files, code, search, context, terminal and notebooks.

``load_all()`` imports every tool module and registers its ``TOOLS`` into a registry
(``default_registry`` unless told otherwise). The imports happen inside the call so that
importing the package stays cheap and a missing or broken tool module fails loudly there,
where tests and the server notice it, rather than at ``import polaris_jupyter``.

    registry = load_all()
    chat_tools = registry                                  # process-message: all tools
    generation_tools = registry.select(names=FILE_TOOLS)   # project generation: file tools
"""

from __future__ import annotations

import importlib

from polaris_jupyter.tools.base import (
    Tool,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    default_registry,
)

__all__ = [
    "FILE_TOOLS",
    "TOOL_MODULES",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "default_registry",
    "load_all",
]

#: The tools project generation gets (the seed's file tools).
FILE_TOOLS: tuple[str, ...] = ("readFile", "writeFile", "deleteFile", "listFiles", "getProjectStructure")

#: Modules of ``polaris_jupyter.tools`` that each export ``TOOLS: list[Tool]``.
TOOL_MODULES: tuple[str, ...] = (
    "files", "code", "search", "context", "terminal", "notebook", "notebook_run", "notebook_proposals", "variables",
)


def load_all(registry: ToolRegistry = default_registry) -> ToolRegistry:
    """Register every workspace tool into ``registry`` and return it (idempotent)."""
    for module_name in TOOL_MODULES:
        module = importlib.import_module(f"polaris_jupyter.tools.{module_name}")
        tools = getattr(module, "TOOLS", None)
        if not isinstance(tools, list) or not all(isinstance(tool, Tool) for tool in tools):
            raise TypeError(f"polaris_jupyter.tools.{module_name}.TOOLS must be a list of Tool")
        for tool in tools:
            registry.register(tool)
    return registry
