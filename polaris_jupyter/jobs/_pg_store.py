"""The store on PostgreSQL: the SQLite store's group commit, over psycopg, in a schema of its own.

Same contract as :class:`~polaris_jupyter.jobs.SqliteStore` (it reuses its queueing and group
commit: writes pile up while a commit is in flight and go into the next one), with three
differences that several processes sharing one database need:

- Event numbers are allocated inside the writing transaction from the one-row ``event_seq``
  counter, so they are gap-free across processes and commit order = number order; the
  per-run number is computed in the same transaction. The transaction ends with
  ``pg_notify``, so every process listening learns the new high-water mark at commit.
- A run's row is never written back over a final status, nor by an attempt older than the
  one recorded (the ``WHERE`` of the upsert): a process holding a stale copy cannot undo a
  cancel, an expiry, or a newer attempt of another worker.
- Everything lives in one PostgreSQL schema (``search_path``), one per user on a shared server.
- A run's DBOS workflow is enqueued in the same transaction as the run (:meth:`PgStore.dispatch`):
  DBOS's tables are in the same database, and DBOS enqueues into a caller's transaction
  (``DBOSClient.enqueue_in_transaction``) given a SQLAlchemy connection, which here wraps the
  writer's own psycopg connection. A trigger is thus one commit, a batch of 1,000 one too, and
  a committed run is always on its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from polaris_jupyter.jobs._models import FINAL_STATUSES, Event
from polaris_jupyter.jobs._pg_dialect import BoolAsInt, pg_row, pg_schema_of, pg_sql
from polaris_jupyter.jobs._pg_schema import migrate_pg, pg_versions, quote_ident
from polaris_jupyter.jobs._rows import _RUN_COLUMNS, _dumps
from polaris_jupyter.jobs._schema import CORE_SCHEMA_NAME, Schema
from polaris_jupyter.jobs._store import _CALL, SqliteStore

__all__ = ["PgConnection", "PgStore"]

T = TypeVar("T")
log = logging.getLogger("polaris_jupyter.jobs.pg")

_FINAL = ", ".join(f"'{s.value}'" for s in sorted(FINAL_STATUSES, key=lambda s: s.value))
_UPSERT_RUN_PG = (
    f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('%s' for _ in _RUN_COLUMNS)}) "
    f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c}=EXCLUDED.{c}' for c in _RUN_COLUMNS[1:])} "
    f"WHERE runs.status NOT IN ({_FINAL}) AND runs.attempt_count <= EXCLUDED.attempt_count"
)
_DEADLOCK_RETRIES = 5
#: Marks a queued dispatch (a run's DBOS workflow to enqueue) among the queued statements.
_DISPATCH: Any = object()
#: What enqueues a batch of dispatches on the writer's SQLAlchemy connection (the dispatcher's).
Enqueuer = Callable[[sa.Connection, list[Any]], None]
_INSERT_EVENT_PG = (
    "INSERT INTO events (seq, run_id, run_seq, conversation_id, type, data, ts) VALUES (%s,%s,%s,%s,%s,%s,%s)"
)


class PgConnection:
    """What ``read(fn)`` / ``write(fn)`` callbacks get: ``execute(sql, params)`` with the
    SQLite statements the rest of the engine writes (``_pg_dialect.py``), rows readable by
    index and by name, as ``sqlite3.Row``."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor[Any]:
        if not params:
            return self.raw.execute(pg_sql(sql, bound=False))  # type: ignore[arg-type]
        return self.raw.execute(pg_sql(sql), params)  # type: ignore[arg-type]

    def executemany(self, sql: str, params: Iterable[Any]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(pg_sql(sql), list(params))


class PgStore(SqliteStore):
    """One PostgreSQL schema: runs, attempts, logs, events, key/value, registered parts."""

    dialect = "postgresql"

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(":memory:")
        quote_ident(schema)
        self.url = url
        self.schema = schema
        self.path = f"{_redact(url)} schema {schema}"
        #: NOTIFY channel of this schema's event log.
        self.channel = f"polaris_events_{schema}"[:63]
        self._pw: psycopg.Connection[Any] | None = None
        self._pr: psycopg.Connection[Any] | None = None
        #: SQLAlchemy over the writer connection (DBOS writes through it, in our transactions).
        self.sa_engine: sa.Engine | None = None
        self._sa: sa.Connection | None = None
        #: Set by the dispatcher: enqueues the workflows of a batch's dispatches.
        self.enqueuer: Enqueuer | None = None

    def connect(self, *, autocommit: bool) -> psycopg.Connection[Any]:
        """A new blocking connection on this store's schema (rows as ``PgRow``)."""
        conn = psycopg.connect(
            self.url, autocommit=autocommit, row_factory=pg_row, options=f"-c search_path={self.schema}"
        )
        conn.adapters.register_dumper(bool, BoolAsInt)
        return conn

    async def aconnect(self) -> psycopg.AsyncConnection[Any]:
        """A new asyncio connection on this schema, autocommit (for LISTEN)."""
        conn = await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, row_factory=pg_row, options=f"-c search_path={self.schema}"
        )
        conn.adapters.register_dumper(bool, BoolAsInt)
        return conn

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        writer = ThreadPoolExecutor(1, thread_name_prefix="polaris-pg-w")
        reader = ThreadPoolExecutor(1, thread_name_prefix="polaris-pg-r")
        parts = [self._pg_schema(s) for s in self._schemas.values()]
        try:
            self._pw, self._applied = await loop.run_in_executor(writer, self._open_writer_pg, parts)
            self._pr = await loop.run_in_executor(reader, lambda: self.connect(autocommit=True))
        except BaseException:
            if self._pw is not None:
                self._pw.close()
            writer.shutdown(wait=True)
            reader.shutdown(wait=True)
            raise
        self._loop, self._writer, self._reader = loop, writer, reader

    def _open_writer_pg(self, parts: list[Schema]) -> tuple[psycopg.Connection[Any], dict[str, int]]:
        conn = self.connect(autocommit=True)
        try:
            applied = migrate_pg(conn, self.schema, parts, where=self.path)
            # Autocommit as psycopg sees it: transactions are the batch's own (conn.transaction()).
            self.sa_engine = sa.create_engine(
                "postgresql+psycopg://", creator=lambda: conn, poolclass=StaticPool, isolation_level="AUTOCOMMIT"
            )
            self._sa = self.sa_engine.connect()
        except BaseException:
            conn.close()
            raise
        return conn, applied

    def _close_writer_pg(self) -> None:
        if self._sa is not None:
            self._sa.close()
        if self._pw is not None:
            self._pw.close()
        self._sa = self.sa_engine = None

    async def close(self) -> None:
        if self._loop is None:
            return
        await self.flush()
        if self._writer is not None:
            await self._loop.run_in_executor(self._writer, self._close_writer_pg)
            self._writer.shutdown(wait=True)
        if self._reader is not None and self._pr is not None:
            await self._loop.run_in_executor(self._reader, self._pr.close)
            self._reader.shutdown(wait=True)
        self._writer = self._reader = None
        self._pw = self._pr = None
        self._loop = None

    # -- schemas ------------------------------------------------------------------------------
    @staticmethod
    def _pg_schema(schema: Schema) -> Schema:
        return pg_schema_of(schema)

    def register(self, schema: Schema) -> None:
        """Accept a part's schema (SQLite ones are rendered for PostgreSQL, ``_pg_dialect.py``;
        one that cannot be is refused here, with the part's name)."""
        if schema.name == CORE_SCHEMA_NAME:
            raise ValueError(f"schema name {CORE_SCHEMA_NAME!r} is the store's own")
        self._pg_schema(schema)
        known = self._schemas.get(schema.name)
        if known is not None and known != schema:
            raise ValueError(f"another schema named {schema.name!r} is already registered")
        self._schemas[schema.name] = schema

    async def ensure_schema(self, schema: Schema) -> None:
        self.register(schema)
        pg = self._pg_schema(schema)
        if self._loop is None or self._applied.get(pg.name) == pg.version:
            return
        assert self._writer is not None and self._pw is not None
        conn = self._pw
        applied = await self._loop.run_in_executor(
            self._writer, lambda: migrate_pg(conn, self.schema, [pg], where=self.path)
        )
        self._applied.update(applied)

    async def schema_versions(self) -> dict[str, int]:
        return await self.read(lambda c: pg_versions(c.raw))

    # -- dispatch: a run's workflow enqueued in the transaction that writes the run ---------------
    def dispatch(self, options: Any, run_id: str) -> None:
        """Enqueue the workflow described by ``options`` (DBOS ``EnqueueOptions``, argument
        ``run_id``) in the next commit, with the writes queued before it; the run's
        ``dispatched_at`` is set in the same transaction."""
        self._ops.append((_DISPATCH, (options, run_id)))
        self._kick()

    def enqueue_now(self, options: Any, run_id: str) -> None:
        """Enqueue a workflow inside the transaction running now (a ``write(fn)`` callback on
        the writer thread): for a transition that enqueues only if its compare-and-set won."""
        if self.enqueuer is None or self._sa is None:
            raise RuntimeError("the store has no dispatcher: runs cannot be enqueued")
        self.enqueuer(self._sa, [(options, run_id)])

    def _dispatch_group(self, cur: psycopg.Cursor[Any], items: list[tuple[Any, str]]) -> None:
        if self.enqueuer is None or self._sa is None:
            raise RuntimeError("the store has no dispatcher: runs cannot be enqueued")
        self.enqueuer(self._sa, items)
        # Rows a worker holds are being claimed (which marks them too): skip, never wait.
        cur.execute(
            "UPDATE runs SET dispatched_at = %s WHERE id IN (SELECT id FROM runs WHERE id = ANY(%s) "
            "AND dispatched_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED)",
            (time.time(), [run_id for _, run_id in items]),
        )

    # -- the write batch (writer thread) ---------------------------------------------------------
    def _write_batch(
        self, runs: list[tuple[Any, ...]], ops: list[tuple[str, tuple[Any, ...]]], events: list[Event]
    ) -> None:
        conn = self._pw
        assert conn is not None
        wrapped = PgConnection(conn)
        runs = sorted(runs, key=lambda r: str(r[0]))  # one lock order for every writer: no deadlock
        for attempt in range(1, _DEADLOCK_RETRIES + 1):
            try:
                with conn.transaction(), conn.cursor() as cur:
                    if runs:
                        cur.executemany(_UPSERT_RUN_PG, runs)
                    _execute_grouped_pg(wrapped, cur, ops, self._dispatch_group)
                    if events:
                        self._insert_events(cur, events)
                return
            except Exception as exc:
                self._reset_sa()
                cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc  # DBOS's writes come wrapped
                retry = isinstance(cause, (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure))
                if not retry or attempt == _DEADLOCK_RETRIES:
                    raise
                log.info("store batch hit a deadlock; retrying (%d)", attempt)
                for sql, params in ops:
                    if sql is _CALL:
                        params[1].clear()

    def _reset_sa(self) -> None:
        """After a failed batch: SQLAlchemy's view of the connection back to no transaction."""
        if self._sa is not None:
            with contextlib.suppress(Exception):
                self._sa.rollback()

    def _insert_events(self, cur: psycopg.Cursor[Any], events: list[Event]) -> None:
        """Number ``events`` under the counter's row lock (held to commit) and insert them."""
        row = cur.execute("UPDATE event_seq SET seq = seq + %s WHERE one = 1 RETURNING seq", (len(events),)).fetchone()
        assert row is not None, "event_seq row missing"
        seq = int(row["seq"]) - len(events)
        run_ids = list({e.run_id for e in events if e.run_id is not None})
        run_seq: dict[str, int] = {}
        if run_ids:
            for r in cur.execute(
                "SELECT run_id, MAX(run_seq) AS m FROM events WHERE run_id = ANY(%s) GROUP BY run_id", (run_ids,)
            ).fetchall():
                run_seq[r["run_id"]] = int(r["m"] or 0)
        rows = []
        for e in events:
            seq += 1
            e.seq = seq
            if e.run_id is not None:
                run_seq[e.run_id] = run_seq.get(e.run_id, 0) + 1
                e.run_seq = run_seq[e.run_id]
            rows.append((e.seq, e.run_id, e.run_seq, e.conversation_id, e.type, _dumps(e.data), e.ts))
        cur.executemany(_INSERT_EVENT_PG, rows)
        cur.execute("SELECT pg_notify(%s, %s)", (self.channel, str(seq)))

    async def pg_write(self, fn: Callable[[PgConnection], T]) -> T:
        """:meth:`write` with the PostgreSQL connection wrapper ``fn`` gets here."""
        return await self.write(fn)  # type: ignore[arg-type]

    # -- reads ---------------------------------------------------------------------------------
    async def read(self, fn: Callable[[Any], T]) -> T:
        await self.flush()
        assert self._loop is not None and self._reader is not None and self._pr is not None
        conn = PgConnection(self._pr)
        return await self._loop.run_in_executor(self._reader, fn, conn)

    async def query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        args = tuple(params) if not isinstance(params, dict) else params
        return await self.read(lambda c: c.execute(sql, args).fetchall())

    async def max_event_seq(self) -> int:
        rows = await self.query("SELECT seq AS m FROM event_seq WHERE one = 1")
        return int(rows[0]["m"]) if rows else 0


