"""Paths between this kernel and the workspace: the engine takes workspace-relative paths (the
Jupyter server's root), a kernel works relative to its own folder (the notebook's).

With the server extension, the server tells its kernels where the workspace is
(``POLARIS_ROOT_DIR``); with the in-kernel engine the workspace *is* the kernel's working
directory, so both functions return their argument unchanged.

Example::

    polaris.trigger("run-notebook", {"path": workspace_path("reports/daily.ipynb")})
    nbformat.read(kernel_path(run["output"]["outputs"]["ipynb"]), as_version=4)
"""

from __future__ import annotations

import os

__all__ = ["kernel_path", "workspace_path"]


def _server_root() -> str | None:
    root = os.environ.get("POLARIS_ROOT_DIR")
    return os.path.realpath(root) if root and os.environ.get("POLARIS_URL") else None


def workspace_path(path: str) -> str:
    """``path`` as this kernel sees it (relative to its cwd, like ``open()``), relative to the
    workspace root. A path outside the workspace is returned unchanged (the server refuses it)."""
    root = _server_root()
    if root is None or os.path.isabs(path):
        return path
    absolute = os.path.realpath(os.path.join(os.getcwd(), path))
    if os.path.commonpath([absolute, root]) != root:
        return path
    return os.path.relpath(absolute, root).replace(os.sep, "/")


def kernel_path(workspace_rel: str) -> str:
    """A workspace-relative path (what runs report) as a path this kernel can open."""
    root = _server_root()
    return workspace_rel if root is None else os.path.join(root, workspace_rel)
