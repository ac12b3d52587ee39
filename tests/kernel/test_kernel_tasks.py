"""Tasks defined in a kernel, stored by the server: the kernel claims them, REST triggers run them
in the kernel, cancellation reaches the kernel, and when the kernel is gone their runs wait with
a reason until a kernel defines the task again.

First with the bridge running in this process (fast, every path), then end to end with real
kernels launched by a real ``jupyter server`` (they inherit POLARIS_URL / POLARIS_TOKEN)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import capture_output

from polaris_jupyter.jobs import AbortTaskError, RetryPolicy, TaskRegistry, TriggerOptions, task
from polaris_jupyter.jobs.worker_frames import CheckpointFrame, ClaimedFrame, ClaimFrame, ResultFrame
from polaris_jupyter.kernel import Polaris, PolarisError, connect, disconnect
from polaris_jupyter.kernel._bridge import TaskBridge
from tests.helpers import wait_until
from tests.kernel.conftest import FOREIGN_ENV
from tests.live_server import LiveServer

pytestmark = pytest.mark.slow
ENABLE = "--ServerApp.jpserver_extensions={'polaris_jupyter': True}"
TASKS = "--PolarisConfig.task_modules=tests.server.sample_tasks"
FAST_RETRY = RetryPolicy(max_attempts=3, min_timeout_s=0.05, max_timeout_s=0.1, randomize=False)


def start_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: Path, *extra_args: str) -> LiveServer:
    """A real ``jupyter server`` with the sample tasks and fast retries (SQLite at ``db``, or
    what ``extra_args`` configure: tests/pg runs this suite on PostgreSQL)."""
    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "root").mkdir()
    (tmp_path / "runtime").mkdir()
    return LiveServer(
        tmp_path / "root",
        db,
        extra_args=[ENABLE, TASKS, *extra_args],
        env={
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            "POLARIS_LOCAL_BASE_URL": "http://127.0.0.1:9/v1",
            "POLARIS_DEFAULT_RETRY": '{"maxAttempts": 3, "minTimeoutInMs": 50, "maxTimeoutInMs": 100, "randomize": false}',
        },
    ).start(timeout_s=90)


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    server = start_live(tmp_path, monkeypatch, tmp_path / "polaris.db")
    yield server
    server.stop()


def rest_trigger(live: LiveServer, task_id: str, payload: Any, options: dict[str, Any] | None = None) -> str:
    status, body = live.request("POST", f"/polaris/api/v1/tasks/{task_id}/trigger", {"payload": payload, "options": options or {}})
    assert status == 200, body
    return str(body["id"])


def get_run(live: LiveServer, run_id: str) -> dict[str, Any]:
    status, run = live.request("GET", f"/polaris/api/v1/runs/{run_id}")
    assert status == 200, run
    return run  # type: ignore[no-any-return]


# -- the bridge in this process ------------------------------------------------------------------


class KernelTasks:
    """Tasks as a notebook would define them, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = TaskRegistry()
        self.started = threading.Event()
        self.cancelled = threading.Event()

        @task(id="kb-echo", retry=FAST_RETRY, registry=self.registry)
        async def echo(payload: Any, ctx: Any) -> Any:
            ctx.logger.info("in the kernel", data={"attempt": ctx.attempt})
            ctx.metadata.set("where", "kernel")
            ctx.metadata.increment("attempts")
            ctx.emit("custom.progress", {"attempt": ctx.attempt})
            if payload.get("fail_first") and ctx.attempt == 1:
                raise ValueError("the first attempt fails")
            await ctx.save_checkpoint("halfway", {"attempt": ctx.attempt})
            return {"echo": payload, "attempt": ctx.attempt, "checkpoint": ctx.checkpoint("halfway")}

        @task(id="kb-slow", registry=self.registry)
        async def slow(payload: Any, ctx: Any) -> None:
            self.started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise

        @task(id="kb-abort", retry=FAST_RETRY, registry=self.registry)
        async def abort(payload: Any, ctx: Any) -> None:
            raise AbortTaskError("retrying cannot help")

        @task(id="kb-parent", registry=self.registry)
        async def parent(payload: Any, ctx: Any) -> Any:
            """Written as for the server's engine: handles, results, options, scoped keys."""
            once = TriggerOptions(tags=["child"], idempotency_key="once", idempotency_scope="run")
            first = await ctx.trigger("kb-echo", {"n": 1}, once)
            again = await ctx.trigger("kb-echo", {"n": 2}, once)
            waited = await ctx.trigger_and_wait("kb-echo", {"n": 3}, {"tags": ["waited"]})
            try:
                await ctx.trigger("no-such-task", None)
                refused = ""
            except PolarisError as exc:
                refused = str(exc)
            try:
                await ctx.trigger("kb-echo", None, {"delay": "whenever", "colour": "red"})
                bad_options = ""
            except PolarisError as exc:
                bad_options = str(exc)
            return {
                "first": first.id, "again": again.id, "cached": again.is_cached, "waitedOk": waited.ok,
                "waitedOutput": waited.output, "waitedRun": waited.run["id"], "refused": refused, "badOptions": bad_options,
                "firstStatus": (await first.result(timeout_s=30)).run["status"],
            }

        @task(id="test-echo", registry=self.registry)  # the server has its own task with this id
        async def clash(payload: Any, ctx: Any) -> None:
            return None


