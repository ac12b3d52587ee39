"""SQLite statements on PostgreSQL: one SQL text per part, whichever store runs it.

The parts (chat, the edit journal, schedules, approvals, proposals) write their tables and
queries once, for SQLite, in a plain subset both databases share. On PostgreSQL this module
renders them; nothing else changes in the parts:

- queries (:func:`pg_sql`): ``?`` and ``:name`` placeholders become psycopg's (outside quoted
  text; a literal ``%`` is doubled when parameters are bound), and a subquery in ``FROM`` gets
  the alias PostgreSQL before 16 requires (``FROM (SELECT ...) ORDER BY`` is SQLite-only);
- migrations (:func:`pg_ddl`, :func:`pg_schema_of`): ``INTEGER`` → ``BIGINT`` (SQLite integers
  are 64-bit), ``REAL`` → ``DOUBLE PRECISION``, ``BLOB`` → ``BYTEA``, ``INTEGER PRIMARY KEY
  [AUTOINCREMENT]`` → ``BIGSERIAL PRIMARY KEY``; every other table gets a ``rowid BIGSERIAL``
  column, as every SQLite table has one (``ORDER BY created_at, rowid`` works on both). A step
  using what PostgreSQL cannot express the same way (``PRAGMA``, ``INSERT OR ...``, ``WITHOUT
  ROWID``, ``COLLATE NOCASE``, triggers, virtual tables) is refused with the part's name;
- rows (:func:`pg_row`): readable by index and by column name, and ``dict(row)``, like
  ``sqlite3.Row``; a Python ``bool`` is sent as an integer, as SQLite stores it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

from psycopg.adapt import Dumper

from polaris_jupyter.jobs._schema import AddColumn, Schema, SchemaError, Step

__all__ = ["BoolAsInt", "PgRow", "pg_ddl", "pg_row", "pg_schema_of", "pg_sql"]

# -- scanning: quoted text is never rewritten ---------------------------------------------------


def _segments(sql: str) -> list[tuple[bool, str]]:
    """``(quoted, text)`` pieces: single-quoted literals and double-quoted names vs the rest."""
    out: list[tuple[bool, str]] = []
    i, start, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            if start < i:
                out.append((False, sql[start:i]))
            j = i + 1
            while j < n:
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # '' inside a literal
                        j += 2
                        continue
                    break
                j += 1
            out.append((True, sql[i : j + 1]))
            i = start = j + 1
            continue
        i += 1
    if start < n:
        out.append((False, sql[start:]))
    return out


def _map_plain(sql: str, fn: Callable[[str], str]) -> str:
    return "".join(text if quoted else fn(text) for quoted, text in _segments(sql))


# -- queries ---------------------------------------------------------------------------------------

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_FROM_OPEN = re.compile(r"\b(?:FROM|JOIN)\s*$", re.IGNORECASE)
_NOT_AN_ALIAS = frozenset(
    "where group order limit offset join left right inner outer cross full natural on using union except "
    "intersect window having returning for".split()
)
_WORD = re.compile(r"\s*([A-Za-z_]\w*)")


def _alias_subqueries(sql: str) -> str:
    """``FROM (SELECT ...)`` without an alias gets `` AS _sq<n>`` (quotes respected)."""
    if "(" not in sql:
        return sql
    pieces = _segments(sql)
    flat = "".join(t if not q else "\0" * len(t) for q, t in pieces)  # quotes masked, same offsets
    inserts: list[int] = []
    stack: list[bool] = []
    for i, ch in enumerate(flat):
        if ch == "(":
            stack.append(bool(_FROM_OPEN.search(flat[max(0, i - 16) : i])))
        elif ch == ")" and stack and stack.pop():
            word = _WORD.match(flat, i + 1)
            if word is None or word.group(1).lower() in _NOT_AN_ALIAS:
                inserts.append(i + 1)
    if not inserts:
        return sql
    out, last = [], 0
    for n, at in enumerate(inserts, start=1):
        out.append(sql[last:at])
        out.append(f" AS _sq{n}")
        last = at
    out.append(sql[last:])
    return "".join(out)


def _placeholders(text: str) -> str:
    return _NAMED.sub(r"%(\1)s", text.replace("?", "%s"))


_cache: dict[tuple[str, bool], str] = {}


def pg_sql(sql: str, *, bound: bool = True) -> str:
    """The statement for psycopg (cached per text): placeholders, ``%`` doubled when
    parameters are ``bound`` (psycopg leaves a query without parameters alone), subquery aliases."""
    key = (sql, bound)
    done = _cache.get(key)
    if done is None:
        done = _alias_subqueries(sql)
        if bound:
            done = "".join(
                text.replace("%", "%%") if quoted else _placeholders(text.replace("%", "%%"))
                for quoted, text in _segments(done)
            )
        if len(_cache) < 4096:
            _cache[key] = done
    return done


# -- migrations --------------------------------------------------------------------------------

_REFUSED = (
    (re.compile(r"\bPRAGMA\b", re.I), "PRAGMA"),
    (re.compile(r"\bWITHOUT\s+ROWID\b", re.I), "WITHOUT ROWID"),
    (re.compile(r"\bINSERT\s+OR\b", re.I), "INSERT OR ... (write INSERT ... ON CONFLICT DO NOTHING / DO UPDATE)"),
    (re.compile(r"\bREPLACE\s+INTO\b", re.I), "REPLACE INTO (write INSERT ... ON CONFLICT DO UPDATE)"),
    (re.compile(r"\bCOLLATE\s+NOCASE\b", re.I), "COLLATE NOCASE"),
    (re.compile(r"\bCREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TRIGGER\b", re.I), "a trigger"),
    (re.compile(r"\bVIRTUAL\s+TABLE\b", re.I), "a virtual table"),
    (re.compile(r"\b(?:datetime|julianday|strftime|ifnull)\s*\(", re.I), "a SQLite-only function"),
)
_SERIAL_PK = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(?:\s+AUTOINCREMENT)?\b", re.I)
_TYPES = ((re.compile(r"\bINTEGER\b", re.I), "BIGINT"), (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
          (re.compile(r"\bBLOB\b", re.I), "BYTEA"))
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\b", re.I)


def _types(text: str) -> str:
    text = _SERIAL_PK.sub("BIGSERIAL PRIMARY KEY", text)
    if re.search(r"\bAUTOINCREMENT\b", text, re.I):
        raise ValueError("AUTOINCREMENT outside INTEGER PRIMARY KEY AUTOINCREMENT")
    for pattern, pg in _TYPES:
        text = pattern.sub(pg, text)
    return text


def pg_ddl(step: str) -> str:
    """One SQLite migration statement as PostgreSQL runs it (see the module docstring);
    ValueError naming what cannot be rendered."""
    plain = "".join(t for q, t in _segments(step) if not q)
    for pattern, what in _REFUSED:
        if pattern.search(plain):
            raise ValueError(f"{what} has no PostgreSQL form")
    out = _map_plain(step, _types)
    if _CREATE_TABLE.match(out) and "BIGSERIAL PRIMARY KEY" not in out.upper():
        masked = "".join(t if not q else "\0" * len(t) for q, t in _segments(out))
        close = masked.rstrip().rfind(")")
        if close > 0 and masked.rstrip().endswith(")") and not re.search(r"\bAS\s+SELECT\b", masked, re.I):
            out = f"{out[:close]}, rowid BIGSERIAL{out[close:]}"
    return out


def _pg_step(step: Step) -> Step:
    if isinstance(step, AddColumn):
        return AddColumn(step.table, step.column, _map_plain(step.decl, _types))
    return pg_ddl(step)


@functools.lru_cache(maxsize=64)
def pg_schema_of(schema: Schema) -> Schema:
    """The PostgreSQL form of a part's schema: the same name, versions and steps, rendered.
    A schema written for PostgreSQL is returned as it is."""
    if schema.dialect == "postgresql":
        return schema
    migrations: list[tuple[Step, ...]] = []
    for number, steps in enumerate(schema.migrations, start=1):
        try:
            migrations.append(tuple(_pg_step(s) for s in steps))
        except ValueError as exc:
            raise SchemaError(
                f"schema {schema.name!r}, migration {number}: cannot run on PostgreSQL ({exc}); write it in the "
                "subset both databases share (TEXT, INTEGER, REAL, BLOB, CREATE TABLE/INDEX, AddColumn)"
            ) from exc
    return Schema(schema.name, migrations=tuple(migrations), dialect="postgresql")


# -- rows and parameters ------------------------------------------------------------------------


class PgRow(tuple):  # type: ignore[type-arg]
    """A result row readable like ``sqlite3.Row``: ``row[0]``, ``row["name"]``, ``dict(row)``."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._index[key])
            except KeyError:
                raise IndexError(f"no column named {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)

    def get(self, key: str, default: Any = None) -> Any:
        at = self._index.get(key)
        return default if at is None else tuple.__getitem__(self, at)


@functools.lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type[PgRow]:
    return type("PgRow", (PgRow,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def pg_row(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    """psycopg row factory making :class:`PgRow` rows."""
    description = cursor.description
    if description is None:
        return PgRow
    cls = _row_class(tuple(c.name for c in description))
    return cls


class BoolAsInt(Dumper):
    """Send ``True``/``False`` as ``'1'``/``'0'`` of no declared type, so PostgreSQL reads them
    as the column needs: an integer (the parts' flag columns, as SQLite stores a bool) or a
    boolean (DBOS's columns, written on the same connection)."""

    oid = 0  # unknown: the server infers the type from the column or operator

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"
