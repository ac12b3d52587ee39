"""A chat runtime for the turn tests: the real engine and chat service on a temp SQLite file,
a fake clock (message timestamps and retry delays move only when a test advances it), and the
scripted model server reached through the real ``openai`` client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.chat.service import ChatService
from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import Event, EventFilter, FakeClock, TaskRegistry
from polaris_jupyter.runtime import PolarisRuntime
from polaris_jupyter.testing import ScriptedModelServer
from polaris_jupyter.testing.pytest_plugin import scripted_model
from tests.helpers import async_wait_until

__all__ = ["ChatEnv", "chat_env", "scripted_model", "until"]

#: Besides tests.helpers.MODEL_ENV (cleared for every test): no local server as a fallback.
_LOCAL_ENV = ("POLARIS_LOCAL_BASE_URL", "POLARIS_LOCAL_MODEL")


async def until(predicate: Callable[[], Any], timeout_s: float = 10.0) -> None:
    """Wait for observable state (``tests.helpers.async_wait_until`` at this folder's pace)."""
    await async_wait_until(predicate, timeout_s=timeout_s, poll_s=0.005)


@dataclass
class ChatEnv:
    runtime: PolarisRuntime
    chat: ChatService
    clock: FakeClock
    model: ScriptedModelServer
    events: list[Event] = field(default_factory=list)

    def of(self, type: str, message_id: str | None = None) -> list[dict[str, Any]]:
        """The data of the events of ``type`` seen so far (for one message, if given)."""
        return [
            e.data
            for e in self.events
            if e.type == type
            and (
                message_id is None
                or e.data.get("messageId", e.data.get("message", {}).get("id")) == message_id
            )
        ]

    def final_statuses(self, message_id: str) -> list[str]:
        return [d["status"] for d in self.of("message.status", message_id) if d["final"]]

    async def settle(self, run_id: str, timeout_s: float = 20.0) -> None:
        """Wait until the run is final and its events have reached the collector."""
        await self.runtime.engine.wait_for(run_id, timeout_s=timeout_s)
        await self.runtime.engine.store.flush()
        last = self.runtime.engine.bus.last_seq
        await until(lambda: bool(self.events) and self.events[-1].seq >= last)


@pytest_asyncio.fixture
async def chat_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripted_model: ScriptedModelServer
) -> AsyncIterator[ChatEnv]:
    monkeypatch.setenv("OPENAI_BASE_URL", scripted_model.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_MODEL", "scripted-1")
    monkeypatch.setenv("POLARIS_PROVIDER", "openai")
    for name in _LOCAL_ENV:
        monkeypatch.delenv(name, raising=False)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    clock = FakeClock()
    config = PolarisConfig(db_path=str(tmp_path / "polaris.db"), stream_window_ms=20, max_steps=4)
    runtime = PolarisRuntime(config, root_dir=workspace, registry=TaskRegistry(), clock=clock)
    await runtime.start()
    env = ChatEnv(runtime, runtime.chat, clock, scripted_model)

    async def collect() -> None:
        async for event in runtime.engine.bus.subscribe(EventFilter(), since=0):
            env.events.append(event)

    collector = asyncio.create_task(collect())
    try:
        yield env
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        await runtime.stop()
