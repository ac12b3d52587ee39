"""Read-side queries over the store: run listing with cursor paging, metrics, retention."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from polaris_jupyter.jobs._models import FINAL_STATUSES, InvalidInput, Run, RunStatus
from polaris_jupyter.jobs._store import SqliteStore, row_to_run

__all__ = ["RunFilter", "RunPage", "delete_finished_before", "list_runs", "task_metrics"]

MAX_PAGE = 500


@dataclass
class RunFilter:
    statuses: list[RunStatus] | None = None
    task_id: str | None = None
    tag: str | None = None
    conversation_id: str | None = None
    batch_id: str | None = None


@dataclass
class RunPage:
    data: list[Run]
    next_cursor: str | None


def parse_statuses(text: str | None) -> list[RunStatus] | None:
    if not text:
        return None
    out = []
    for part in text.split(","):
        try:
            out.append(RunStatus(part.strip().upper()))
        except ValueError as exc:
            names = ", ".join(s.value for s in RunStatus)
            raise InvalidInput(f"unknown status {part!r}; use one of {names}") from exc
    return out


async def list_runs(store: SqliteStore, flt: RunFilter, cursor: str | None, limit: int) -> RunPage:
    """Newest first. ``cursor`` is opaque to clients (the ``num`` of the last run returned)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    where: list[str] = []
    params: list[Any] = []
    if cursor:
        if not cursor.isdigit():
            raise InvalidInput("cursor is not valid; pass back the nextCursor of the previous page")
        where.append("num < ?")
        params.append(int(cursor))
    if flt.statuses:
        where.append(f"status IN ({','.join('?' * len(flt.statuses))})")
        params.extend(s.value for s in flt.statuses)
    if flt.task_id:
        where.append("task_id = ?")
        params.append(flt.task_id)
    if flt.conversation_id:
        where.append("conversation_id = ?")
        params.append(flt.conversation_id)
    if flt.batch_id:
        where.append("batch_id = ?")
        params.append(flt.batch_id)
    if flt.tag:
        where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE json_each.value = ?)")
        params.append(flt.tag)
    sql = "SELECT * FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY num DESC LIMIT ?"
    params.append(limit + 1)
    rows = await store.query(sql, params)
    runs = [row_to_run(r) for r in rows[:limit]]
    next_cursor = str(runs[-1].num) if len(rows) > limit and runs else None
    return RunPage(runs, next_cursor)


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _usage(conn: sqlite3.Connection, clause: str, params: list[Any]) -> dict[str, dict[str, Any]]:
    """Per task, the model usage its runs reported in their output (``output.usage``:
    promptTokens, completionTokens, costUsd), summed. A cost is summed over the runs that
    have one; ``costUsd`` stays None when no run has one (unknown is never 0)."""
    where = f"{clause}{' AND' if clause else ' WHERE'} json_valid(output)"
    out: dict[str, dict[str, Any]] = {}
    for row in conn.execute(
        "SELECT task_id, COUNT(p) AS n, SUM(p) AS p, SUM(c) AS c, COUNT(cost) AS priced, SUM(cost) AS cost FROM "
        "(SELECT task_id, json_extract(output, '$.usage.promptTokens') AS p, "
        "json_extract(output, '$.usage.completionTokens') AS c, json_extract(output, '$.usage.costUsd') AS cost "
        f"FROM runs{where}) GROUP BY task_id",
        params,
    ):
        if row["n"]:
            out[row["task_id"]] = {
                "runs": row["n"], "promptTokens": int(row["p"] or 0), "completionTokens": int(row["c"] or 0),
                "costUsd": None if not row["priced"] else round(float(row["cost"]), 8),
                "unpricedRuns": row["n"] - row["priced"],
            }
    return out


