"""Helpers shared by the test folders, written once: the provider environment, waiting on
observable state, REST calls through pytest-jupyter's ``jp_fetch``.

See tests/README.md for how the suite is organised.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from tornado.httpclient import HTTPClientError

__all__ = ["MODEL_ENV", "async_wait_until", "clean_env", "read_events", "rest", "wait_until"]

T = TypeVar("T")

#: Environment variables that would point Polaris at a real model or at another server. The
#: autouse fixture in tests/conftest.py clears them for every test; subprocesses get
#: :func:`clean_env`.
MODEL_ENV = (
    "CEREBRAS_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "OPENROUTER_API_KEY",
    "POLARIS_URL",
    "POLARIS_TOKEN",
    "POLARIS_PROVIDER",
    "POLARIS_MODEL",
    "POLARIS_DB_PATH",
    "POLARIS_ROOT_DIR",
    "POLARIS_BUNDLED_FALLBACK",
)


def clean_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """``base`` without :data:`MODEL_ENV`, plus ``extra`` (for subprocesses)."""
    return {**{k: v for k, v in base.items() if k not in MODEL_ENV}, **extra}


def wait_until(predicate: Callable[[], T], timeout_s: float = 30, what: str = "condition", poll_s: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy (and return that); never a fixed sleep."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(poll_s)


async def async_wait_until(
    predicate: Callable[[], T | Awaitable[T]], timeout_s: float = 30, what: str = "condition", poll_s: float = 0.02
) -> T:
    """:func:`wait_until` for a running event loop; ``predicate`` may be a coroutine function."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(poll_s)


async def rest(jp_fetch: Any, *path: str, method: str = "GET", body: Any = None, raw: bytes | None = None, **kw: Any) -> tuple[int, Any]:
    """A Polaris REST call through ``jp_fetch``: ``(status, json)``, HTTP errors as values."""
    if body is not None:
        kw["body"] = json.dumps(body)
    elif raw is not None:
        kw["body"] = raw
    elif method in ("POST", "PUT", "PATCH"):
        kw["body"] = b""
    try:
        response = await jp_fetch("polaris", "api", "v1", *path, method=method, allow_nonstandard_methods=True, **kw)
    except HTTPClientError as exc:
        if exc.response is None:
            raise
        return exc.code, json.loads(exc.response.body or b"null")
    return response.code, json.loads(response.body) if response.body else None


async def read_events(ws: Any, until: Callable[[dict[str, Any]], bool], timeout_s: float = 20) -> list[dict[str, Any]]:
    """Events from a Polaris event WebSocket up to and including the first for which ``until``
    is true (each frame waited for at most ``timeout_s``)."""
    events: list[dict[str, Any]] = []
    while not events or not until(events[-1]):
        raw = await asyncio.wait_for(ws.read_message(), timeout_s)
        assert raw is not None, "the event socket closed"
        events.append(json.loads(raw))
    return events
