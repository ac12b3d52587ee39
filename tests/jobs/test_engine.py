"""Engine semantics: retries, abort, queues, batch, delay, ttl, idempotency, metadata, hooks,
max duration, cancel, replay. Timing-dependent rows use FakeClock, never sleeps."""

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
    TaskNotFound,
    TaskRegistry,
    TriggerOptions,
    options_from_json,
    options_to_json,
    queue,
    task,
    task_metrics,
)


async def until(predicate: Any, timeout_s: float = 5.0) -> None:
    """Yield to the loop until ``predicate()`` holds (bounded, so a broken feature fails)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


def test_retry_formula_matches_trigger_dev() -> None:
    policy = RetryPolicy(max_attempts=5, factor=2, min_timeout_s=1, max_timeout_s=60, randomize=False)
    assert [policy.delay_s(n) for n in (1, 2, 3, 4, 7, 8)] == [1, 2, 4, 8, 60, 60]
    jittered = RetryPolicy(factor=3, min_timeout_s=2, max_timeout_s=100, randomize=True)
    assert jittered.delay_s(2, rand=0.5) == pytest.approx(1.5 * 2 * 3)
    assert jittered.delay_s(9, rand=0.0) == 100
    assert RetryPolicy() == RetryPolicy(3, 2, 1, 60, True)


@pytest.mark.asyncio
async def test_retry_timing_follows_policy_with_fake_clock(make_engine: Any, registry: TaskRegistry) -> None:
    clock = FakeClock()
    starts: list[float] = []

    @task(id="flaky", registry=registry, retry=RetryPolicy(max_attempts=3, factor=2, min_timeout_s=10, randomize=False))
    async def flaky(payload: Any, ctx: RunContext) -> str:
        starts.append(clock.now())
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt} fails")
        return "done"

    engine = await make_engine(clock=clock)
    handle = await engine.trigger("flaky")
    await until(lambda: len(starts) == 1)
    await until(lambda: engine._active[handle.id].status is RunStatus.REATTEMPTING)
    run = await engine.get_run(handle.id)
    assert run.next_attempt_at == pytest.approx(starts[0] + 10)
    clock.advance(9.9)
    await asyncio.sleep(0.05)
    assert len(starts) == 1, "retried before the delay passed"
    clock.advance(0.2)
    await until(lambda: len(starts) == 2)
    await until(lambda: handle.id in engine._active and engine._active[handle.id].status is RunStatus.REATTEMPTING)
    clock.advance(19.9)  # second delay is 10 * 2
    await asyncio.sleep(0.05)
    assert len(starts) == 2
    clock.advance(0.2)
    result = await handle.result(timeout_s=5)
    assert result.ok and result.output == "done"
    assert result.run.attempt_count == 3
    attempts = await engine.store.attempts(handle.id)
    assert [a.status for a in attempts] == ["FAILED", "FAILED", "COMPLETED"]
    assert attempts[0].error["message"] == "attempt 1 fails"


@pytest.mark.asyncio
async def test_abort_error_fails_without_retry(make_engine: Any, registry: TaskRegistry) -> None:
    calls = 0

    @task(id="abort", registry=registry)
    async def abort(payload: Any, ctx: RunContext) -> None:
        nonlocal calls
        calls += 1
        raise AbortTaskError("bad input, do not retry")

    engine = await make_engine()
    result = await engine.trigger_and_wait("abort")
    assert not result.ok
    assert result.run.status is RunStatus.FAILED
    assert result.error and result.error["message"] == "bad input, do not retry"
    assert calls == 1


@pytest.mark.asyncio
async def test_exhausted_retries_fail_with_last_error(make_engine: Any, registry: TaskRegistry) -> None:
    @task(id="always", registry=registry, retry=RetryPolicy(max_attempts=2, min_timeout_s=0.001, randomize=False))
    async def always(payload: Any, ctx: RunContext) -> None:
        raise ValueError(f"no {ctx.attempt}")

    engine = await make_engine()
    result = await engine.trigger_and_wait("always")
    assert result.run.status is RunStatus.FAILED
    assert result.run.attempt_count == 2
    assert result.error and result.error["message"] == "no 2"


@pytest.mark.asyncio
async def test_queue_concurrency_limit_and_keys(make_engine: Any, registry: TaskRegistry) -> None:
    limited = queue("limited", concurrency_limit=2, registry=registry)
    running = 0
    peak = 0
    per_key: dict[str, int] = {}
    peak_key: dict[str, int] = {}
    gate = asyncio.Event()

    @task(id="limited-task", registry=registry, queue=limited)
    async def limited_task(payload: Any, ctx: RunContext) -> None:
        nonlocal running, peak
        running += 1
        key = ctx.run.concurrency_key or ""
        per_key[key] = per_key.get(key, 0) + 1
        peak = max(peak, running)
        peak_key[key] = max(peak_key.get(key, 0), per_key[key])
        await gate.wait()
        running -= 1
        per_key[key] -= 1

    engine = await make_engine(pool_size=16)
    handles = [await engine.trigger("limited-task", i) for i in range(6)]
    await until(lambda: running == 2)
    await asyncio.sleep(0.02)
    assert running == 2, "queue limit exceeded"
    gate.set()
    for h in handles:
        assert (await h.result(timeout_s=5)).ok
    assert peak == 2

    # With concurrency keys, each key gets its own lane of the queue's limit.
    gate.clear()
    peak = 0
    keyed = [await engine.trigger("limited-task", i, TriggerOptions(concurrency_key=f"user-{i % 2}")) for i in range(8)]
    await until(lambda: running == 4)
    await asyncio.sleep(0.02)
    assert running == 4
    gate.set()
    for h in keyed:
        assert (await h.result(timeout_s=5)).ok
    assert peak_key["user-0"] == 2 and peak_key["user-1"] == 2


@pytest.mark.asyncio
async def test_pool_size_bounds_all_queues(make_engine: Any, registry: TaskRegistry) -> None:
    running = 0
    gate = asyncio.Event()

    @task(id="pooled", registry=registry)
    async def pooled(payload: Any, ctx: RunContext) -> None:
        nonlocal running
        running += 1
        await gate.wait()

    engine = await make_engine(pool_size=3)
    for i in range(5):
        await engine.trigger("pooled", i)
    await until(lambda: running == 3)
    await asyncio.sleep(0.02)
    assert running == 3
    gate.set()
    await engine.drain()
    assert running == 5


@pytest.mark.asyncio
async def test_batch_trigger_limits_and_results(make_engine: Any, registry: TaskRegistry) -> None:
    @task(id="double", registry=registry)
    async def double(payload: Any, ctx: RunContext) -> int:
        return int(payload) * 2

    engine = await make_engine()
    batch = await engine.batch_trigger("double", [(i, None) for i in range(1000)])
    assert len(batch.runs) == 1000
    outputs = [(await h.result(timeout_s=10)).output for h in batch.runs[:5]]
    assert outputs == [0, 2, 4, 6, 8]
    with pytest.raises(InvalidInput, match="at most 1000"):
        await engine.batch_trigger("double", [(i, None) for i in range(1001)])
    with pytest.raises(TaskNotFound):
        await engine.trigger("nope")


@pytest.mark.asyncio
async def test_delay_then_run(make_engine: Any, registry: TaskRegistry) -> None:
    clock = FakeClock()

    @task(id="later", registry=registry)
    async def later(payload: Any, ctx: RunContext) -> float:
        return clock.now()

    engine = await make_engine(clock=clock)
    handle = await engine.trigger("later", None, TriggerOptions(delay_s=60))
    run = await engine.get_run(handle.id)
    assert run.status is RunStatus.DELAYED
    clock.advance(59)
    await asyncio.sleep(0.05)
    assert (await engine.get_run(handle.id)).status is RunStatus.DELAYED
    clock.advance(2)
    result = await handle.result(timeout_s=5)
    assert result.ok and result.output >= run.created_at + 60


@pytest.mark.asyncio
async def test_ttl_expires_runs_that_never_started(make_engine: Any, registry: TaskRegistry) -> None:
    clock = FakeClock()
    gate = asyncio.Event()

    @task(id="blocker", registry=registry)
    async def blocker(payload: Any, ctx: RunContext) -> None:
        await gate.wait()

    engine = await make_engine(clock=clock, pool_size=1)
    first = await engine.trigger("blocker")
    waiting = await engine.trigger("blocker", None, TriggerOptions(ttl_s=30))
    delayed = await engine.trigger("blocker", None, TriggerOptions(ttl_s=30, delay_s=100))
    clock.advance(31)
    run = await engine.wait_for(waiting.id, timeout_s=5)
    assert run.status is RunStatus.EXPIRED
    assert (await engine.get_run(delayed.id)).status is RunStatus.DELAYED  # ttl counts from due time
    gate.set()
    assert (await first.result(timeout_s=5)).ok
    clock.advance(70)  # due at +100, still inside its 30 s ttl window
    assert (await delayed.result(timeout_s=5)).ok
    late = await engine.trigger("blocker", None, TriggerOptions(ttl_s=30, delay_s=100))
    clock.advance(131)  # due and past its ttl in the same tick: it must expire, not start
    assert (await engine.wait_for(late.id, timeout_s=5)).status is RunStatus.EXPIRED


@pytest.mark.asyncio
async def test_idempotency_keys(make_engine: Any, registry: TaskRegistry) -> None:
    clock = FakeClock()
    fail = True
    both_triggered = asyncio.Event()

    @task(id="idem", registry=registry, retry=RetryPolicy(max_attempts=1))
    async def idem(payload: Any, ctx: RunContext) -> str:
        await both_triggered.wait()  # still in progress while the second trigger arrives
        if fail:
            raise ValueError("first time fails")
        return "ok"

    engine = await make_engine(clock=clock)
    opts = TriggerOptions(idempotency_key="order-1", idempotency_key_ttl_s=3600)
    a, b = await asyncio.gather(engine.trigger("idem", 1, opts), engine.trigger("idem", 1, opts))
    both_triggered.set()
    assert a.id == b.id and (a.is_cached or b.is_cached)
    assert (await a.result(timeout_s=5)).run.status is RunStatus.FAILED
    fail = False
    c = await engine.trigger("idem", 1, opts)  # failed runs release the key
    assert c.id != a.id and not c.is_cached
    assert (await c.result(timeout_s=5)).ok
    d = await engine.trigger("idem", 1, opts)  # completed runs keep it
    assert d.id == c.id and d.is_cached
    clock.advance(3601)  # the key expires
    e = await engine.trigger("idem", 1, opts)
    assert e.id != c.id


@pytest.mark.asyncio
async def test_tags_metadata_logs_and_hooks(make_engine: Any, registry: TaskRegistry) -> None:
    seen: list[str] = []

    @task(
        id="meta",
        registry=registry,
        on_start=lambda p, ctx: seen.append("start"),
        on_success=lambda p, out, ctx: seen.append(f"success:{out}"),
    )
    async def meta(payload: Any, ctx: RunContext) -> str:
        ctx.metadata.set("phase", "working")
        ctx.metadata.increment("count", 2)
        ctx.metadata.increment("count")
        ctx.metadata.append("files", "a.py")
        ctx.metadata.append("files", "b.py")
        ctx.logger.info("hello", data={"x": 1})
        ctx.logger.error("careful")
        return "fine"

    engine = await make_engine()
    handle = await engine.trigger("meta", None, TriggerOptions(tags=["user:1", "kind:test"], metadata={"from": "test"}))
    result = await handle.result(timeout_s=5)
    assert seen == ["start", "success:fine"]
    stored = await engine.store.get_run(handle.id)
    assert stored is not None
    assert stored.metadata == {"from": "test", "phase": "working", "count": 3, "files": ["a.py", "b.py"]}
    assert stored.tags == ["user:1", "kind:test"]
    logs = await engine.store.logs(handle.id)
    assert [(entry["level"], entry["message"]) for entry in logs] == [("info", "hello"), ("error", "careful")]
    assert logs[0]["data"] == {"x": 1}
    assert result.run.status is RunStatus.COMPLETED
    with pytest.raises(InvalidInput):
        await engine.trigger("meta", None, TriggerOptions(tags=[f"t{i}" for i in range(11)]))


@pytest.mark.asyncio
async def test_failure_and_cancel_hooks(make_engine: Any, registry: TaskRegistry) -> None:
    seen: list[str] = []
    started = asyncio.Event()

    @task(id="fails", registry=registry, retry=RetryPolicy(max_attempts=1), on_failure=lambda p, e, c: seen.append(f"failure:{e}"))
    async def fails(payload: Any, ctx: RunContext) -> None:
        raise RuntimeError("nope")

    @task(id="waits", registry=registry, on_cancel=lambda p, c: seen.append("cancel"))
    async def waits(payload: Any, ctx: RunContext) -> None:
        started.set()
        await asyncio.sleep(3600)

    engine = await make_engine()
    await engine.trigger_and_wait("fails")
    handle = await engine.trigger("waits")
    await started.wait()
    await engine.cancel(handle.id)
    assert seen == ["failure:nope", "cancel"]


@pytest.mark.asyncio
async def test_max_duration_times_out(make_engine: Any, registry: TaskRegistry) -> None:
    @task(id="slow", registry=registry, max_duration_s=0.05)
    async def slow(payload: Any, ctx: RunContext) -> None:
        await asyncio.sleep(30)

    @task(id="own-timeout", registry=registry, retry=RetryPolicy(max_attempts=1))
    async def own_timeout(payload: Any, ctx: RunContext) -> None:
        raise TimeoutError("the task's own timeout is an ordinary failure")

    engine = await make_engine()
    result = await engine.trigger_and_wait("slow")
    assert result.run.status is RunStatus.TIMED_OUT
    assert result.error and "max duration" in result.error["message"]
    other = await engine.trigger_and_wait("own-timeout")
    assert other.run.status is RunStatus.FAILED


@pytest.mark.asyncio
async def test_cancel_really_stops_the_coroutine(make_engine: Any, registry: TaskRegistry) -> None:
    started = asyncio.Event()
    cleaned_up = asyncio.Event()
    reached_end = False

    @task(id="long", registry=registry)
    async def long(payload: Any, ctx: RunContext) -> None:
        nonlocal reached_end
        started.set()
        try:
            await asyncio.sleep(3600)
            reached_end = True
        finally:
            cleaned_up.set()

    engine = await make_engine()
    handle = await engine.trigger("long")
    await started.wait()
    run = await engine.cancel(handle.id)
    assert run.status is RunStatus.CANCELED
    assert cleaned_up.is_set() and not reached_end
    assert engine._executing == 0
    # Cancelling a queued run, and a final run (no-op), and an unknown one.
    queued = await engine.trigger("long", None, TriggerOptions(delay_s=3600))
    assert (await engine.cancel(queued.id)).status is RunStatus.CANCELED
    assert (await engine.cancel(handle.id)).status is RunStatus.CANCELED
    with pytest.raises(Exception, match="no run"):
        await engine.cancel("run_missing")


@pytest.mark.asyncio
async def test_replay_and_resume_checkpoints(make_engine: Any, registry: TaskRegistry) -> None:
    executed: list[str] = []

    @task(id="steps", registry=registry, retry=RetryPolicy(max_attempts=1))
    async def steps(payload: Any, ctx: RunContext) -> list[str]:
        for name in ("a", "b", "c"):
            if ctx.checkpoint(name):
                continue
            if name == "c" and payload.get("fail"):
                raise RuntimeError("c failed")
            executed.append(name)
            await ctx.save_checkpoint(name, True)
        return executed

    engine = await make_engine()
    failed = await engine.trigger_and_wait("steps", {"fail": True})
    assert failed.run.status is RunStatus.FAILED and executed == ["a", "b"]
    replay = await engine.replay(failed.run.id)
    assert (await replay.result(timeout_s=5)).run.status is RunStatus.FAILED
    assert executed == ["a", "b", "a", "b"]  # a plain replay starts over
    executed.clear()
    resumed = await engine.replay(failed.run.id, resume=True)
    run = await engine.get_run(resumed.id)
    assert run.replayed_from == failed.run.id and run.payload == {"fail": True}


@pytest.mark.asyncio
async def test_metrics_counts_and_percentiles(make_engine: Any, registry: TaskRegistry) -> None:
    @task(id="m-ok", registry=registry)
    async def m_ok(payload: Any, ctx: RunContext) -> None:
        return None

    @task(id="m-bad", registry=registry, retry=RetryPolicy(max_attempts=2, min_timeout_s=0.001))
    async def m_bad(payload: Any, ctx: RunContext) -> None:
        raise ValueError("x")

    engine = await make_engine()
    for _ in range(4):
        await engine.trigger_and_wait("m-ok")
    await engine.trigger_and_wait("m-bad")
    metrics = await task_metrics(engine.store)
    by_task = {m["taskId"]: m for m in metrics["tasks"]}
    assert by_task["m-ok"]["counts"] == {"COMPLETED": 4}
    assert by_task["m-ok"]["successRate"] == 1.0
    assert by_task["m-ok"]["durationP50Ms"] is not None
    assert by_task["m-bad"]["counts"] == {"FAILED": 1}
    assert by_task["m-bad"]["retries"] == 1 and by_task["m-bad"]["attempts"] == 2
    assert by_task["m-bad"]["successRate"] == 0.0
    assert sum(point["runs"] for point in metrics["series"]) == 5


@pytest.mark.asyncio
async def test_bad_inputs_are_refused(make_engine: Any, registry: TaskRegistry) -> None:
    @task(id="echo", registry=registry)
    async def echo(payload: Any, ctx: RunContext) -> Any:
        return payload

    engine = await make_engine()
    with pytest.raises(InvalidInput, match="JSON"):
        await engine.trigger("echo", {"x": object()})
    with pytest.raises(InvalidInput, match="limit"):
        await engine.trigger("echo", "x" * (4 * 1024 * 1024))
    with pytest.raises(InvalidInput, match="async def"):
        registry.add(type(registry.get("echo"))(id="sync", fn=lambda p, c: None))  # type: ignore[arg-type,misc]


@pytest.mark.asyncio
async def test_runs_of_a_departed_task_wait_with_a_reason(make_engine: Any, registry: TaskRegistry) -> None:
    clock = FakeClock()

    @task(id="kernel-task", registry=registry)
    async def kernel_task(payload: Any, ctx: RunContext) -> str:
        return "ran"

    definition = registry.get("kernel-task")
    assert definition is not None
    engine = await make_engine(clock=clock)
    engine.unregister("kernel-task", reason="defined in kernel k1, which is gone")
    waiting = await engine.trigger("kernel-task")
    expiring = await engine.trigger("kernel-task", None, TriggerOptions(ttl_s=60))
    await asyncio.sleep(0.02)
    run = await engine.get_run(waiting.id)
    assert run.status is RunStatus.QUEUED and run.waiting_reason == "defined in kernel k1, which is gone"
    clock.advance(61)
    assert (await engine.wait_for(expiring.id, timeout_s=5)).status is RunStatus.EXPIRED
    engine.register(definition)  # a kernel defines the task again
    result = await waiting.result(timeout_s=5)
    assert result.ok and result.output == "ran" and result.run.waiting_reason is None
    with pytest.raises(TaskNotFound):
        await engine.trigger("never-defined")


def test_trigger_options_survive_a_round_trip_through_json() -> None:
    """How options cross into a kernel and back: ``options_to_json`` is read back as they were."""
    full = TriggerOptions(
        delay_s=90.0, ttl_s=600.0, idempotency_key="nightly", idempotency_key_ttl_s=3600.0,
        idempotency_scope="attempt", tags=["a", "b"], metadata={"k": [1, 2]}, concurrency_key="user-1",
        queue="images", max_attempts=5, max_duration_s=30.0,
    )
    assert options_from_json(options_to_json(full), 1_000.0) == full
    assert options_to_json(TriggerOptions()) == {}
    at = options_from_json(options_to_json(TriggerOptions(delay_until=1_800_000_000.25)), 1_000.0)
    assert at.delay_until == pytest.approx(1_800_000_000.25) and at.delay_s is None
