"""How SQLite statements are rendered for PostgreSQL (no database needed): placeholders only
outside quoted text, ``%`` doubled only when parameters are bound, subqueries in FROM aliased
unless they have one, migration types and the rowid column, SQLite-only steps refused."""

from __future__ import annotations

import pytest

from polaris_jupyter.jobs import AddColumn, Schema, SchemaError
from polaris_jupyter.jobs._pg_dialect import PgRow, pg_ddl, pg_row, pg_schema_of, pg_sql


def test_placeholders_are_rewritten_outside_quotes_only() -> None:
    sql = "SELECT * FROM t WHERE a = ? AND b = :name AND c = 'why? :not %' AND d::text = ?"
    assert pg_sql(sql) == "SELECT * FROM t WHERE a = %s AND b = %(name)s AND c = 'why? :not %%' AND d::text = %s"
    assert pg_sql("SELECT 'x%' AS p") == "SELECT 'x%%' AS p"
    assert pg_sql("SELECT 'x%' AS p", bound=False) == "SELECT 'x%' AS p"  # psycopg leaves it alone then


def test_subqueries_in_from_get_an_alias_unless_they_have_one() -> None:
    assert pg_sql("SELECT * FROM (SELECT * FROM m LIMIT ?) ORDER BY num") == (
        "SELECT * FROM (SELECT * FROM m LIMIT %s) AS _sq1 ORDER BY num"
    )
    assert pg_sql("SELECT COUNT(*) FROM (SELECT id FROM r WHERE x IN (SELECT 1))", bound=False).endswith(") AS _sq1")
    kept = "SELECT u.a FROM (SELECT 1 AS a) AS u GROUP BY u.a"
    assert pg_sql(kept, bound=False) == kept
    assert pg_sql("SELECT 1 FROM (SELECT 1) x", bound=False) == "SELECT 1 FROM (SELECT 1) x"
    inner = "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM json_each(t.tags)) AND v IN (SELECT 2)"
    assert pg_sql(inner, bound=False) == inner  # not derived tables
    assert pg_sql("SELECT ') ORDER' FROM (SELECT 1) WHERE 1=1", bound=False) == (
        "SELECT ') ORDER' FROM (SELECT 1) AS _sq1 WHERE 1=1"
    )


def test_migrations_get_postgresql_types_and_a_rowid() -> None:
    assert pg_ddl("CREATE TABLE IF NOT EXISTS e (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB, t REAL, n INTEGER)") == (
        "CREATE TABLE IF NOT EXISTS e (id BIGSERIAL PRIMARY KEY, b BYTEA, t DOUBLE PRECISION, n BIGINT)"
    )
    assert pg_ddl("CREATE TABLE p (id TEXT PRIMARY KEY, note TEXT DEFAULT 'REAL')") == (
        "CREATE TABLE p (id TEXT PRIMARY KEY, note TEXT DEFAULT 'REAL', rowid BIGSERIAL)"
    )
    index = "CREATE INDEX IF NOT EXISTS p_run ON p (run_id, created_at)"
    assert pg_ddl(index) == index
    schema = pg_schema_of(Schema("part", migrations=(("CREATE TABLE q (a TEXT)",), (AddColumn("q", "n", "INTEGER"),))))
    assert schema.dialect == "postgresql" and schema.version == 2
    assert schema.migrations[1] == (AddColumn("q", "n", "BIGINT"),)


@pytest.mark.parametrize("step", [
    "PRAGMA foreign_keys=ON",
    "INSERT OR REPLACE INTO t VALUES (1)",
    "CREATE TABLE t (a TEXT) WITHOUT ROWID",
    "CREATE TABLE t (a TEXT COLLATE NOCASE)",
    "UPDATE t SET at = datetime('now')",
    "CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END",
])
def test_sqlite_only_steps_are_refused_with_the_part_and_migration(step: str) -> None:
    with pytest.raises(SchemaError, match=r"schema 'old', migration 2: cannot run on PostgreSQL"):
        pg_schema_of(Schema("old", migrations=(("CREATE TABLE t (a TEXT)",), (step,))))


def test_rows_read_like_sqlite_rows() -> None:
    class Column:
        def __init__(self, name: str) -> None:
            self.name = name

    class Cursor:
        description = [Column("id"), Column("n")]

    row = pg_row(Cursor())(["run_1", 3])
    assert isinstance(row, PgRow)
    assert row[0] == row["id"] == "run_1" and row["n"] == 3 and row.get("missing") is None
    assert dict(row) == {"id": "run_1", "n": 3} and tuple(row) == ("run_1", 3) and row.keys() == ["id", "n"]
    with pytest.raises(IndexError, match="no column named 'x'"):
        row["x"]