def attach(live: LiveServer, tasks: KernelTasks) -> Polaris:
    client = connect("remote", url=live.url, token=live.token, scheme="token")
    client.bridge = TaskBridge(client.backend, client.loop, registry=tasks.registry)  # type: ignore[arg-type]
    return client


def test_kernel_tasks_run_in_the_kernel(live: LiveServer) -> None:
    tasks = KernelTasks()
    client = attach(live, tasks)
    try:
        with capture_output() as io:
            claimed = client.serve_tasks()
        assert claimed == ["kb-abort", "kb-echo", "kb-parent", "kb-slow"]
        assert "did not take task 'test-echo'" in io.stdout and "defined by the server itself" in io.stdout
        _, listing = live.request("GET", "/polaris/api/v1/kernel-tasks")
        assert listing["kernels"][0]["tasks"] == claimed and listing["waiting"] == []

        run_id = rest_trigger(live, "kb-echo", {"fail_first": True})
        run = live.wait_run(run_id, {"COMPLETED", "FAILED"})
        assert run["status"] == "COMPLETED", run
        assert run["output"] == {"echo": {"fail_first": True}, "attempt": 2, "checkpoint": {"attempt": 2}}
        assert [a["status"] for a in run["attempts"]] == ["FAILED", "COMPLETED"]
        assert run["attempts"][0]["error"]["name"] == "ValueError"
        assert run["metadata"] == {"where": "kernel", "attempts": 2}
        messages = [entry["message"] for entry in run["logs"]]
        assert messages.count("in the kernel") == 2 and "traceback in the kernel" in messages
        _, events = live.request("GET", f"/polaris/api/v1/runs/{run_id}/events")
        assert [e["data"] for e in events["events"] if e["type"] == "custom.progress"] == [{"attempt": 1}, {"attempt": 2}]

        aborted = live.wait_run(rest_trigger(live, "kb-abort", None), {"FAILED", "COMPLETED"})
        assert aborted["status"] == "FAILED" and aborted["attemptCount"] == 1
        assert aborted["error"]["name"] == "AbortTaskError" and "retrying cannot help" in aborted["error"]["message"]

        # Cancel over REST: the coroutine in the kernel is cancelled.
        slow_id = rest_trigger(live, "kb-slow", None)
        assert tasks.started.wait(20)
        status, cancelled = live.request("POST", f"/polaris/api/v1/runs/{slow_id}/cancel")
        assert status == 200 and cancelled["status"] == "CANCELED"
        assert tasks.cancelled.wait(10)

        # Triggered from the kernel's own client: the same path.
        assert client.trigger("kb-echo", {"from": "kernel"}).wait(30)["output"]["echo"] == {"from": "kernel"}
    finally:
        disconnect()


def test_a_kernel_task_triggers_children_like_a_server_task(live: LiveServer) -> None:
    """ctx.trigger / trigger_and_wait in a kernel return handles and results, and the child
    runs are triggered from the parent's context: parent link, run-scoped idempotency key."""
    client = attach(live, KernelTasks())
    try:
        client.serve_tasks()
        parent_id = rest_trigger(live, "kb-parent", None)
        parent = live.wait_run(parent_id, {"COMPLETED", "FAILED"})
        assert parent["status"] == "COMPLETED", parent
        out = parent["output"]
        assert out["first"] == out["again"] and out["cached"] is True  # the key is scoped to this run
        assert out["waitedOk"] is True and out["waitedOutput"]["echo"] == {"n": 3}
        assert "no-such-task" in out["refused"] and out["firstStatus"] == "COMPLETED"
        assert "unknown option(s): colour" in out["badOptions"]  # refused by the server, nothing triggered
        _, page = live.request("GET", "/polaris/api/v1/runs?task=kb-echo&limit=100")
        assert sorted(r["id"] for r in page["data"] if r["parentRunId"] == parent_id) == sorted([out["first"], out["waitedRun"]])
        for child_id, tags in ((out["first"], ["child"]), (out["waitedRun"], ["waited"])):
            child = get_run(live, child_id)
            assert child["parentRunId"] == parent_id and child["tags"] == tags
        # Another run of the parent gets its own child: the idempotency key was run-scoped.
        second = live.wait_run(rest_trigger(live, "kb-parent", None), {"COMPLETED", "FAILED"})
        assert second["output"]["first"] != out["first"]
    finally:
        disconnect()


