"""The PostgreSQL shape of the store: core tables, the parts' tables, migrations, SQL dialect.

The same data as the SQLite store (``_rows.py``: one row per run, attempts, logs, events,
key/value) plus what several processes sharing one database need:

- ``event_seq``: a one-row counter updated inside every transaction that writes events. Its row
  lock is held until commit, so event numbers are gap-free and commit order = number order: a
  reader that sees event N has every event below N (``_pg_store.py`` allocates them).
- ``idempotency``: one row per (task, key) naming the run that holds it; a trigger claims it in
  the transaction that inserts its run, so two processes never both create a run for one key.
- ``workers``: one heartbeat row per live executor (``_pg_engine.py``); a row gone stale marks
  an executor dead, whose DBOS workflows another worker then resumes.
- ``runs.executor_id`` / ``runs.dispatched_at``: who executes the run's current attempt, and
  when its DBOS workflow was enqueued; ``runs.resume_requested_at``: a wait point's resume
  that arrived before the attempt had suspended.

Parts that keep tables (schedules, chat, the edit journal, approvals, proposals) register
their one SQLite schema with the store; the PostgreSQL store renders it (``_pg_dialect.py``:
same name, versions and steps), so a part has one home for its tables on both databases, and a
step PostgreSQL cannot run fails at open with the part's name. Queries are rendered the same
way (:func:`~polaris_jupyter.jobs._pg_dialect.pg_sql`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from polaris_jupyter.jobs._models import FINAL_STATUSES
from polaris_jupyter.jobs._rows import _RUN_COLUMNS
from polaris_jupyter.jobs._schema import CORE_SCHEMA_NAME, AddColumn, Schema, SchemaError

__all__ = ["PG_CORE_SCHEMA", "migrate_pg", "pg_versions", "quote_ident"]

_REAL = {"created_at", "updated_at", "started_at", "finished_at", "delay_until", "ttl_s", "next_attempt_at",
         "idempotency_expires_at", "max_duration_s"}
_INT = {"attempt_count", "max_attempts"}


def _column_type(name: str) -> str:
    if name == "id":
        return "TEXT UNIQUE NOT NULL"
    if name in _REAL:
        return "DOUBLE PRECISION"
    return "INTEGER" if name in _INT else "TEXT"


_FINAL_LIST = ", ".join(f"'{s.value}'" for s in sorted(FINAL_STATUSES, key=lambda s: s.value))

_CORE_BASELINE: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS runs (
  num BIGSERIAL PRIMARY KEY,
  {", ".join(f"{c} {_column_type(c)}" for c in _RUN_COLUMNS)},
  executor_id TEXT, dispatched_at DOUBLE PRECISION
)""",
    "CREATE INDEX IF NOT EXISTS runs_status ON runs(status)",
    "CREATE INDEX IF NOT EXISTS runs_task ON runs(task_id, num)",
    "CREATE INDEX IF NOT EXISTS runs_idem ON runs(task_id, idempotency_key) WHERE idempotency_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS runs_conv ON runs(conversation_id) WHERE conversation_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS runs_finished ON runs(finished_at)",
    f"CREATE INDEX IF NOT EXISTS runs_unfinished ON runs(status, num) WHERE status NOT IN ({_FINAL_LIST})",
    """CREATE TABLE IF NOT EXISTS attempts (
  run_id TEXT NOT NULL, number INTEGER NOT NULL, status TEXT, started_at DOUBLE PRECISION,
  finished_at DOUBLE PRECISION, error TEXT, PRIMARY KEY (run_id, number)
)""",
    """CREATE TABLE IF NOT EXISTS logs (
  id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, attempt INTEGER, ts DOUBLE PRECISION,
  level TEXT, message TEXT, data TEXT
)""",
    "CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id, id)",
    """CREATE TABLE IF NOT EXISTS events (
  seq BIGINT PRIMARY KEY, run_id TEXT, run_seq INTEGER, conversation_id TEXT, type TEXT,
  data TEXT, ts DOUBLE PRECISION
)""",
    "CREATE INDEX IF NOT EXISTS events_run ON events(run_id, run_seq)",
    "CREATE INDEX IF NOT EXISTS events_conv ON events(conversation_id, seq) WHERE conversation_id IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS event_seq (one INTEGER PRIMARY KEY CHECK (one = 1), seq BIGINT NOT NULL)",
    "INSERT INTO event_seq (one, seq) VALUES (1, 0) ON CONFLICT (one) DO NOTHING",
    """CREATE TABLE IF NOT EXISTS kv (
  ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT, updated_at DOUBLE PRECISION, PRIMARY KEY (ns, key)
)""",
    """CREATE TABLE IF NOT EXISTS idempotency (
  task_id TEXT NOT NULL, key TEXT NOT NULL, run_id TEXT NOT NULL, expires_at DOUBLE PRECISION,
  PRIMARY KEY (task_id, key)
)""",
    """CREATE TABLE IF NOT EXISTS workers (
  executor_id TEXT PRIMARY KEY, host TEXT, pid INTEGER, tasks TEXT, started_at DOUBLE PRECISION,
  last_seen DOUBLE PRECISION NOT NULL
)""",
)

