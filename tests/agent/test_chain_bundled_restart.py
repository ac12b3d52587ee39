"""The chain follows the bundled model server across a restart: when its process died, the next
call starts it again (on a new port) and the client is rebuilt for that port."""

from __future__ import annotations

from typing import Any

import pytest

from polaris_jupyter.agent import ProviderChain, ProviderConfig, local_model
from polaris_jupyter.testing import Response, ScriptedModelServer


class FakeLocalServer:
    """Stands in for LocalModelServer: each start hands out the next scripted server's URL."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.starts = 0
        self.running = False
        self.model_name = "fake-local"
        self.capabilities = None

    async def ensure_started(self) -> str:
        if not self.running:
            self.starts += 1
            self.running = True
        return self.urls[self.starts - 1]


async def reply(chain: ProviderChain) -> str:
    stream = await chain.open_stream(messages=[{"role": "user", "content": "hi"}])
    text = ""
    async with stream:
        async for delta in stream:
            text += delta.content or ""
    return text


@pytest.mark.asyncio
async def test_dead_bundled_server_is_restarted_and_the_client_rebuilt(monkeypatch: pytest.MonkeyPatch) -> None:
    async with ScriptedModelServer([Response(text="first")]) as one, ScriptedModelServer([Response(text="second")]) as two:
        fake = FakeLocalServer([one.base_url, two.base_url])
        monkeypatch.setattr(local_model, "get_local_model_server", lambda: fake)
        chain = ProviderChain([ProviderConfig(name="bundled", base_url="", model="", bundled=True)])
        try:
            assert await reply(chain) == "first"
            assert await reply_again_ok(chain, one)
            fake.running = False  # the llama.cpp process died
            assert await reply(chain) == "second"
            assert fake.starts == 2 and len(two.requests) == 1
        finally:
            await chain.aclose()


async def reply_again_ok(chain: ProviderChain, server: Any) -> bool:
    """While the server lives, the same client keeps being used (no restart per call)."""
    server.enqueue(Response(text="again"))
    return await reply(chain) == "again"