def test_runs_wait_while_no_kernel_defines_the_task(live: LiveServer) -> None:
    tasks = KernelTasks()
    client = attach(live, tasks)
    client.serve_tasks()
    delayed_id = rest_trigger(live, "kb-echo", {"n": 1}, {"delay": "1s"})
    slow_id = rest_trigger(live, "kb-slow", None)
    assert tasks.started.wait(20)
    disconnect()  # the kernel goes away

    slow = wait_until(lambda: (r := get_run(live, slow_id))["waitingReason"] and r, what="waiting reason")
    assert "which is gone" in slow["waitingReason"] and slow["status"] == "REATTEMPTING"
    assert "disconnected during attempt 1" in slow["attempts"][0]["error"]["message"]
    assert tasks.cancelled.wait(10), "the kernel stops work whose result can no longer be delivered"
    time.sleep(1.5)  # the delay passes: the run is due but waits
    delayed = get_run(live, delayed_id)
    assert delayed["status"] in ("DELAYED", "QUEUED") and "which is gone" in delayed["waitingReason"]
    _, listing = live.request("GET", "/polaris/api/v1/kernel-tasks")
    assert listing["kernels"] == [] and {w["taskId"] for w in listing["waiting"]} == {"kb-abort", "kb-echo", "kb-parent", "kb-slow"}
    _, page = live.request("GET", "/polaris/api/v1/runs?task=kb-echo")
    assert page["data"][0]["waitingReason"]

    # A kernel defines the tasks again: the waiting runs go on.
    tasks.started.clear()
    again = attach(live, tasks)
    try:
        again.serve_tasks()
        done = live.wait_run(delayed_id, {"COMPLETED", "FAILED"})
        assert done["status"] == "COMPLETED" and done["waitingReason"] is None
        assert tasks.started.wait(20)
        assert live.request("POST", f"/polaris/api/v1/runs/{slow_id}/cancel")[1]["status"] == "CANCELED"
    finally:
        disconnect()


def test_kernel_worker_socket_refuses_garbage(live: LiveServer) -> None:
    """Bad frames from a kernel are answered with the reason and the socket stays up; bad claims
    are refused one by one with a reason."""
    client = connect("remote", url=live.url, token=live.token, scheme="token")
    bridge = TaskBridge(client.backend, client.loop, registry=TaskRegistry())  # type: ignore[arg-type]
    try:

        async def probe() -> Any:
            await bridge._ensure_connected()
            bridge.send(ResultFrame(run_id="run_nope", ok=True))  # not executing: dropped quietly
            assert bridge._conn is not None
            await bridge._conn.write_message('{"type": "nonsense"}')
            await bridge._conn.write_message("not json")
            tasks = [{"id": ""}, {"id": "x" * 300}, {"id": "ok-task", "retry": {"maxAttempts": "many"}}, 7]
            return await bridge.request(ClaimFrame(id=bridge.new_request_id(), tasks=tasks))

        reply = client.call(probe())
        assert isinstance(reply, ClaimedFrame)
        assert reply.tasks == []
        assert len(reply.refused) == 4 and any("bad task definition" in r for r in reply.refused.values())
        errors = list(bridge.frame_errors)
        assert any("unknown frame type 'nonsense'" in e for e in errors), errors
        assert any("must be a JSON object" in e for e in errors), errors
        with pytest.raises(PolarisError, match="not executing"):
            client.call(bridge.request(CheckpointFrame(id=bridge.new_request_id(), run_id="run_nope", key="k", value=1)))
        status, _ = live.request("GET", "/polaris/api/v1/health")
        assert status == 200
    finally:
        client.call(bridge.close())
        disconnect()


# -- real kernels launched by the server ---------------------------------------------------------