#: SQLite functions the shared read queries (``_queries.py``) use, defined in the schema so
#: those queries run unchanged: scalar ``max(a, b)``, ``sum(boolean)``, ``json_each(text)`` over
#: a JSON array, ``json_valid(text)`` and ``json_extract(text, '$.a.b')`` for numbers.
_SQLITE_SHIMS: tuple[str, ...] = (
    "CREATE OR REPLACE FUNCTION max(a anyelement, b anyelement) RETURNS anyelement "
    "LANGUAGE sql IMMUTABLE AS 'SELECT GREATEST(a, b)'",
    "CREATE OR REPLACE FUNCTION polaris_add_bool(acc bigint, v boolean) RETURNS bigint "
    "LANGUAGE sql IMMUTABLE STRICT AS 'SELECT acc + CASE WHEN v THEN 1 ELSE 0 END'",
    "CREATE OR REPLACE AGGREGATE sum(boolean) (SFUNC = polaris_add_bool, STYPE = bigint, INITCOND = '0')",
    "CREATE OR REPLACE FUNCTION json_each(t text) RETURNS TABLE(value text) LANGUAGE sql IMMUTABLE "
    "AS 'SELECT json_array_elements_text(t::json)'",
    "CREATE OR REPLACE FUNCTION json_valid(t text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS "
    "$$ BEGIN PERFORM t::json; RETURN t IS NOT NULL; EXCEPTION WHEN others THEN RETURN false; END $$",
    "CREATE OR REPLACE FUNCTION json_extract(t text, path text) RETURNS double precision LANGUAGE sql IMMUTABLE AS "
    "$$ SELECT CASE WHEN json_typeof(v) = 'number' THEN (v #>> '{}')::double precision END "
    "FROM (SELECT (t::json) #> string_to_array(substr(path, 3), '.') AS v) AS x $$",
)

#: The store's own tables on PostgreSQL; its version is kept in ``schema_versions`` under
#: ``"store"`` (PostgreSQL has no ``user_version``).
#: A resume that reached a run still executing towards its wait point (``_pg_transitions.py``);
#: not one of the run's columns, so the run's own upsert never overwrites it.
_RESUME_REQUESTS: tuple[AddColumn, ...] = (AddColumn("runs", "resume_requested_at", "DOUBLE PRECISION"),)
PG_CORE_SCHEMA = Schema(CORE_SCHEMA_NAME, migrations=(_CORE_BASELINE, _SQLITE_SHIMS, _RESUME_REQUESTS),
                        dialect="postgresql")

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def quote_ident(name: str) -> str:
    """A schema or channel name, checked (lower-case letters, digits, ``_``; at most 63)."""
    if not _IDENT.match(name):
        raise ValueError(f"{name!r} is not a valid PostgreSQL name here: use lower-case letters, digits and _")
    return f'"{name}"'


def _apply_step(cur: Any, step: str | AddColumn) -> None:
    if isinstance(step, AddColumn):
        cur.execute(f"ALTER TABLE {step.table} ADD COLUMN IF NOT EXISTS {step.column} {step.decl}")
    else:
        cur.execute(step)


def migrate_pg(conn: Any, schema_name: str, parts: Sequence[Schema], *, where: str) -> dict[str, int]:
    """Create the schema ``schema_name`` if missing and bring the core and ``parts`` up to date
    in ONE transaction on the psycopg connection ``conn``. An advisory lock keyed by the schema
    makes two processes opening at once migrate one after the other."""
    for schema in parts:
        if schema.dialect != "postgresql":
            raise ValueError(f"schema {schema.name!r} is for {schema.dialect}, not postgresql")
    applied: dict[str, int] = {}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"polaris-migrate:{schema_name}",))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema_name)}")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        for schema in (PG_CORE_SCHEMA, *parts):
            row = conn.execute("SELECT version FROM schema_versions WHERE name = %s", (schema.name,)).fetchone()
            current = 0 if row is None else int(row["version"])
            if current > schema.version:
                raise SchemaError(
                    f"{where} has schema {schema.name!r} at version {current}, newer than this polaris-jupyter "
                    f"knows (version {schema.version}); upgrade polaris-jupyter or use another database schema"
                )
            for number in range(current, schema.version):
                for step in schema.migrations[number]:
                    try:
                        _apply_step(conn, step)
                    except Exception as exc:
                        raise SchemaError(
                            f"{where}: migrating schema {schema.name!r} to version {number + 1} failed at {step!r}: {exc}"
                        ) from exc
            if current < schema.version:
                conn.execute(
                    "INSERT INTO schema_versions (name, version) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version",
                    (schema.name, schema.version),
                )
            applied[schema.name] = schema.version
    return applied


def pg_versions(conn: Any) -> dict[str, int]:
    """``{name: version}`` recorded in the schema (the core under ``"store"``)."""
    return {str(r["name"]): int(r["version"]) for r in conn.execute("SELECT name, version FROM schema_versions")}
