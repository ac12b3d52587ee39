"""The server's end of the kernel-worker protocol, without a socket: KernelWorkers over a real
engine and a recording connection. Every frame it cannot use is answered with the reason and
logged; nothing a kernel sends makes it raise."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio

from polaris_jupyter.jobs import RunStatus, TaskRegistry
from polaris_jupyter.jobs.worker_frames import (
    AckFrame,
    ClaimedFrame,
    ClaimFrame,
    ErrorFrame,
    Frame,
    MetadataFrame,
    ResultFrame,
    RunFrame,
    TaskError,
    TriggerFrame,
)
from polaris_jupyter.server.kernel_routes import KernelWorkers


class RecordingConn:
    """Stands in for a KernelWorkerSocket: what the server sends is kept in ``sent``."""

    def __init__(self) -> None:
        self.sent: list[Frame] = []
        self.tasks: set[str] = set()
        self.closed = False
        self.label = "test-kernel"

    def send(self, frame: Frame) -> None:
        self.sent.append(frame)

    async def next_frame(self, kind: type[Frame], timeout_s: float = 10) -> Any:
        async with asyncio.timeout(timeout_s):
            while True:
                for frame in self.sent:
                    if isinstance(frame, kind):
                        self.sent.remove(frame)
                        return frame
                await asyncio.sleep(0.01)


@pytest_asyncio.fixture
async def workers(make_engine: Any) -> KernelWorkers:
    engine = await make_engine()
    return KernelWorkers(SimpleNamespace(engine=engine))  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_malformed_frames_are_answered_and_logged(workers: KernelWorkers, caplog: pytest.LogCaptureFixture) -> None:
    conn = RecordingConn()
    caplog.set_level(logging.INFO, logger="polaris_jupyter.kernel_tasks")
    await workers.on_message(conn, "not json")  # type: ignore[arg-type]
    await workers.on_message(conn, '{"type": "checkpoint", "id": "k1", "runId": "r"}')  # type: ignore[arg-type]
    await workers.on_message(conn, '{"type": "run", "runId": "r", "taskId": "t", "attempt": 1}')  # type: ignore[arg-type]
    assert conn.sent == [
        ErrorFrame(error="a frame must be a JSON object; got 'not json'"),
        AckFrame(id="k1", ok=False, error="bad 'checkpoint' frame: 'key' is missing"),  # the request fails at once
        ErrorFrame(error="unknown frame type 'run'; expected one of checkpoint, claim, emit, log, metadata, result, trigger"),
    ]
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 3 and "test-kernel" in refused[0]


@pytest.mark.asyncio
async def test_an_attempt_in_a_kernel_through_typed_frames(workers: KernelWorkers, registry: TaskRegistry) -> None:
    conn = RecordingConn()
    await workers.on_frame(conn, ClaimFrame(id="k1", tasks=[{"id": "kw-task", "retry": {"maxAttempts": 1}}, 7]))  # type: ignore[arg-type]
    claimed = await conn.next_frame(ClaimedFrame)
    assert claimed.id == "k1" and claimed.tasks == ["kw-task"]
    assert claimed.refused == {"None": "bad task definition: expected an object, got 7"}

    engine = workers.engine
    handle = await engine.trigger("kw-task", {"n": 1})
    run = await conn.next_frame(RunFrame)
    assert (run.run_id, run.task_id, run.attempt, run.payload, run.run.max_attempts) == (handle.id, "kw-task", 1, {"n": 1}, 1)

    # A refused metadata change: the kernel hears why, the run's log says so, nothing changed.
    await workers.on_frame(conn, MetadataFrame(run_id=handle.id, op="increment", key="n", value="two"))  # type: ignore[arg-type]
    error = await conn.next_frame(ErrorFrame)
    assert error == ErrorFrame(error="metadata 'n' can only be changed by a number, got 'two'", frame_type="metadata")
    await workers.on_frame(conn, MetadataFrame(run_id=handle.id, op="set", key="n", value=2))  # type: ignore[arg-type]
    # A result of another attempt is ignored; this attempt's result completes the run.
    await workers.on_frame(conn, ResultFrame(run_id=handle.id, attempt=7, ok=True, output="stale"))  # type: ignore[arg-type]
    await workers.on_frame(conn, ResultFrame(run_id=handle.id, attempt=1, ok=True, output={"doubled": 2}))  # type: ignore[arg-type]
    result = await handle.result(timeout_s=10)
    assert result.ok and result.output == {"doubled": 2} and result.run.metadata == {"n": 2}
    logs = await engine.store.logs(handle.id)
    assert "ignored metadata from the kernel: metadata 'n' can only be changed by a number, got 'two'" in [e["message"] for e in logs]


@pytest.mark.asyncio
async def test_a_failure_inside_the_server_fails_the_request_not_the_server(
    workers: KernelWorkers, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = RecordingConn()
    await workers.on_frame(conn, ClaimFrame(tasks=[{"id": "kw-boom"}]))  # type: ignore[arg-type]
    handle = await workers.engine.trigger("kw-boom", None)
    await conn.next_frame(RunFrame)
    ctx = workers.attempts[handle.id].ctx

    async def broken_trigger(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the store is on fire")

    monkeypatch.setattr(ctx, "trigger", broken_trigger)
    caplog.set_level(logging.INFO, logger="polaris_jupyter.kernel_tasks")
    await workers.on_message(conn, TriggerFrame(id="k9", run_id=handle.id, task_id="x").dumps())  # type: ignore[arg-type]
    ack = await conn.next_frame(AckFrame)
    assert ack == AckFrame(id="k9", ok=False, error="the server failed on this 'trigger' frame: the store is on fire")
    assert any(r.exc_info and "failed on a 'trigger' frame" in r.getMessage() for r in caplog.records)  # with its traceback

    error = TaskError(name="Not An Identifier", message="bad")
    await workers.on_frame(conn, ResultFrame(run_id=handle.id, attempt=1, ok=False, error=error, abort=True))  # type: ignore[arg-type]
    result = await handle.result(timeout_s=10)
    assert result.run.status is RunStatus.FAILED and result.run.attempt_count == 1  # abort: no retries
    assert result.error is not None and (result.error["name"], result.error["message"]) == ("Error", "bad")
