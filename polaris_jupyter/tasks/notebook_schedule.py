"""Schedules of ``run-notebook``: a cron schedule whose payload is a notebook payload.

A schedule's firing is a run whose payload is the engine's envelope (``type``, ``scheduleId``,
``timestamp``, ``lastTimestamp``, ``timezone``, ``catchUp``) with the schedule's own payload under
``payload``; :func:`unwrap_scheduled` gives ``run-notebook`` the notebook payload back. The
payload of a new schedule is checked when the schedule is created (the task's ``check_payload``,
called by the API), so a typo in a path is a 400 now rather than a failed run at 6 in the morning.

Example (REST)::

    POST /polaris/api/v1/schedules
    {"task": "run-notebook", "cron": "0 6 * * *", "timezone": "Europe/Paris",
     "payload": {"path": "reports/daily.ipynb", "parameters": {"n": 3}, "outputs": ["ipynb", "html"]},
     "options": {"maxAttempts": 2}}
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEDULE_ENVELOPE_KEYS", "unwrap_scheduled"]

#: The keys of the envelope a schedule's firing wraps its payload in (``jobs`` schedules).
SCHEDULE_ENVELOPE_KEYS = frozenset({"type", "scheduleId", "timestamp", "lastTimestamp", "timezone", "catchUp", "payload"})
_ENVELOPE_TYPES = ("IMPERATIVE", "DECLARATIVE")


def unwrap_scheduled(payload: Any) -> tuple[Any, dict[str, Any] | None]:
    """``(inner payload, firing)`` for a schedule's firing, ``(payload, None)`` for anything else.

    ``firing`` holds the envelope without the payload (``scheduleId``, ``timestamp`` …)."""
    if (
        isinstance(payload, dict)
        and set(payload) <= SCHEDULE_ENVELOPE_KEYS
        and payload.get("type") in _ENVELOPE_TYPES
        and isinstance(payload.get("scheduleId"), str)
        and "timestamp" in payload
    ):
        firing = {k: v for k, v in payload.items() if k != "payload"}
        return payload.get("payload"), firing
    return payload, None