def _metrics(conn: sqlite3.Connection, task_id: str | None, since: float | None, bucket_s: float) -> dict[str, Any]:
    where: list[str] = []
    params: list[Any] = []
    if task_id:
        where.append("task_id = ?")
        params.append(task_id)
    if since is not None:
        where.append("created_at >= ?")
        params.append(since)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    per_task: dict[str, dict[str, Any]] = {}
    for row in conn.execute(
        f"SELECT task_id, status, COUNT(*) AS n, SUM(attempt_count) AS attempts, "
        f"SUM(MAX(attempt_count - 1, 0)) AS retries FROM runs{clause} GROUP BY task_id, status",
        params,
    ):
        entry = per_task.setdefault(
            row["task_id"], {"taskId": row["task_id"], "counts": {}, "attempts": 0, "retries": 0, "usage": None}
        )
        entry["counts"][row["status"]] = row["n"]
        entry["attempts"] += row["attempts"] or 0
        entry["retries"] += row["retries"] or 0
    durations: dict[str, list[float]] = {}
    for row in conn.execute(
        f"SELECT task_id, (finished_at - started_at) * 1000.0 AS ms FROM runs{clause}"
        f"{' AND' if clause else ' WHERE'} finished_at IS NOT NULL AND started_at IS NOT NULL",
        params,
    ):
        durations.setdefault(row["task_id"], []).append(row["ms"])
    final = {s.value for s in FINAL_STATUSES}
    for tid, entry in per_task.items():
        counts = entry["counts"]
        finished = sum(n for s, n in counts.items() if s in final)
        entry["total"] = sum(counts.values())
        entry["successRate"] = None if not finished else counts.get("COMPLETED", 0) / finished
        values = sorted(durations.get(tid, []))
        p50, p95 = _percentile(values, 0.5), _percentile(values, 0.95)
        entry["durationP50Ms"] = None if p50 is None else round(p50, 3)
        entry["durationP95Ms"] = None if p95 is None else round(p95, 3)
    for tid, usage in _usage(conn, clause, params).items():
        if tid in per_task:
            per_task[tid]["usage"] = usage
    series = [
        {"bucket": row["b"] * bucket_s, "runs": row["n"], "completed": row["ok"], "failed": row["bad"]}
        for row in conn.execute(
            f"SELECT CAST(created_at / ? AS INTEGER) AS b, COUNT(*) AS n, "
            f"SUM(status = 'COMPLETED') AS ok, "
            f"SUM(status IN ('FAILED','CRASHED','TIMED_OUT','EXPIRED')) AS bad FROM runs{clause} "
            f"GROUP BY b ORDER BY b DESC LIMIT 48",
            [bucket_s, *params],
        )
    ]
    series.reverse()
    return {"tasks": sorted(per_task.values(), key=lambda e: e["taskId"]), "series": series}


async def task_metrics(
    store: SqliteStore, task_id: str | None = None, since: float | None = None, bucket_s: float = 3600.0
) -> dict[str, Any]:
    """Per task: counts by status, success rate, duration p50/p95, attempts, retries; plus a series."""
    return await store.read(lambda c: _metrics(c, task_id, since, bucket_s))


async def delete_finished_before(store: SqliteStore, cutoff: float) -> int:
    """Delete final runs finished before ``cutoff`` with their attempts, logs and events."""
    statuses = [s.value for s in FINAL_STATUSES]
    marks = ",".join("?" * len(statuses))
    selector = f"SELECT id FROM runs WHERE finished_at < ? AND status IN ({marks})"
    rows = await store.query(f"SELECT COUNT(*) AS n FROM ({selector})", (cutoff, *statuses))
    count = int(rows[0]["n"])
    if count:
        for table in ("events", "logs", "attempts"):
            store.execute(f"DELETE FROM {table} WHERE run_id IN ({selector})", (cutoff, *statuses))
        store.execute(f"DELETE FROM runs WHERE id IN ({selector})", (cutoff, *statuses))
        await store.commit()
    return count


async def delete_rows_of_deleted_runs(store: SqliteStore, table: str) -> int:
    """Delete a part's per-run rows (proposals, file edits, approvals) whose run is gone.

    Retention deletes runs (:func:`delete_finished_before`, a user's delete); the parts that keep
    rows per run do not hold them for ever after: nothing can revert, apply or decide for a run
    that no longer exists. The part's schema must exist (``store.ensure_schema``)."""
    orphans = f"FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)"
    rows = await store.query(f"SELECT COUNT(*) AS n {orphans}")
    count = int(rows[0]["n"])
    if count:
        store.execute(f"DELETE {orphans}")
        await store.commit()
    return count
