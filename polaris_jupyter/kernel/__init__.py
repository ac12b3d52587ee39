"""Polaris inside a kernel: the client, the ``%polaris`` magics and the notebook widgets.

Example::

    %load_ext polaris_jupyter
    %polaris ask what does this project do?

    from polaris_jupyter.kernel import get_client
    polaris = get_client()
    polaris.runs(limit=5)
"""

from __future__ import annotations

from typing import Any

from polaris_jupyter.kernel._base import PolarisError
from polaris_jupyter.kernel.client import Polaris, RunRef, connect, disconnect, get_client

__all__ = ["ChatPanel", "GenerationProgress", "Polaris", "PolarisError", "RunRef", "connect", "disconnect", "get_client"]


def __getattr__(name: str) -> Any:
    if name in ("ChatPanel", "GenerationProgress"):  # widgets import anywidget: only on demand
        from polaris_jupyter.kernel import widgets

        return getattr(widgets, name)
    raise AttributeError(name)
