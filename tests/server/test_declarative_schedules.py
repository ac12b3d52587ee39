"""A schedule declared in code (the built-in cleanup's) cannot be deleted over REST: it would be
declared again at the next start, so the server refuses with 409 and says where to change it."""

from __future__ import annotations

from typing import Any

from tests.helpers import rest as call


async def test_deleting_a_declared_schedule_is_refused_with_the_reason(jp_fetch: Any, polaris: Any) -> None:
    _, listing = await call(jp_fetch, "schedules")
    cleanup = next(s for s in listing["data"] if s["id"] == "cleanup-daily")
    assert cleanup["declarative"] is True

    status, answer = await call(jp_fetch, "schedules", "cleanup-daily", method="DELETE")
    assert status == 409, answer
    message = answer["message"]
    assert "declared in code" in message and "'cleanup'" in message and "next start" in message

    _, listing = await call(jp_fetch, "schedules")
    assert "cleanup-daily" in {s["id"] for s in listing["data"]}, "nothing was deleted"
