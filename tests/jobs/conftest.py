"""Factory fixtures for engine tests: a fresh registry, a temp SQLite file, engines stopped after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.jobs import Clock, Engine, RetryPolicy, TaskRegistry

EngineFactory = Callable[..., Awaitable[Engine]]


@pytest.fixture
def registry() -> TaskRegistry:
    return TaskRegistry()


@pytest_asyncio.fixture
async def make_engine(tmp_path: Path, registry: TaskRegistry) -> AsyncIterator[EngineFactory]:
    engines: list[Engine] = []

    async def factory(
        *, clock: Clock | None = None, pool_size: int = 8, db: Path | None = None, **kw: Any
    ) -> Engine:
        engine = Engine(
            db or tmp_path / "runs.db",
            registry,
            pool_size=pool_size,
            clock=clock,
            default_retry=kw.pop("default_retry", RetryPolicy(min_timeout_s=0.01, max_timeout_s=0.05)),
            **kw,
        )
        await engine.start()
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        await engine.stop()
