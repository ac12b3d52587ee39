"""PostgreSQL test fixtures: ONE throwaway cluster per test session, a fresh schema per test.

The cluster is initdb + pg_ctl in a temp dir (``polaris_jupyter.testing.pg_cluster``), stopped
when the session ends. Without PostgreSQL installed the tests are skipped with the reason, and
under CI (where ``.ci/test.sh`` installs it) such a skip fails (tests/conftest.py).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.jobs import Clock, RetryPolicy, TaskRegistry
from polaris_jupyter.testing.pg_cluster import PgCluster, PgUnavailable
from tests.pg.processes import Workers

EngineFactory = Callable[..., Awaitable[Any]]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        cluster = PgCluster.start()
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL is not installed ({exc}); .ci/test.sh installs the Debian package")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    return pg_cluster.url


@pytest.fixture
def pg_schema() -> str:
    """A schema of this test's own, so tests never see each other's runs."""
    return f"t_{secrets.token_hex(4)}"


@pytest.fixture
def registry() -> TaskRegistry:
    return TaskRegistry()


@pytest_asyncio.fixture
async def make_engine(pg_url: str, pg_schema: str, registry: TaskRegistry) -> AsyncIterator[EngineFactory]:
    """The engine suite's factory (tests/jobs/conftest.py), on PostgreSQL + DBOS."""
    from polaris_jupyter.jobs.pg import PgEngine

    engines: list[Any] = []

    async def factory(*, clock: Clock | None = None, pool_size: int = 8, **kw: Any) -> Any:
        kw.pop("db", None)
        engine = PgEngine(
            pg_url,
            registry,
            schema=pg_schema,
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


@pytest.fixture
def workers(pg_url: str, pg_schema: str, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes on the test's schema (started by the test), stopped at its end."""
    markers = tmp_path / "markers"
    markers.mkdir()
    group = Workers(pg_url, pg_schema, markers)
    yield group
    group.stop()


def client_engine(pg_url: str, pg_schema: str, task_ids: tuple[str, ...], **kwargs: Any) -> Any:
    """An engine that only triggers (``execute_tasks=False``): it knows the workers' task ids,
    and a stub that would fail loudly if this process ever executed one. An async context."""
    from polaris_jupyter.jobs import RunContext, task
    from polaris_jupyter.jobs.pg import PgEngine

    registry = TaskRegistry()
    for task_id in task_ids:

        async def never(payload: Any, ctx: RunContext) -> None:
            raise AssertionError("the client process must not execute tasks")

        task(id=task_id, registry=registry)(never)
    return PgEngine(pg_url, registry, schema=pg_schema, execute_tasks=False, role="client", **kwargs)
