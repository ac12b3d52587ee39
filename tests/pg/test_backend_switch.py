"""``database_url`` switches the engine: empty → the embedded SQLite engine (unchanged); a
postgresql:// URL → PostgreSQL + DBOS in the user's schema; anything else is refused."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from polaris_jupyter.config import PolarisConfig
from polaris_jupyter.jobs import Engine, TaskRegistry
from polaris_jupyter.jobs.backends import default_schema, engine_for


def test_no_url_keeps_the_sqlite_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("POLARIS_DATABASE_URL", raising=False)
    engine = engine_for(PolarisConfig(db_path=f"{tmp_path}/x.db"), TaskRegistry())
    assert type(engine) is Engine and engine.store.dialect == "sqlite"


def test_url_from_env_selects_postgresql_in_the_users_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    from polaris_jupyter.jobs.pg import PgEngine

    monkeypatch.setenv("POLARIS_DATABASE_URL", "postgresql://ada@db.example:5432/team")
    monkeypatch.delenv("POLARIS_DATABASE_SCHEMA", raising=False)
    monkeypatch.setenv("POLARIS_EXECUTE_TASKS", "false")
    config = PolarisConfig()
    engine = engine_for(config, TaskRegistry())
    assert isinstance(engine, PgEngine)
    assert engine.schema == default_schema() and engine.schema.startswith("polaris_")
    assert engine.execute_tasks is False and engine.dispatcher.system_schema == f"{engine.schema}_dbos"
    monkeypatch.setenv("POLARIS_DATABASE_SCHEMA", "polaris_team_a")
    assert engine_for(PolarisConfig(), TaskRegistry()).schema == "polaris_team_a"  # type: ignore[attr-defined]


def test_bad_url_and_schema_are_refused() -> None:
    with pytest.raises(TraitError, match="postgresql://"):
        PolarisConfig(database_url="sqlite:///runs.db")
    assert default_schema("Ada.Lovelace-1") == "polaris_ada_lovelace_1"
    with pytest.raises(ValueError, match="not a valid PostgreSQL name"):
        engine_for(PolarisConfig(database_url="postgresql://x@h/db", database_schema="Robert'); DROP"), TaskRegistry())
