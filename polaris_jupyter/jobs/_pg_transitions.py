"""Row-locked transitions of a run on PostgreSQL, decided in one place.

Each function runs inside the store's ``write(fn)`` (writer thread, a savepoint of the group
commit) and takes the run's row lock first (``SELECT ... FOR UPDATE``), so two processes
deciding about one run are serialized by the database: one starts the attempt, the other sees
it started; a cancel and a start never both win; an idempotency key is claimed in the same
transaction that inserts the run holding it. They return ``(outcome, row before the change)``;
the engine applies the outcome's events and local state on its loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polaris_jupyter.jobs._models import FINAL_STATUSES, KEY_RELEASING_STATUSES, Run
from polaris_jupyter.jobs._pg_store import _UPSERT_RUN_PG, PgConnection
from polaris_jupyter.jobs._rows import _dumps, run_to_row

__all__ = ["Enqueue", "GuardRefused", "advance_run", "cancel_run", "claim_key", "claim_run", "claim_runs", "resume_run"]

_FINAL = {s.value for s in FINAL_STATUSES}
_RELEASING = tuple(s.value for s in KEY_RELEASING_STATUSES)
Outcome = tuple[str, Any]
#: Enqueues the continuation of a released WAITING run (its row) in the caller's transaction.
Enqueue = Callable[[PgConnection, Any], None]


class GuardRefused(Exception):
    """The condition given with a trigger did not hold: no run was created (nothing written)."""


class _KeyTaken(Exception):
    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def claim_key(c: PgConnection, run: Run, now: float, guard: Callable[[PgConnection], bool] | None = None) -> str:
    """Insert ``run`` and give it its idempotency key, unless a run holds the key: one not yet
    expired and not released (failed, expired, canceled, crashed, timed out). Returns the id of
    the run holding the key afterwards (``run.id`` when this one won).

    ``guard(c)`` runs first in the same transaction (e.g. a schedule's slot claimed with a
    compare-and-set); when it returns False nothing is written and :class:`GuardRefused` is raised."""
    try:
        return _claim_key(c, run, now, guard)
    except _KeyTaken as taken:  # rolled back with the savepoint: the losing row is not kept
        return taken.run_id


def _claim_key(c: PgConnection, run: Run, now: float, guard: Callable[[PgConnection], bool] | None) -> str:
    with c.raw.transaction():
        if guard is not None and not guard(c):
            raise GuardRefused(run.id)
        c.raw.execute(_UPSERT_RUN_PG, run_to_row(run))
        if run.idempotency_key is None:
            return run.id
        placeholders = ",".join("?" * len(_RELEASING))
        won = c.execute(
            "INSERT INTO idempotency (task_id, key, run_id, expires_at) VALUES (?,?,?,?) "
            "ON CONFLICT (task_id, key) DO UPDATE SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at "
            "WHERE idempotency.expires_at <= ? OR NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = idempotency.run_id "
            f"AND r.status NOT IN ({placeholders})) RETURNING run_id",
            (run.task_id, run.idempotency_key, run.id, run.idempotency_expires_at, now, *_RELEASING),
        ).fetchone()
        if won is None:
            holder = c.execute(
                "SELECT run_id FROM idempotency WHERE task_id = ? AND key = ?", (run.task_id, run.idempotency_key)
            ).fetchone()
            raise _KeyTaken(holder["run_id"] if holder is not None else run.id)
        return run.id


def _locked(c: PgConnection, run_id: str) -> Any:
    return c.execute("SELECT * FROM runs WHERE id = ? FOR UPDATE", (run_id,)).fetchone()


def _expires_at(row: Any) -> float | None:
    if row["ttl_s"] is None:
        return None
    return float((row["delay_until"] or row["created_at"]) + row["ttl_s"])


def _expire(c: PgConnection, row: Any, now: float) -> Outcome:
    c.execute(
        "UPDATE runs SET status = 'EXPIRED', error = ?, finished_at = ?, updated_at = ?, next_attempt_at = NULL "
        "WHERE id = ?",
        (_dumps({"name": "Expired", "message": "ttl passed before the run started"}), now, now, row["id"]),
    )
    return "expired", row


def claim_run(
    c: PgConnection, run_id: str, executor_id: str, now: float, running_here: bool, alive_since: float,
    known: list[str] | None = None, gone: dict[str, str] | None = None,
) -> Outcome:
    """Decide what a dispatched workflow does with ``run_id`` on ``executor_id``:

    - ``start``: the next attempt is this executor's (row: EXECUTING, attempt + 1, owner);
    - ``restart``: the attempt recorded as EXECUTING belongs to a dead executor (or to this
      executor's previous life): it counts as CRASHED and the next one starts here;
    - ``crashed``: same, but no attempt is left (the run ends CRASHED);
    - ``expired``: the run never started and its ttl has passed;
    - ``continue``: a WAITING run released by :func:`resume_run` goes on as the same attempt
      (row: EXECUTING, same attempt number, owner);
    - ``missing`` / ``final`` / ``duplicate`` (a live executor runs it) / ``early`` (not due, or
      WAITING and not released): nothing to do;
    - ``absent``: the run's task is not one of ``known`` (the tasks of this process): it is
      not started here; a queued run keeps a reason saying so (``gone[task]`` when given: why
      its task went away, e.g. its kernel)."""
    row = _locked(c, run_id)
    if row is None:
        return "missing", None
    status = row["status"]
    if status in _FINAL:
        return "final", None
    if known is not None and row["task_id"] not in known:
        if status == "QUEUED":
            reason = (gone or {}).get(row["task_id"]) or f"dequeued by {executor_id}, which does not have task {row['task_id']!r}"
            c.execute("UPDATE runs SET waiting_reason = ? WHERE id = ?", (reason, run_id))
        return "absent", None
    crashed = False
    if status == "EXECUTING":
        owner = row["executor_id"]
        if owner == executor_id and running_here:
            return "duplicate", None
        if owner is not None and owner != executor_id and c.execute(
            "SELECT 1 FROM workers WHERE executor_id = ? AND last_seen > ?", (owner, alive_since)
        ).fetchone():
            return "duplicate", None
        crashed = True
    elif status == "WAITING":
        if row["waiting_reason"] is not None:
            return "early", None
        c.execute(
            "UPDATE runs SET status = 'EXECUTING', next_attempt_at = NULL, updated_at = ?, executor_id = ? WHERE id = ?",
            (now, executor_id, run_id),
        )
        return "continue", row
    elif status == "DELAYED" and row["delay_until"] is not None and row["delay_until"] > now:
        return "early", None
    elif status == "REATTEMPTING" and row["next_attempt_at"] is not None and row["next_attempt_at"] > now + 1e-6:
        return "early", None
    expires = _expires_at(row)
    if not crashed and row["attempt_count"] == 0 and expires is not None and now >= expires:
        return _expire(c, row, now)
    if crashed and row["attempt_count"] >= row["max_attempts"]:
        c.execute("UPDATE runs SET executor_id = ? WHERE id = ?", (executor_id, run_id))
        return "crashed", row
    c.execute(
        "UPDATE runs SET status = 'EXECUTING', attempt_count = attempt_count + 1, started_at = COALESCE(started_at, ?), "
        "next_attempt_at = NULL, updated_at = ?, executor_id = ?, dispatched_at = COALESCE(dispatched_at, ?), "
        "resume_requested_at = NULL WHERE id = ?",
        (now, now, executor_id, now, run_id),
    )
    return ("restart" if crashed else "start"), row


#: :func:`claim_runs`' one statement for the usual case: a queued run (not expired) or a due
#: retry starts here; returns the rows as they were before (``old``).
_CLAIM_READY = (
    "WITH old AS (SELECT * FROM runs WHERE id = ANY(%s) ORDER BY id FOR UPDATE) "
    "UPDATE runs r SET status = 'EXECUTING', attempt_count = r.attempt_count + 1, "
    "started_at = COALESCE(r.started_at, %s), next_attempt_at = NULL, updated_at = %s, executor_id = %s, "
    "dispatched_at = COALESCE(r.dispatched_at, %s), resume_requested_at = NULL FROM old WHERE r.id = old.id AND ("
    "(old.status = 'QUEUED' AND NOT (old.attempt_count = 0 AND old.ttl_s IS NOT NULL "
    "     AND %s >= COALESCE(old.delay_until, old.created_at) + old.ttl_s)) "
    "OR (old.status = 'REATTEMPTING' AND (old.next_attempt_at IS NULL OR old.next_attempt_at <= %s))"
    ") AND old.task_id = ANY(%s) RETURNING old.*"
)


def claim_runs(
    c: PgConnection, *, items: list[tuple[str, bool]], executor_id: str, now: float, alive_since: float,
    known: list[str], gone: dict[str, str] | None = None,
) -> list[Outcome]:
    """:func:`claim_run` for many ``(run_id, running_here)`` at once, in one transaction: the
    usual case (queued or due for a retry: ``start``) is one statement for all of them; every
    other run goes through :func:`claim_run`. Same outcomes, in the order of ``items``."""
    ids = sorted({run_id for run_id, _ in items})
    params = (ids, now, now, executor_id, now, now, now + 1e-6, known)
    started = {row["id"]: row for row in c.raw.execute(_CLAIM_READY, params)}
    out: list[Outcome] = []
    claimed: set[str] = set()
    for run_id, running_here in items:
        row = started.pop(run_id, None)
        if row is not None:
            out.append(("start", row))
        elif run_id in claimed:  # a second workflow of a run this batch just took
            out.append(("duplicate", None))
        else:
            out.append(claim_run(c, run_id, executor_id, now, running_here, alive_since, known, gone))
        if out[-1][1] is not None:
            claimed.add(run_id)
    return out


def advance_run(c: PgConnection, run_id: str, now: float) -> Outcome:
    """A timer or sweep of any process: ``expired`` (unstarted, ttl passed), ``queued`` (a
    delay is due; row set QUEUED), ``retry`` (a retry is due: dispatch it), or nothing."""
    row = _locked(c, run_id)
    if row is None or row["status"] in _FINAL:
        return "none", None
    expires = _expires_at(row)
    if row["status"] in ("QUEUED", "DELAYED") and row["attempt_count"] == 0 and expires is not None and now >= expires:
        return _expire(c, row, now)
    if row["status"] == "DELAYED" and (row["delay_until"] or 0) <= now:
        c.execute("UPDATE runs SET status = 'QUEUED', updated_at = ? WHERE id = ?", (now, run_id))
        return "queued", row
    if row["status"] == "REATTEMPTING" and (row["next_attempt_at"] or 0) <= now + 1e-6:
        return "retry", row
    return "none", None


def cancel_run(c: PgConnection, run_id: str, now: float) -> Outcome:
    """``canceled`` (it was waiting: now CANCELED), ``executing`` (its executor must stop it),
    or ``final``; ``(missing, None)`` for an unknown id."""
    row = _locked(c, run_id)
    if row is None:
        return "missing", None
    if row["status"] in _FINAL:
        return "final", row
    if row["status"] == "EXECUTING":
        return "executing", row
    c.execute(
        "UPDATE runs SET status = 'CANCELED', error = ?, finished_at = ?, updated_at = ?, next_attempt_at = NULL "
        "WHERE id = ?",
        (_dumps({"name": "Canceled", "message": "the run was canceled"}), now, now, run_id),
    )
    return "canceled", row


def resume_run(c: PgConnection, run_id: str, now: float, enqueue: Enqueue, *, cause: str = "resume") -> Outcome:
    """Continue a run suspended at a wait point, exactly once, whichever process asks.

    ``cause`` is ``resume`` (the owner of the wait point decided), ``due`` (its timeout passed:
    a timer or a sweep) or ``suspended`` (its executor just wrote WAITING and checks for a
    resume that arrived while the attempt was on its way there). Outcomes:

    - ``resumed``: the run was WAITING and not yet released; now it is (``waiting_reason``
      cleared) and its continuation is enqueued in this transaction (``enqueue``), so a
      released run always has a workflow and a second resume finds nothing to do;
    - ``requested``: (``resume`` only) the attempt is still EXECUTING towards its suspension;
      the request is kept in ``resume_requested_at`` (a column the run's upsert never writes),
      and applied by its executor once the WAITING status is committed (``suspended``);
    - ``already`` (released before), ``early`` (not due / nothing requested), ``final``,
      ``missing``, ``not-waiting``."""
    row = _locked(c, run_id)
    if row is None:
        return "missing", None
    status = row["status"]
    if status in _FINAL:
        return "final", None
    if status == "EXECUTING" and cause == "resume":
        c.execute("UPDATE runs SET resume_requested_at = ? WHERE id = ?", (now, run_id))
        return "requested", row
    if status != "WAITING":
        return "not-waiting", None
    if row["waiting_reason"] is None:
        return "already", None
    if cause == "due" and (row["next_attempt_at"] is None or row["next_attempt_at"] > now + 1e-6):
        return "early", None
    if cause == "suspended" and row["resume_requested_at"] is None:
        return "early", None
    c.execute(
        "UPDATE runs SET waiting_reason = NULL, resume_requested_at = NULL, updated_at = ? WHERE id = ?",
        (now, run_id),
    )
    enqueue(c, row)
    return "resumed", row