KERNEL_TASKS = """
%load_ext polaris_jupyter
import asyncio
from polaris_jupyter.jobs import task

state = {}

@task(id="kt-double")
async def double(payload, ctx):
    ctx.logger.info("doubling in the kernel")
    return payload * 2

@task(id="kt-wait")
async def wait_forever(payload, ctx):
    state["started"] = True
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        state["cancelled"] = True
        raise
"""


class ServerKernel:
    """A kernel started through the server's REST API, driven over its connection file."""

    def __init__(self, live: LiveServer, runtime_dir: Path) -> None:
        from jupyter_client.blocking.client import BlockingKernelClient

        status, body = live.request("POST", "/api/kernels", {"name": "python3"})
        assert status == 201, body
        self.live = live
        self.id = body["id"]
        path = runtime_dir / f"kernel-{self.id}.json"
        wait_until(path.exists, what="connection file")
        self.client = BlockingKernelClient(connection_file=str(path))
        self.client.load_connection_file()
        self.client.start_channels()
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60) -> None:
        """kernel_info until the shell answers and iopub delivers (the client's own wait_for_ready
        gives up on a kernel that is still importing, as it sees no heartbeat yet)."""
        from queue import Empty

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg_id = self.client.kernel_info()
            try:
                reply = self.client.get_shell_msg(timeout=2)
            except Empty:
                continue
            if reply["parent_header"].get("msg_id") != msg_id:
                continue
            try:
                self.client.get_iopub_msg(timeout=0.5)
            except Empty:
                continue
            while True:  # drain what iopub has so far
                try:
                    self.client.get_iopub_msg(timeout=0.2)
                except Empty:
                    return
        raise AssertionError("the kernel did not become ready")

    def execute(self, code: str, timeout_s: float = 60) -> str:
        """Run a cell; returns its stream output; fails on an error."""
        chunks: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                chunks.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                chunks.append("\n".join(msg["content"]["traceback"]))

        reply = self.client.execute_interactive(code, timeout=timeout_s, output_hook=hook)
        text = "".join(chunks)
        assert reply["content"]["status"] == "ok", text
        return text

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.live.request("DELETE", f"/api/kernels/{self.id}")


def test_tasks_defined_in_a_real_kernel(live: LiveServer, tmp_path: Path) -> None:
    kernel = ServerKernel(live, tmp_path / "runtime")
    try:
        out = kernel.execute(KERNEL_TASKS)
        assert "Polaris:" not in out, out
        _, listing = live.request("GET", "/polaris/api/v1/kernel-tasks")
        assert listing["kernels"][0]["kernelId"] == kernel.id
        assert listing["kernels"][0]["tasks"] == ["kt-double", "kt-wait"]

        run = live.wait_run(rest_trigger(live, "kt-double", 21), {"COMPLETED", "FAILED"})
        assert run["status"] == "COMPLETED" and run["output"] == 42
        assert run["logs"][0]["message"] == "doubling in the kernel"

        wait_id = rest_trigger(live, "kt-wait", None)
        live.wait_run(wait_id, {"EXECUTING"})
        wait_until(lambda: "True" in kernel.execute("print(state.get('started'))"), what="task started in the kernel")
        assert live.request("POST", f"/polaris/api/v1/runs/{wait_id}/cancel")[1]["status"] == "CANCELED"
        assert "'cancelled': True" in kernel.execute("print(state)")

        # The kernel's own %polaris sees the server's runs.
        out = kernel.execute("print(repr(get_ipython().run_line_magic('polaris', 'runs --task kt-double')))")
        assert "COMPLETED" in out
        out = kernel.execute("from polaris_jupyter.kernel import get_client\nprint(get_client().trigger('kt-double', 5).wait(30)['output'])")
        assert out.strip() == "10"
        delayed_id = rest_trigger(live, "kt-double", 1, {"delay": "2s"})
    finally:
        kernel.shutdown()

    waiting = wait_until(lambda: (r := get_run(live, delayed_id))["waitingReason"] and r, what="waiting reason")
    assert f"defined in kernel {kernel.id[:8]}" in waiting["waitingReason"] and "which is gone" in waiting["waitingReason"]

    again = ServerKernel(live, tmp_path / "runtime")
    try:
        again.execute(KERNEL_TASKS)
        done = live.wait_run(delayed_id, {"COMPLETED", "FAILED"})
        assert done["status"] == "COMPLETED" and done["output"] == 2
        assert json.loads(json.dumps(done))["waitingReason"] is None
    finally:
        again.shutdown()
