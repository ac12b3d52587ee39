"""Pytest fixtures for the scripted model server.

Use with ``pytest_plugins = ["polaris_jupyter.testing.pytest_plugin"]`` in the top-level
``conftest.py`` (or import the fixtures into a test package's conftest).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest_asyncio

from polaris_jupyter.testing._server import ScriptedModelServer

__all__ = ["scripted_model", "scripted_model_factory"]


@pytest_asyncio.fixture
async def scripted_model() -> AsyncIterator[ScriptedModelServer]:
    """A started scripted server in the test's event loop; stopped after the test."""
    async with ScriptedModelServer() as server:
        yield server


@pytest_asyncio.fixture
async def scripted_model_factory() -> AsyncIterator[Callable[..., Any]]:
    """``await factory(**kwargs)`` starts more servers (e.g. two providers); all stopped at the end."""
    async with AsyncExitStack() as stack:

        async def make(*args: Any, **kwargs: Any) -> ScriptedModelServer:
            return await stack.enter_async_context(ScriptedModelServer(*args, **kwargs))

        yield make
