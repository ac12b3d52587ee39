"""Fixtures for the agent tests: the scripted model server and a chain pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from polaris_jupyter.agent import ProviderChain, ProviderConfig
from polaris_jupyter.testing import ScriptedModelServer
from polaris_jupyter.testing.pytest_plugin import scripted_model, scripted_model_factory

__all__ = ["chain", "scripted_model", "scripted_model_factory"]


@pytest_asyncio.fixture
async def chain(scripted_model: ScriptedModelServer) -> AsyncIterator[ProviderChain]:
    """A one-provider chain on the scripted server (keyless, like a local server)."""
    async with ProviderChain([ProviderConfig("openai", scripted_model.base_url, "scripted-model")]) as c:
        yield c
