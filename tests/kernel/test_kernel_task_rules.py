"""A task defined in a kernel meets the server's rules, end to end: a bad write is refused in the
kernel with the server's message (and fails the run without retries, as on the server); a frame
that bypasses the kernel's checks is refused by the server, which answers the kernel with the
reason, logs it on the run, and keeps the socket and the attempt going."""

from __future__ import annotations

from typing import Any

import pytest

from polaris_jupyter.jobs import TaskRegistry, task
from polaris_jupyter.jobs.worker_frames import LogFrame, MetadataFrame
from polaris_jupyter.kernel import connect, disconnect
from polaris_jupyter.kernel._bridge import TaskBridge
from tests.kernel import test_kernel_tasks as kernel_tasks
from tests.live_server import LiveServer

pytestmark = pytest.mark.slow
live = kernel_tasks.live  # the same live server fixture


def test_a_kernel_task_gets_the_servers_rules(live: LiveServer) -> None:
    registry = TaskRegistry()

    @task(id="kr-rules", retry=kernel_tasks.FAST_RETRY, registry=registry)
    async def rules(payload: Any, ctx: Any) -> Any:
        ctx.metadata.set("word", "hi")
        bridge = ctx._bridge  # send what the kernel context itself would refuse
        bridge.send(MetadataFrame(run_id=ctx.run_id, op="increment", key="word", value=1))
        bridge.send(LogFrame(run_id=ctx.run_id, level="loud", message="x"))
        bridge.send(MetadataFrame(run_id=ctx.run_id, op="zap", key="word"))  # type: ignore[arg-type]
        await ctx.save_checkpoint("sync", 1)  # answered after the server handled the frames above
        if payload == "raise":
            ctx.metadata.increment("word")  # refused here, with the server's message
        return list(bridge.frame_errors)

    client = connect("remote", url=live.url, token=live.token, scheme="token")
    client.bridge = TaskBridge(client.backend, client.loop, registry=registry)  # type: ignore[arg-type]
    try:
        assert client.serve_tasks() == ["kr-rules"]

        run = live.wait_run(kernel_tasks.rest_trigger(live, "kr-rules", "ok"), {"COMPLETED", "FAILED"})
        assert run["status"] == "COMPLETED", run
        refusals = run["output"]
        assert "the server refused a metadata frame from this kernel: metadata 'word' is not a number" in refusals
        assert "the server refused a log frame from this kernel: log level must be one of debug, info, warn, error, got 'loud'" in refusals
        assert any("bad 'metadata' frame: 'op' must be one of" in r and "got 'zap'" in r for r in refusals), refusals
        assert run["metadata"] == {"word": "hi"}  # the refused increment changed nothing
        assert "ignored metadata from the kernel: metadata 'word' is not a number" in [e["message"] for e in run["logs"]]

        failed = live.wait_run(kernel_tasks.rest_trigger(live, "kr-rules", "raise"), {"COMPLETED", "FAILED"})
        assert failed["status"] == "FAILED" and failed["attemptCount"] == 1, failed  # refused input: no retries
        assert failed["error"]["name"] == "InvalidInput"
        assert failed["error"]["message"] == "metadata 'word' is not a number"
        status, _ = live.request("GET", "/polaris/api/v1/health")
        assert status == 200
    finally:
        disconnect()
