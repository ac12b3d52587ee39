"""Durable SQLite store (WAL) with group commit, so the event loop never waits on the disk.

Writes are queued in memory and committed by one dedicated writer thread: while a commit is in
flight, new writes pile up and go into the next one (group commit). Several updates of the same
run inside one batch collapse into one row write. Callers that need durability (``trigger``)
await :meth:`SqliteStore.commit`, which resolves once their writes are on disk. Reads go
through a second connection on a reader thread, after a flush, so they see every earlier write.

The store is the only writer of its file. Other parts never open their own connection: they
queue statements (:meth:`SqliteStore.execute` + :meth:`SqliteStore.commit`), run a function in
the next commit (:meth:`SqliteStore.write`) and read through :meth:`SqliteStore.read`. Their
tables are declared as versioned :class:`~polaris_jupyter.jobs.Schema` objects registered with
the store, which migrates them all when it opens (see ``_schema.py``).

The interface is small on purpose (runs, attempts, logs, events, key/value, registered
schemas) so that a PostgreSQL-backed store can replace it without touching the engine.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from polaris_jupyter.jobs._models import Attempt, Event, Run
from polaris_jupyter.jobs._rows import (
    _INSERT_EVENT,
    _INSERT_LOG,
    _UPSERT_ATTEMPT,
    _UPSERT_RUN,
    CORE_SCHEMA,
    SCHEMA_VERSION,
    _dumps,
    _loads,
    row_to_event,
    row_to_run,
    run_to_row,
)
from polaris_jupyter.jobs._schema import CORE_SCHEMA_NAME, Schema, migrate_sqlite, sqlite_versions

__all__ = ["CORE_SCHEMA", "SCHEMA_VERSION", "SqliteStore", "row_to_event", "row_to_run", "run_to_row"]

T = TypeVar("T")
log = logging.getLogger("polaris_jupyter.jobs.store")

#: Marks a queued :meth:`SqliteStore.write` call among the queued statements (never equal to SQL).
_CALL: Any = object()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a process kill (kill -9); only an OS crash can lose the tail.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteStore:
    """One SQLite file: runs, attempts, logs, events, key/value, and the tables other parts
    register (schedules, chat, the edit journal). This object is the file's only writer."""

    #: The SQL dialect of this store: parts register schemas written for it.
    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._schemas: dict[str, Schema] = {}
        #: Schema versions known to be applied to the open file, by name.
        self._applied: dict[str, int] = {}
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._runs: dict[str, Run] = {}
        self._ops: list[tuple[str, tuple[Any, ...]]] = []
        self._events: list[Event] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._inflight: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Bytes of text and blobs committed so far (for benchmarks of write volume).
        self.bytes_written = 0
        #: Called on the event loop with each committed batch of events (the live bus).
        self.on_events_committed: Callable[[list[Event]], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        writer = ThreadPoolExecutor(1, thread_name_prefix="polaris-store-w")
        reader = ThreadPoolExecutor(1, thread_name_prefix="polaris-store-r")
        parts = list(self._schemas.values())
        try:
            wconn, applied = await loop.run_in_executor(writer, self._open_writer, parts)
        except BaseException:
            writer.shutdown(wait=True)
            reader.shutdown(wait=True)
            raise
        self._wconn = wconn
        self._rconn = await loop.run_in_executor(reader, _connect, self.path)
        self._applied = applied
        self._loop, self._writer, self._reader = loop, writer, reader

    def _open_writer(self, parts: list[Schema]) -> tuple[sqlite3.Connection, dict[str, int]]:
        conn = _connect(self.path)
        try:
            applied = migrate_sqlite(conn, parts, core=CORE_SCHEMA, where=self.path)
        except BaseException:
            conn.close()
            raise
        return conn, applied

    @property
    def is_open(self) -> bool:
        return self._loop is not None

    # -- schemas (see _schema.py): the one place tables are created and migrated ------------
    def register(self, schema: Schema) -> None:
        """Add a part's schema; :meth:`open` applies every registered one in one transaction.

        Registering the same schema again is a no-op; another schema under a taken name is a
        ValueError (two homes for one table set). Once the store is open, use
        :meth:`ensure_schema` instead (this only records it)."""
        if schema.dialect != self.dialect:
            raise ValueError(f"schema {schema.name!r} is written for {schema.dialect}; this store is {self.dialect}")
        if schema.name == CORE_SCHEMA_NAME:
            raise ValueError(f"schema name {CORE_SCHEMA_NAME!r} is the store's own")
        known = self._schemas.get(schema.name)
        if known is not None and known != schema:
            raise ValueError(f"another schema named {schema.name!r} is already registered")
        self._schemas[schema.name] = schema

    async def ensure_schema(self, schema: Schema) -> None:
        """Register ``schema`` and, if the store is already open, migrate it now on the writer
        thread (after writes already handed to it). Cheap once applied."""
        self.register(schema)
        if self._loop is None or self._applied.get(schema.name) == schema.version:
            return
        assert self._writer is not None and self._wconn is not None
        conn = self._wconn
        applied = await self._loop.run_in_executor(
            self._writer, lambda: migrate_sqlite(conn, [schema], where=self.path)
        )
        self._applied.update(applied)

    async def schema_versions(self) -> dict[str, int]:
        """``{name: version}`` recorded in the file, the core under ``"store"``."""
        return await self.read(sqlite_versions)

    async def close(self) -> None:
        if self._loop is None:
            return
        await self.flush()
        for executor, conn in ((self._writer, self._wconn), (self._reader, self._rconn)):
            if executor is not None and conn is not None:
                await self._loop.run_in_executor(executor, conn.close)
                executor.shutdown(wait=True)
        self._writer = self._reader = None
        self._wconn = self._rconn = None
        self._loop = None

    # -- writes (never block; committed by the writer thread) --------------------------------
    def put_run(self, run: Run) -> None:
        """Queue the run's current state; several puts before the next commit write one row."""
        self._runs[run.id] = run
        self._kick()

    def put_attempt(self, attempt: Attempt) -> None:
        self.execute(
            _UPSERT_ATTEMPT,
            (
                attempt.run_id,
                attempt.number,
                attempt.status,
                attempt.started_at,
                attempt.finished_at,
                _dumps(attempt.error),
            ),
        )

    def put_log(self, run_id: str, attempt: int, ts: float, level: str, message: str, data: Any) -> None:
        self.execute(_INSERT_LOG, (run_id, attempt, ts, level, message, _dumps(data)))

    def put_event(self, event: Event) -> None:
        self._events.append(event)
        self._kick()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Queue any write statement; it is committed with the next batch, in order."""
        self._ops.append((sql, params))
        self._kick()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the writer thread inside the next group commit, in order with
        the writes queued before it, and return its result once that commit is on disk.

        For writes that need an answer (a row count, a generated id). ``fn`` runs in a
        savepoint: if it raises, only its own changes are rolled back, the rest of the batch
        commits, and the exception is raised here. It must not keep cursors or start or end
        transactions; keep it short, every other writer waits for it."""
        outcome: list[tuple[bool, Any]] = []
        self._ops.append((_CALL, (fn, outcome)))
        self._kick()
        await self.commit()
        if not outcome:
            raise RuntimeError("store write was not run")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    async def commit(self) -> None:
        """Wait until every write queued so far is on disk."""
        if not (self._runs or self._ops or self._events or self._inflight):
            return
        assert self._loop is not None, "store is not open"
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(fut)
        self._kick()
        await fut

    flush = commit

    def _kick(self) -> None:
        if self._inflight is None and self._loop is not None and self._writer is not None:
            self._inflight = self._loop.create_future()
            self._loop.call_soon(self._start_batch)

    def _start_batch(self) -> None:
        assert self._loop is not None and self._writer is not None
        runs, ops, events, waiters = self._runs, self._ops, self._events, self._waiters
        self._runs, self._ops, self._events, self._waiters = {}, [], [], []
        rows = [run_to_row(run) for run in runs.values()]  # serialized here: runs keep changing
        future = self._loop.run_in_executor(self._writer, self._write_batch, rows, ops, events)
        future.add_done_callback(lambda f: self._batch_done(f, events, waiters))

    def _write_batch(
        self, runs: list[tuple[Any, ...]], ops: list[tuple[str, tuple[Any, ...]]], events: list[Event]
    ) -> None:
        conn = self._wconn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            written = 0
            if runs:
                conn.executemany(_UPSERT_RUN, runs)
                written += sum(_row_bytes(r) for r in runs)
            _execute_grouped(conn, ops)
            written += sum(_row_bytes(p) for _, p in ops)
            if events:
                rows = [
                    (e.seq, e.run_id, e.run_seq, e.conversation_id, e.type, _dumps(e.data), e.ts)
                    for e in events
                ]
                written += sum(_row_bytes(r) for r in rows)
                conn.executemany(_INSERT_EVENT, rows)
            conn.execute("COMMIT")
            self.bytes_written += written
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _batch_done(
        self, future: asyncio.Future[None], events: list[Event], waiters: list[asyncio.Future[None]]
    ) -> None:
        error = future.exception()
        if error is not None:
            log.error("store commit failed: %s", error, exc_info=error)
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
        if error is None and events and self.on_events_committed is not None:
            try:
                self.on_events_committed(events)
            except Exception:  # a subscriber bug must not stop the store
                log.exception("event delivery failed")
        inflight, self._inflight = self._inflight, None
        if inflight is not None and not inflight.done():
            inflight.set_result(None)
        if self._runs or self._ops or self._events or self._waiters:
            self._kick()

    # -- reads (reader thread, after a flush so earlier writes are visible) ----------------
    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        await self.flush()
        assert self._loop is not None and self._reader is not None and self._rconn is not None
        conn = self._rconn
        return await self._loop.run_in_executor(self._reader, fn, conn)

    async def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        args = tuple(params)
        return await self.read(lambda c: c.execute(sql, args).fetchall())

    async def get_run(self, run_id: str) -> Run | None:
        rows = await self.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return row_to_run(rows[0]) if rows else None

    async def max_event_seq(self) -> int:
        rows = await self.query("SELECT COALESCE(MAX(seq), 0) AS m FROM events")
        return int(rows[0]["m"])

    async def events_since(
        self,
        since: int,
        *,
        run_id: str | None = None,
        conversation_id: str | None = None,
        limit: int = 10_000,
    ) -> list[Event]:
        sql = "SELECT * FROM events WHERE seq > ?"
        params: list[Any] = [since]
        if run_id is not None:
            sql += " AND run_id = ?"
            params.append(run_id)
        if conversation_id is not None:
            sql += " AND conversation_id = ?"
            params.append(conversation_id)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        return [row_to_event(r) for r in await self.query(sql, params)]

    async def run_events(self, run_id: str, since_run_seq: int, limit: int = 10_000) -> list[Event]:
        rows = await self.query(
            "SELECT * FROM events WHERE run_id = ? AND run_seq > ? ORDER BY run_seq LIMIT ?",
            (run_id, since_run_seq, limit),
        )
        return [row_to_event(r) for r in rows]

    async def attempts(self, run_id: str) -> list[Attempt]:
        rows = await self.query("SELECT * FROM attempts WHERE run_id = ? ORDER BY number", (run_id,))
        return [
            Attempt(
                run_id=r["run_id"],
                number=r["number"],
                status=r["status"],
                started_at=r["started_at"],
                finished_at=r["finished_at"],
                error=_loads(r["error"]),
            )
            for r in rows
        ]

    async def logs(self, run_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await self.query(
            "SELECT * FROM logs WHERE run_id = ? ORDER BY id LIMIT ?", (run_id, limit)
        )
        return [
            {
                "attempt": r["attempt"],
                "ts": r["ts"],
                "level": r["level"],
                "message": r["message"],
                "data": _loads(r["data"]),
            }
            for r in rows
        ]

    # -- key/value, for small durable state of other parts (chat, kernels) ------------------
    def kv_put(self, ns: str, key: str, value: Any, ts: float) -> None:
        self.execute(
            "INSERT INTO kv (ns, key, value, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT(ns, key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
            (ns, key, _dumps(value), ts),
        )

    def kv_delete(self, ns: str, key: str) -> None:
        self.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))

    async def kv_get(self, ns: str, key: str) -> Any:
        rows = await self.query("SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, key))
        return _loads(rows[0]["value"]) if rows else None


_SIZED_TYPES = frozenset({str, bytes})


def _row_bytes(params: Any) -> int:
    """Approximate payload size of one written row: its text and blob values.

    Runs in the writer thread for every row, while holding the GIL the event loop needs: an
    exact-type set lookup and a list sum cost a third of ``isinstance`` in a generator."""
    if isinstance(params, dict):
        params = params.values()
    return sum([len(v) for v in params if v.__class__ in _SIZED_TYPES])


def _execute_grouped(conn: sqlite3.Connection, ops: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Run statements in order, batching runs of the same statement into one executemany."""
    i = 0
    while i < len(ops):
        sql = ops[i][0]
        j = i
        while j < len(ops) and ops[j][0] == sql:
            j += 1
        if sql is _CALL:
            for _, (fn, outcome) in ops[i:j]:
                _run_call(conn, fn, outcome)
        elif j - i == 1:
            conn.execute(sql, ops[i][1])
        else:
            conn.executemany(sql, [p for _, p in ops[i:j]])
        i = j


def _run_call(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any], outcome: list[tuple[bool, Any]]) -> None:
    """One :meth:`SqliteStore.write` call, in a savepoint so its failure stays its own."""
    conn.execute("SAVEPOINT polaris_write")
    try:
        result = fn(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO polaris_write")
        conn.execute("RELEASE polaris_write")
        outcome.append((False, exc))
    else:
        conn.execute("RELEASE polaris_write")
        outcome.append((True, result))
