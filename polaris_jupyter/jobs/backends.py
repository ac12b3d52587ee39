"""Which engine a configuration asks for: the embedded SQLite one, or PostgreSQL + DBOS.

``engine_for(config)`` is the one switch: with ``database_url`` (env ``POLARIS_DATABASE_URL``)
it builds a :class:`~polaris_jupyter.jobs.pg.PgEngine` on that database, in the user's schema
(``database_schema``), executing runs here only when ``execute_tasks``; without it, the
embedded :class:`~polaris_jupyter.jobs.Engine` on ``db_path``, exactly as before. This module
imports nothing of PostgreSQL or DBOS until a URL asks for them.
"""

from __future__ import annotations

import getpass
import re
from typing import TYPE_CHECKING, Any

from polaris_jupyter.jobs._clock import Clock
from polaris_jupyter.jobs._engine import Engine
from polaris_jupyter.jobs._registry import TaskRegistry

if TYPE_CHECKING:
    from polaris_jupyter.config import PolarisConfig

__all__ = ["default_schema", "engine_for"]


def default_schema(user: str | None = None) -> str:
    """``polaris_<user>``: the PostgreSQL schema of one user's runs on a shared server."""
    name = re.sub(r"[^a-z0-9_]", "_", (user or getpass.getuser()).lower())
    return f"polaris_{name}"[:50]


def engine_for(config: PolarisConfig, registry: TaskRegistry, *, clock: Clock | None = None, **kw: Any) -> Engine:
    """The engine ``config`` describes (see the module docstring)."""
    if config.database_url:
        try:
            from polaris_jupyter.jobs.pg import PgEngine
        except ImportError as exc:
            raise RuntimeError(
                "database_url is set but the PostgreSQL backend is not installed: pip install 'polaris-jupyter[postgres]'"
            ) from exc
        return PgEngine(
            config.database_url, registry, schema=config.database_schema, execute_tasks=config.execute_tasks,
            pool_size=config.pool_size, clock=clock, default_retry=config.retry_policy(), role="server", **kw,
        )
    return Engine(config.db_path, registry, pool_size=config.pool_size, clock=clock,
                  default_retry=config.retry_policy(), **kw)
