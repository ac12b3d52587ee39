"""Versioned schemas, registered with the store and migrated by it in one place.

Every part that keeps tables in the store's database (the engine's core, schedules, chat, the
edit journal) describes them once as a :class:`Schema`: a name and an ordered tuple of
migrations, where migration ``k`` (0-based) takes the part from version ``k`` to ``k + 1``.
The version is therefore ``len(migrations)``, never written twice. A part registers its schema
with the store (``store.register(schema)`` before the store opens, or ``await
store.ensure_schema(schema)`` once it is open); the store applies what is missing on its writer
thread, one transaction per open, so a half-migrated database cannot be left behind.

Where versions are kept (SQLite):

- the store's own core (runs, attempts, logs, events, key/value) in ``PRAGMA user_version``,
  the integer SQLite keeps in the file header for exactly this;
- every registered part in the table ``schema_versions(name, version)``, which the core's first
  migration creates. One integer cannot version several parts that change independently.

Databases written before versions existed have ``user_version = 0`` and no
``schema_versions`` row. Version 1 of each shipped schema is therefore a *baseline*: the shape
that unversioned code created, written so that it also brings any earlier unversioned state to
that shape without losing rows (``CREATE ... IF NOT EXISTS``, and :class:`AddColumn` for columns
added later). Later changes are new migrations appended to the tuple; a migration already
released is never edited. A database whose version is newer than the code refuses to open
(:class:`SchemaError`) rather than being written by code that does not know its shape.

Dialects: a schema names its dialect (``"sqlite"`` for every schema today) and its steps are
plain SQL for that dialect, one statement per string, or an :class:`AddColumn`, which each
store renders itself (SQLite checks ``PRAGMA table_info`` first; PostgreSQL has ``ADD COLUMN
IF NOT EXISTS``). A PostgreSQL store will apply the parts' ``dialect="postgresql"`` schemas
through the same ``register``/``ensure_schema`` calls, with the versions in its own
``schema_versions`` table: this module is the seam that backend plugs into.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CORE_SCHEMA_NAME", "AddColumn", "Schema", "SchemaError", "Step", "migrate_sqlite", "sqlite_versions"]

#: Name of the store's own core schema (versioned with ``PRAGMA user_version``).
CORE_SCHEMA_NAME = "store"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIALECTS = frozenset({"sqlite", "postgresql"})


class SchemaError(RuntimeError):
    """A schema cannot be applied: the database is newer than the code, or a step failed."""


@dataclass(frozen=True)
class AddColumn:
    """Add ``column`` (of type ``decl``, e.g. ``"TEXT"``) to ``table`` unless it is there.

    Idempotent on purpose: a database from before versions existed may or may not have the
    column, and the baseline migration has to accept both."""

    table: str
    column: str
    decl: str

    def __post_init__(self) -> None:
        for label, value in (("table", self.table), ("column", self.column)):
            if not _IDENTIFIER.match(value):
                raise ValueError(f"AddColumn {label} must be a plain identifier, not {value!r}")
        if not self.decl.strip() or ";" in self.decl:
            raise ValueError(f"AddColumn decl must be one column type, not {self.decl!r}")


#: One step of a migration: a single SQL statement, or a column added when missing.
Step = str | AddColumn


@dataclass(frozen=True)
class Schema:
    """A part's tables: ``migrations[k]`` takes the part from version ``k`` to ``k + 1``.

    Example::

        EDITS = Schema("edits", migrations=(
            ("CREATE TABLE IF NOT EXISTS file_edits (id INTEGER PRIMARY KEY, path TEXT)",),
            (AddColumn("file_edits", "reverted_at", "TEXT"),),
        ))
        store.register(EDITS)   # EDITS.version == 2
    """

    name: str
    migrations: tuple[tuple[Step, ...], ...]
    dialect: str = "sqlite"

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.name):
            raise ValueError(f"schema name must be a plain identifier, not {self.name!r}")
        if self.dialect not in _DIALECTS:
            raise ValueError(f"schema {self.name!r}: unknown dialect {self.dialect!r} (one of {sorted(_DIALECTS)})")
        if not self.migrations:
            raise ValueError(f"schema {self.name!r} needs at least one migration")
        for number, steps in enumerate(self.migrations, start=1):
            if not isinstance(steps, tuple) or not steps:
                raise ValueError(f"schema {self.name!r}: migration {number} must be a non-empty tuple of steps")
            for step in steps:
                if isinstance(step, str) and step.strip():
                    continue
                if not isinstance(step, AddColumn):
                    raise ValueError(f"schema {self.name!r}: migration {number} has an invalid step {step!r}")

    @property
    def version(self) -> int:
        """The version this code brings the part to."""
        return len(self.migrations)


# -- SQLite ------------------------------------------------------------------------------------

_VERSIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"


def _apply_step(conn: sqlite3.Connection, step: Step) -> None:
    if isinstance(step, AddColumn):
        columns = {str(row[1]) for row in conn.execute(f"PRAGMA table_info({step.table})")}
        if step.column not in columns:
            conn.execute(f"ALTER TABLE {step.table} ADD COLUMN {step.column} {step.decl}")
        return
    conn.execute(step)


def _upgrade(conn: sqlite3.Connection, schema: Schema, current: int, where: str) -> bool:
    """Run the migrations after ``current``; False when there was nothing to do."""
    if current > schema.version:
        raise SchemaError(
            f"{where} has schema {schema.name!r} at version {current}, newer than this polaris-jupyter "
            f"knows (version {schema.version}); upgrade polaris-jupyter or use another database file"
        )
    for number in range(current, schema.version):
        for step in schema.migrations[number]:
            try:
                _apply_step(conn, step)
            except sqlite3.Error as exc:
                raise SchemaError(
                    f"{where}: migrating schema {schema.name!r} to version {number + 1} failed at {step!r}: {exc}"
                ) from exc
    return current < schema.version


def migrate_sqlite(
    conn: sqlite3.Connection, parts: Sequence[Schema], *, core: Schema | None = None, where: str = "the database"
) -> dict[str, int]:
    """Bring ``core`` (versioned by ``PRAGMA user_version``) and ``parts`` (versioned in
    ``schema_versions``) up to date in ONE transaction on ``conn`` (autocommit mode), and
    return ``{name: version}`` of everything applied. Blocking: call it on the writer thread.

    ``BEGIN IMMEDIATE`` takes the write lock before the versions are read, so two processes
    opening the same file migrate one after the other, never both."""
    for schema in (*parts, *([core] if core is not None else [])):
        if schema.dialect != "sqlite":
            raise ValueError(f"schema {schema.name!r} is for {schema.dialect}, not sqlite")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if core is not None:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if _upgrade(conn, core, current, where):
                conn.execute(f"PRAGMA user_version = {int(core.version)}")
        conn.execute(_VERSIONS_TABLE)  # also in the core baseline; here for a core-less call
        for part in parts:
            row = conn.execute("SELECT version FROM schema_versions WHERE name = ?", (part.name,)).fetchone()
            if _upgrade(conn, part, 0 if row is None else int(row[0]), where):
                conn.execute(
                    "INSERT INTO schema_versions (name, version) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET version = excluded.version",
                    (part.name, part.version),
                )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    applied = {part.name: part.version for part in parts}
    if core is not None:
        applied[core.name] = core.version
    return applied


def sqlite_versions(conn: sqlite3.Connection) -> dict[str, int]:
    """``{name: version}`` as recorded in the database (the core under ``CORE_SCHEMA_NAME``)."""
    found = {CORE_SCHEMA_NAME: int(conn.execute("PRAGMA user_version").fetchone()[0])}
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'").fetchone()
    if exists:
        found.update({str(r[0]): int(r[1]) for r in conn.execute("SELECT name, version FROM schema_versions")})
    return found
