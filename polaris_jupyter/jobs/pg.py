"""The scale-out backend: the engine on PostgreSQL + DBOS (needs the ``[postgres]`` extra).

Example::

    from polaris_jupyter.jobs.pg import PgEngine

    engine = PgEngine("postgresql://user@db/polaris", schema="polaris_ada")
    await engine.start()
"""

from __future__ import annotations

from polaris_jupyter.jobs._pg_engine import PgEngine
from polaris_jupyter.jobs._pg_events import PgEventBus
from polaris_jupyter.jobs._pg_store import PgStore
from polaris_jupyter.jobs.backends import default_schema

__all__ = ["PgEngine", "PgEventBus", "PgStore", "default_schema"]
