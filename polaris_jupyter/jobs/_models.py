"""Data types of the job engine: statuses, retry policy, runs, attempts, events.

Times inside the engine are float epoch seconds (``*_at``); the REST layer renders them as
ISO-8601. Field names follow Trigger.dev's concepts so the two are easy to map.
"""

from __future__ import annotations

import enum
import math
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from polaris_jupyter.errors import Conflict, InvalidInput, NotFound, PolarisError

__all__ = [
    "FINAL_STATUSES",
    "KEY_RELEASING_STATUSES",
    "AbortTaskError",
    "Attempt",
    "Conflict",
    "EngineError",
    "Event",
    "InvalidInput",
    "RetryPolicy",
    "Run",
    "RunNotFound",
    "RunStatus",
    "Suspend",
    "TaskNotFound",
    "TriggerOptions",
    "iso",
    "new_id",
]


class RunStatus(str, enum.Enum):
    """The run statuses of Trigger.dev: WAITING is a run suspended at a wait point (an approval,
    DESIGN §10), holding no worker slot until :meth:`Engine.resume` or its timeout continues it."""

    QUEUED = "QUEUED"
    DELAYED = "DELAYED"
    EXECUTING = "EXECUTING"
    WAITING = "WAITING"
    REATTEMPTING = "REATTEMPTING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    CRASHED = "CRASHED"
    TIMED_OUT = "TIMED_OUT"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELED,
        RunStatus.CRASHED,
        RunStatus.TIMED_OUT,
        RunStatus.EXPIRED,
    }
)
#: A run ending in one of these gives its idempotency key back (a new trigger makes a new run).
KEY_RELEASING_STATUSES = FINAL_STATUSES - {RunStatus.COMPLETED}


#: The engine's errors are the package's one error family (``polaris_jupyter.errors``).
EngineError = PolarisError


class TaskNotFound(NotFound):
    """No task is registered under that id."""


class RunNotFound(NotFound):
    """No run has that id."""


class AbortTaskError(Exception):
    """Raise inside a task to fail the run at once, without retries."""


class Suspend(Exception):
    """Raise inside a task to suspend its run at a wait point (Trigger.dev's waitpoint token).

    The attempt ends in WAITING and gives its worker slot back; the run stays unfinished (on
    disk, also across restarts) until :meth:`Engine.resume` continues it, or until
    ``timeout_s`` (on the engine's clock) passes, which continues it too, so the task itself
    sees the deadline and decides what it means. The continuation is the same attempt (same
    number, no ``on_start``): the task finds what it saved with ``ctx.save_checkpoint`` before
    raising, and goes on from there.
    """

    def __init__(self, reason: str, *, timeout_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timeout_s = timeout_s


@dataclass(frozen=True)
class RetryPolicy:
    """Trigger.dev's retry options; ``delay_s(n)`` is the wait after failed attempt ``n``."""

    max_attempts: int = 3
    factor: float = 2.0
    min_timeout_s: float = 1.0
    max_timeout_s: float = 60.0
    randomize: bool = True

    def delay_s(self, attempt: int, rand: float | None = None) -> float:
        """``min(max, (1 + rand if randomize else 1) * min * factor**(attempt - 1))``."""
        if rand is None:
            rand = secrets.randbelow(1_000_000) / 1_000_000
        scale = (1.0 + rand) if self.randomize else 1.0
        raw = scale * self.min_timeout_s * math.pow(self.factor, max(attempt, 1) - 1)
        return min(self.max_timeout_s, raw)

    def to_json(self) -> dict[str, Any]:
        return {
            "maxAttempts": self.max_attempts,
            "factor": self.factor,
            "minTimeoutInMs": int(self.min_timeout_s * 1000),
            "maxTimeoutInMs": int(self.max_timeout_s * 1000),
            "randomize": self.randomize,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], base: RetryPolicy | None = None) -> RetryPolicy:
        base = base or cls()
        return cls(
            max_attempts=int(data.get("maxAttempts", base.max_attempts)),
            factor=float(data.get("factor", base.factor)),
            min_timeout_s=float(data.get("minTimeoutInMs", base.min_timeout_s * 1000)) / 1000,
            max_timeout_s=float(data.get("maxTimeoutInMs", base.max_timeout_s * 1000)) / 1000,
            randomize=bool(data.get("randomize", base.randomize)),
        )


