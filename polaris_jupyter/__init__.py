"""polaris-jupyter: a Jupyter-native AI coding assistant whose every AI operation is a durable job."""

from __future__ import annotations

from typing import Any

from polaris_jupyter._version import __version__

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from polaris_jupyter.server.app import PolarisApp

    return [{"module": "polaris_jupyter.server.app", "app": PolarisApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "polaris-jupyter"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext polaris_jupyter``: registers the ``%polaris`` magics (imported lazily)."""
    from polaris_jupyter.kernel.magics import register_magics

    register_magics(ipython)


def unload_ipython_extension(ipython: Any) -> None:  # pragma: no cover - nothing to undo
    return None
