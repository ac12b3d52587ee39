"""How an attempt's exception becomes the run's stored error and the retry decision.

One home for the rule both backends (SQLite and PostgreSQL) apply: which errors may be retried,
how long to wait (never sooner than a server's ``Retry-After``), and the error's stored shape.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from typing import Any

from polaris_jupyter.jobs._models import AbortTaskError, InvalidInput

__all__ = ["STACK_TAIL_CHARS", "call_hook", "error_dict", "is_retryable", "retry_delay_s"]

#: The stored traceback keeps its tail: the frames nearest the error are the useful ones.
STACK_TAIL_CHARS = 4000
log = logging.getLogger("polaris_jupyter.jobs")


def error_dict(exc: BaseException) -> dict[str, Any]:
    """The run's ``error``: name, message (the class name when the message is empty), stack tail."""
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"name": type(exc).__name__, "message": str(exc) or type(exc).__name__, "stack": stack[-STACK_TAIL_CHARS:]}


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed attempt may be retried (attempts left permitting): not after
    AbortTaskError or InvalidInput, nor after an error whose ``retryable`` attribute is False
    (a model provider's 401: asking again cannot help)."""
    return not isinstance(exc, (AbortTaskError, InvalidInput)) and getattr(exc, "retryable", True) is not False


def retry_delay_s(exc: BaseException, policy_delay_s: float) -> float:
    """The wait before the next attempt: the policy's, or longer when the error carries
    ``retry_after_s`` (seconds, e.g. a server's ``Retry-After``): never sooner than asked."""
    after = getattr(exc, "retry_after_s", None)
    if isinstance(after, (int, float)) and not isinstance(after, bool) and after == after and after > policy_delay_s:
        return float(after)
    return policy_delay_s


async def call_hook(hook: Any, *args: Any) -> None:
    """Run a lifecycle hook (sync or async); a failing hook is logged, never fails the run."""
    if hook is None:
        return
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("hook %r failed", getattr(hook, "__name__", hook))