def _execute_grouped_pg(
    wrapped: PgConnection, cur: psycopg.Cursor[Any], ops: list[tuple[str, tuple[Any, ...]]],
    dispatch: Callable[[psycopg.Cursor[Any], list[Any]], None],
) -> None:
    """The SQLite store's ``_execute_grouped`` on psycopg: same order, same batching; a run of
    dispatches is enqueued together."""
    i = 0
    while i < len(ops):
        sql = ops[i][0]
        j = i
        while j < len(ops) and ops[j][0] == sql:
            j += 1
        if sql is _CALL:
            for _, (fn, outcome) in ops[i:j]:
                _run_call_pg(wrapped, fn, outcome)
        elif sql is _DISPATCH:
            dispatch(cur, [p for _, p in ops[i:j]])
        elif j - i == 1:
            params = ops[i][1]
            cur.execute(pg_sql(sql, bound=bool(params)), params or None)  # type: ignore[arg-type]
        else:
            cur.executemany(pg_sql(sql), [p for _, p in ops[i:j]])
        i = j


def _run_call_pg(wrapped: PgConnection, fn: Callable[[Any], Any], outcome: list[tuple[bool, Any]]) -> None:
    """One ``write(fn)`` call in a savepoint (psycopg's nested transaction)."""
    try:
        with wrapped.raw.transaction():
            result = fn(wrapped)
    except Exception as exc:
        outcome.append((False, exc))
    else:
        outcome.append((True, result))


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    with contextlib.suppress(Exception):
        info = psycopg.conninfo.conninfo_to_dict(url)
        return f"postgresql://{info.get('user', '')}@{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"
    return "postgresql://(url)"
