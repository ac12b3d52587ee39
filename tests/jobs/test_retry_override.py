"""Errors steer the retry: ``retryable = False`` fails the run at once (like AbortTaskError), and
``retry_after_s`` (a server's Retry-After) delays the next attempt beyond the policy's delay,
never below it. FakeClock, no sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from polaris_jupyter.jobs import (
    AbortTaskError,
    FakeClock,
    InvalidInput,
    RetryPolicy,
    RunContext,
    RunStatus,
    TaskRegistry,
    is_retryable,
    retry_delay_s,
    task,
)


class ServerSaid(Exception):
    def __init__(self, message: str, *, retryable: bool = True, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


async def until(predicate: Any, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


def test_classification() -> None:
    assert is_retryable(RuntimeError("x")) and is_retryable(ServerSaid("503"))
    assert not is_retryable(ServerSaid("401", retryable=False))
    assert not is_retryable(AbortTaskError("x")) and not is_retryable(InvalidInput("x"))
    assert retry_delay_s(ServerSaid("429", retry_after_s=30), 2.0) == 30
    assert retry_delay_s(ServerSaid("429", retry_after_s=0.5), 2.0) == 2.0  # never sooner than the policy
    assert retry_delay_s(ServerSaid("429", retry_after_s=float("nan")), 2.0) == 2.0
    assert retry_delay_s(RuntimeError("x"), 2.0) == 2.0


@pytest.mark.asyncio
async def test_not_retryable_error_fails_the_run_at_once(make_engine: Any, registry: TaskRegistry) -> None:
    calls = 0

    @task(id="rejected", registry=registry, retry=RetryPolicy(max_attempts=3, min_timeout_s=0.01))
    async def rejected(payload: Any, ctx: RunContext) -> None:
        nonlocal calls
        calls += 1
        raise ServerSaid("OPENAI_API_KEY was rejected", retryable=False)

    engine = await make_engine()
    result = await engine.trigger_and_wait("rejected")
    assert result.run.status is RunStatus.FAILED and result.run.attempt_count == 1 and calls == 1
    assert result.error and result.error["message"] == "OPENAI_API_KEY was rejected"


@pytest.mark.asyncio
async def test_retry_after_delays_the_next_attempt(make_engine: Any, registry: TaskRegistry) -> None:
    clock = FakeClock()
    starts: list[float] = []

    @task(id="limited", registry=registry,
          retry=RetryPolicy(max_attempts=2, factor=2, min_timeout_s=1, randomize=False))
    async def limited(payload: Any, ctx: RunContext) -> str:
        starts.append(clock.now())
        if ctx.attempt == 1:
            raise ServerSaid("429 slow down", retry_after_s=30)
        return "done"

    engine = await make_engine(clock=clock)
    handle = await engine.trigger("limited")
    await until(lambda: handle.id in engine._active and engine._active[handle.id].status is RunStatus.REATTEMPTING)
    run = await engine.get_run(handle.id)
    assert run.next_attempt_at == pytest.approx(starts[0] + 30), "the server's wait, not the policy's 1 s"
    clock.advance(29.9)
    await asyncio.sleep(0.05)
    assert len(starts) == 1, "retried before the server's Retry-After"
    clock.advance(0.2)
    result = await handle.result(timeout_s=5)
    assert result.ok and result.output == "done" and result.run.attempt_count == 2