@dataclass
class TriggerOptions:
    """Per-trigger options (Trigger.dev's ``options`` object)."""

    delay_s: float | None = None
    delay_until: float | None = None
    ttl_s: float | None = None
    idempotency_key: str | None = None
    idempotency_key_ttl_s: float | None = None
    idempotency_scope: str = "global"
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    concurrency_key: str | None = None
    queue: str | None = None
    max_attempts: int | None = None
    max_duration_s: float | None = None
    conversation_id: str | None = None


def new_id(prefix: str) -> str:
    """A sortable unique id: millisecond time in hex, then random bits."""
    return f"{prefix}_{int(time.time() * 1000):011x}{secrets.token_hex(6)}"


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Attempt:
    run_id: str
    number: int
    status: str
    started_at: float
    finished_at: float | None = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "status": self.status,
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
            "durationMs": None
            if self.finished_at is None
            else round((self.finished_at - self.started_at) * 1000, 3),
            "error": self.error,
        }


@dataclass
class Run:
    """One execution request of a task, with everything needed to resume it after a crash."""

    id: str
    task_id: str
    status: RunStatus
    payload: Any
    created_at: float
    updated_at: float
    queue: str = "default"
    max_attempts: int = 3
    attempt_count: int = 0
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    delay_until: float | None = None
    ttl_s: float | None = None
    next_attempt_at: float | None = None
    idempotency_key: str | None = None
    idempotency_expires_at: float | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    concurrency_key: str | None = None
    replayed_from: str | None = None
    batch_id: str | None = None
    schedule_id: str | None = None
    parent_run_id: str | None = None
    conversation_id: str | None = None
    checkpoints: dict[str, Any] = field(default_factory=dict)
    max_duration_s: float | None = None
    waiting_reason: str | None = None
    num: int | None = None

    @property
    def expires_at(self) -> float | None:
        """When a run that has not started yet becomes EXPIRED (ttl counts from when it is due)."""
        if self.ttl_s is None:
            return None
        return (self.delay_until or self.created_at) + self.ttl_s

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at) * 1000, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "taskId": self.task_id,
            "status": self.status.value,
            "payload": self.payload,
            "output": self.output,
            "error": self.error,
            "attemptCount": self.attempt_count,
            "maxAttempts": self.max_attempts,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
            "delayUntil": iso(self.delay_until),
            "nextAttemptAt": iso(self.next_attempt_at),
            "ttlS": self.ttl_s,
            "expiresAt": iso(self.expires_at),
            "idempotencyKey": self.idempotency_key,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "concurrencyKey": self.concurrency_key,
            "queue": self.queue,
            "durationMs": self.duration_ms,
            "replayedFrom": self.replayed_from,
            "batchId": self.batch_id,
            "scheduleId": self.schedule_id,
            "parentRunId": self.parent_run_id,
            "conversationId": self.conversation_id,
            "maxDurationS": self.max_duration_s,
            "waitingReason": self.waiting_reason,
            "checkpoints": sorted(self.checkpoints),
        }


@dataclass
class Event:
    """One entry of the append-only event log. ``seq`` is global; ``run_seq`` counts per run."""

    seq: int
    type: str
    data: dict[str, Any]
    ts: float
    run_id: str | None = None
    run_seq: int | None = None
    conversation_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "runId": self.run_id,
            "runSeq": self.run_seq,
            "conversationId": self.conversation_id,
            "type": self.type,
            "data": self.data,
            "ts": iso(self.ts),
        }
