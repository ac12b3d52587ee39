"""The store's core tables and how runs, attempts, logs and events map to their rows.

Kept apart from the store's machinery (``_store.py``: threads, group commit, reads) so that the
shape of the data is read in one place. The core tables are a :class:`Schema` like every other
part's, versioned with ``PRAGMA user_version`` (see ``_schema.py``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from polaris_jupyter.jobs._models import Event, Run, RunStatus
from polaris_jupyter.jobs._schema import CORE_SCHEMA_NAME, Schema

__all__ = ["CORE_SCHEMA", "SCHEMA_VERSION", "row_to_event", "row_to_run", "run_to_row"]

_RUN_COLUMNS = (
    "id",
    "task_id",
    "status",
    "payload",
    "output",
    "error",
    "attempt_count",
    "max_attempts",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "delay_until",
    "ttl_s",
    "next_attempt_at",
    "idempotency_key",
    "idempotency_expires_at",
    "tags",
    "metadata",
    "concurrency_key",
    "queue",
    "replayed_from",
    "batch_id",
    "schedule_id",
    "parent_run_id",
    "conversation_id",
    "checkpoints",
    "max_duration_s",
    "waiting_reason",
)

_CORE_BASELINE: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS runs (
  num INTEGER PRIMARY KEY AUTOINCREMENT,
  {", ".join(c + (" TEXT UNIQUE NOT NULL" if c == "id" else "") for c in _RUN_COLUMNS)}
)""",
    "CREATE INDEX IF NOT EXISTS runs_status ON runs(status)",
    "CREATE INDEX IF NOT EXISTS runs_task ON runs(task_id, num)",
    "CREATE INDEX IF NOT EXISTS runs_idem ON runs(task_id, idempotency_key) WHERE idempotency_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS runs_conv ON runs(conversation_id) WHERE conversation_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS runs_finished ON runs(finished_at)",
    """CREATE TABLE IF NOT EXISTS attempts (
  run_id TEXT NOT NULL, number INTEGER NOT NULL, status TEXT, started_at REAL, finished_at REAL,
  error TEXT, PRIMARY KEY (run_id, number)
)""",
    """CREATE TABLE IF NOT EXISTS logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, attempt INTEGER, ts REAL,
  level TEXT, message TEXT, data TEXT
)""",
    "CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id, id)",
    """CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY, run_id TEXT, run_seq INTEGER, conversation_id TEXT, type TEXT,
  data TEXT, ts REAL
)""",
    "CREATE INDEX IF NOT EXISTS events_run ON events(run_id, run_seq)",
    "CREATE INDEX IF NOT EXISTS events_conv ON events(conversation_id, seq) WHERE conversation_id IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS kv (
  ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT, updated_at REAL, PRIMARY KEY (ns, key)
)""",
    "CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    # The unversioned code kept a 'schema_version' row here; user_version replaces it.
    "DROP TABLE IF EXISTS meta",
)

#: The store's own tables (versioned with ``PRAGMA user_version``). Version 1 is the baseline
#: of the unversioned code; append migrations, never edit a released one.
CORE_SCHEMA = Schema(CORE_SCHEMA_NAME, migrations=(_CORE_BASELINE,))
SCHEMA_VERSION = CORE_SCHEMA.version

_UPSERT_RUN = (
    f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' for _ in _RUN_COLUMNS)}) "
    f"ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in _RUN_COLUMNS[1:])}"
)
_INSERT_EVENT = "INSERT INTO events (seq, run_id, run_seq, conversation_id, type, data, ts) VALUES (?,?,?,?,?,?,?)"
_UPSERT_ATTEMPT = (
    "INSERT INTO attempts (run_id, number, status, started_at, finished_at, error) VALUES (?,?,?,?,?,?) "
    "ON CONFLICT(run_id, number) DO UPDATE SET status=excluded.status, finished_at=excluded.finished_at, "
    "error=excluded.error"
)
_INSERT_LOG = "INSERT INTO logs (run_id, attempt, ts, level, message, data) VALUES (?,?,?,?,?,?)"


_EMPTY_JSON: dict[type, str] = {list: "[]", dict: "{}"}


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    if not value and type(value) in _EMPTY_JSON:
        return _EMPTY_JSON[type(value)]
    return json.dumps(value, separators=(",", ":"), default=str)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def run_to_row(run: Run) -> tuple[Any, ...]:
    return (
        run.id,
        run.task_id,
        run.status.value,
        _dumps(run.payload),
        _dumps(run.output),
        _dumps(run.error),
        run.attempt_count,
        run.max_attempts,
        run.created_at,
        run.updated_at,
        run.started_at,
        run.finished_at,
        run.delay_until,
        run.ttl_s,
        run.next_attempt_at,
        run.idempotency_key,
        run.idempotency_expires_at,
        _dumps(run.tags),
        _dumps(run.metadata),
        run.concurrency_key,
        run.queue,
        run.replayed_from,
        run.batch_id,
        run.schedule_id,
        run.parent_run_id,
        run.conversation_id,
        _dumps(run.checkpoints),
        run.max_duration_s,
        run.waiting_reason,
    )


def row_to_run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        task_id=row["task_id"],
        status=RunStatus(row["status"]),
        payload=_loads(row["payload"]),
        output=_loads(row["output"]),
        error=_loads(row["error"]),
        attempt_count=row["attempt_count"],
        max_attempts=row["max_attempts"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        delay_until=row["delay_until"],
        ttl_s=row["ttl_s"],
        next_attempt_at=row["next_attempt_at"],
        idempotency_key=row["idempotency_key"],
        idempotency_expires_at=row["idempotency_expires_at"],
        tags=_loads(row["tags"]) or [],
        metadata=_loads(row["metadata"]) or {},
        concurrency_key=row["concurrency_key"],
        queue=row["queue"] or "default",
        replayed_from=row["replayed_from"],
        batch_id=row["batch_id"],
        schedule_id=row["schedule_id"],
        parent_run_id=row["parent_run_id"],
        conversation_id=row["conversation_id"],
        checkpoints=_loads(row["checkpoints"]) or {},
        max_duration_s=row["max_duration_s"],
        waiting_reason=row["waiting_reason"],
        num=row["num"],
    )


def row_to_event(row: sqlite3.Row) -> Event:
    return Event(
        seq=row["seq"],
        type=row["type"],
        data=_loads(row["data"]) or {},
        ts=row["ts"],
        run_id=row["run_id"],
        run_seq=row["run_seq"],
        conversation_id=row["conversation_id"],
    )
