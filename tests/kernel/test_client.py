"""The kernel client, both backends: against a real ``jupyter server`` process (REST + event
WebSocket, resume after the server restarts) and with the engine hosted in-process."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polaris_jupyter.jobs import task
from polaris_jupyter.kernel import Polaris, PolarisError, connect, disconnect
from polaris_jupyter.kernel._local import LocalBackend, default_kernel_db_path
from polaris_jupyter.testing import Response, ScriptedModelServer
from tests.helpers import wait_until
from tests.kernel.conftest import FOREIGN_ENV
from tests.live_server import LiveServer, free_port

TASKS = "--PolarisConfig.task_modules=tests.server.sample_tasks"
#: Enable the extension explicitly (an editable checkout may lack the pip-installed config file).
ENABLE = "--ServerApp.jpserver_extensions={'polaris_jupyter': True}"


@task(id="client-test-add")
async def add(payload: Any, ctx: Any) -> Any:
    """Add two numbers (in-process tests)."""
    ctx.logger.info("adding", data=payload)
    return payload["a"] + payload["b"]


# -- a real server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def remote_model() -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer.start_in_thread(model="scripted-remote")
    yield server
    server.stop()


def server_env(model: ScriptedModelServer) -> dict[str, str]:
    return {"POLARIS_LOCAL_BASE_URL": model.base_url, "POLARIS_LOCAL_MODEL": "scripted-remote", "POLARIS_PROVIDER": "local"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, remote_model: ScriptedModelServer) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("live")
    (base / "root").mkdir()
    server = LiveServer(base / "root", base / "polaris.db", extra_args=[TASKS, ENABLE], env=server_env(remote_model)).start()
    yield server
    server.stop()


@pytest.fixture
def remote(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Polaris]:
    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    client = connect("remote", url=live.url, token=live.token, scheme="token")
    yield client
    disconnect()


def test_remote_runs(remote: Polaris) -> None:
    assert remote.mode == "remote" and "127.0.0.1" in remote.description
    assert {"test-echo", "test-sleep", "process-message"} <= {t["id"] for t in remote.tasks()}
    run = remote.trigger("test-echo", {"hello": "world"}, tags=["client-test"])
    finished = run.wait(timeout_s=30)
    assert finished["status"] == "COMPLETED" and finished["output"] == {"hello": "world"}
    assert finished["logs"][0]["message"] == "echoing"
    assert [r["id"] for r in remote.runs(tag="client-test")] == [run.id]

    delayed = remote.trigger("test-echo", "later", delay="1h", idempotency_key="k-1")
    assert remote.trigger("test-echo", "later", delay="1h", idempotency_key="k-1").id == delayed.id
    assert delayed.status() == "DELAYED"
    assert delayed.cancel()["status"] == "CANCELED"
    replay = delayed.replay()
    assert replay.wait(timeout_s=30)["output"] == "later"

    batch = remote.batch_trigger("test-echo", [1, 2, {"payload": 3, "options": {"tags": ["third"]}}])
    outputs = [r.wait(timeout_s=30)["output"] for r in batch]
    assert outputs == [1, 2, 3]

    schedule = remote.schedule("test-echo", "*/5 * * * *", payload={"from": "cron"})
    assert any(s["id"] == schedule["id"] for s in remote.schedules())
    remote.unschedule(schedule["id"])
    assert all(s["id"] != schedule["id"] for s in remote.schedules())


def test_remote_errors_are_clear(remote: Polaris, live: LiveServer) -> None:
    with pytest.raises(PolarisError) as missing:
        remote.run("run_nope")
    assert missing.value.status == 404 and "no run with id 'run_nope'" in str(missing.value)
    with pytest.raises(PolarisError) as unknown:
        remote.trigger("no-such-task")
    assert unknown.value.status == 404 and "no task with id" in str(unknown.value)
    with pytest.raises(PolarisError) as bad:
        remote.trigger("test-echo", None, delay="soon")
    assert bad.value.status == 400 and "duration" in str(bad.value)
    with pytest.raises(PolarisError) as option:
        remote.trigger("test-echo", None, sooner=True)
    assert "unknown trigger option 'sooner'" in str(option.value)
    disconnect()
    with pytest.raises(PolarisError) as refused:
        connect("remote", url=live.url, token="wrong", scheme="token")
    assert refused.value.status == 403 and "authentication required" in str(refused.value)


def test_remote_chat_streams_events(remote: Polaris, remote_model: ScriptedModelServer) -> None:
    remote_model.enqueue(Response.tool("listFiles", {"path": "."}), Response(text="An empty workspace.", delay_s=0.01))
    conversation_id = remote.new_conversation("remote chat")["id"]
    since = remote.call(remote.backend.last_event_seq())
    posted = remote.send("what is here?")
    events: list[dict[str, Any]] = []

    async def collect() -> None:
        async for event in remote.backend.events(conversation_id=conversation_id, since=since):
            events.append(event)
            data = event["data"]
            if event["type"] == "message.status" and data.get("messageId") == posted["messageId"] and data["status"] == "completed":
                return

    remote.call(collect(), timeout_s=30)
    types = [e["type"] for e in events]
    assert "toolcall.finished" in types and "message.delta" in types
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    message = next(m for m in remote.messages(conversation_id) if m["id"] == posted["messageId"])
    assert message["content"] == "An empty workspace." and message["model"] == "scripted-remote"
    config = remote.config()
    assert config["active"] == {"provider": "local", "model": "scripted-remote"}


def test_event_stream_resumes_after_the_server_restarts(tmp_path: Path, remote_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "root").mkdir()
    server = LiveServer(tmp_path / "root", tmp_path / "polaris.db", extra_args=[TASKS, ENABLE], env=server_env(remote_model)).start()
    try:
        client = connect("remote", url=server.url, token=server.token, scheme="token")
        start = client.call(client.backend.last_event_seq())
        seen: list[dict[str, Any]] = []

        async def follow() -> None:
            async for event in client.backend.events(since=start):
                seen.append(event)

        follower = client.loop.submit(follow())
        first = client.trigger("test-echo", "before")
        first.wait(timeout_s=30)
        wait_until(lambda: any(e.get("runId") == first.id and e["data"].get("status") == "COMPLETED" for e in seen))
        server.kill()
        # While the server is down, the stream keeps trying; the run below is created meanwhile.
        server.start()
        status, body = server.request("POST", "/polaris/api/v1/tasks/test-echo/trigger", {"payload": "after"})
        assert status == 200
        wait_until(lambda: any(e.get("runId") == body["id"] and e["data"].get("status") == "COMPLETED" for e in seen))
        follower.cancel()
        seqs = [e["seq"] for e in seen]
        assert seqs == list(range(start + 1, start + 1 + len(seqs))), "no gap and no duplicate across the restart"
        assert any(e.get("runId") == body["id"] for e in seen)
        assert client.backend.reconnects >= 1  # type: ignore[attr-defined]
    finally:
        disconnect()
        server.stop()


def test_auto_mode_falls_back_to_the_kernel_engine(model: ScriptedModelServer, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLARIS_URL", f"http://127.0.0.1:{free_port()}/")
    monkeypatch.setenv("POLARIS_TOKEN", "whatever")
    with pytest.warns(UserWarning, match="not reachable"):
        client = connect(db_path=str(tmp_path / "k.db"))
    try:
        assert client.mode == "local" and client.trigger("client-test-add", {"a": 1, "b": 2}).wait(10)["output"] == 3
    finally:
        disconnect()
    with pytest.raises(PolarisError, match="cannot use the Polaris server"):
        connect("remote")
    with pytest.raises(PolarisError, match="mode must be"):
        connect("sideways")


# -- in-process ------------------------------------------------------------------------------


def test_local_runs(local_client: Polaris) -> None:
    assert local_client.mode == "local"
    run = local_client.trigger("client-test-add", {"a": 2, "b": 40})
    finished = run.wait(timeout_s=10)
    assert finished["output"] == 42 and finished["logs"][0]["data"] == {"a": 2, "b": 40}
    refs = local_client.batch_trigger("client-test-add", [{"a": i, "b": i} for i in range(5)])
    assert [r.wait(10)["output"] for r in refs] == [0, 2, 4, 6, 8]
    assert len(local_client.runs(task="client-test-add", limit=50)) == 6
    assert local_client.runs(status="COMPLETED", task="client-test-add", limit=2)[0]["id"] == refs[-1].id
    with pytest.raises(PolarisError) as bad:
        local_client.runs(status="SIDEWAYS")
    assert bad.value.status == 400
    with pytest.raises(PolarisError) as missing:
        local_client.cancel("run_nope")
    assert missing.value.status == 404
    schedule = local_client.schedule("client-test-add", "0 * * * *", payload={"a": 0, "b": 0})
    assert schedule["taskId"] == "client-test-add" and schedule["nextRun"]
    local_client.unschedule(schedule["id"])
    with pytest.raises(PolarisError, match="no schedule"):
        local_client.unschedule(schedule["id"])


def test_local_events_resume_by_seq(local_client: Polaris) -> None:
    start = local_client.call(local_client.backend.last_event_seq())
    ids = [local_client.trigger("client-test-add", {"a": i, "b": 0}).id for i in range(3)]
    for run_id in ids:
        local_client.wait(run_id, timeout_s=10)

    async def read(since: int, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        stream = local_client.backend.events(since=since)
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for event in stream:
                out.append(event)
                if len(out) == count:
                    return out
        return out

    everything = local_client.call(read(start, 9))
    assert [e["seq"] for e in everything] == list(range(start + 1, start + 10))
    middle = everything[4]["seq"]
    rest = local_client.call(read(middle, 4))
    assert [e["seq"] for e in rest] == [e["seq"] for e in everything[5:9]]


@pytest.mark.asyncio
async def test_aio_from_a_running_loop(local_client: Polaris) -> None:
    """A notebook cell with top-level await uses ``polaris.aio`` (runs on the Polaris loop)."""
    handle = await local_client.aio.trigger("client-test-add", {"a": 1, "b": 1})
    run = await local_client.aio.wait_run(handle["id"], 10)
    assert run["output"] == 2
    with pytest.raises(PolarisError):
        await local_client.aio.run("run_nope")


def test_local_chat(local_client: Polaris, model: ScriptedModelServer) -> None:
    model.enqueue(Response(text="Hi from the kernel."))
    message = local_client.ask("hello")
    assert message["content"] == "Hi from the kernel." and message["status"] == "completed"
    assert local_client.config()["active"] == {"provider": "local", "model": "scripted-1"}
    with pytest.raises(PolarisError) as bad:
        local_client.send("   ")
    assert bad.value.status == 400


def test_kernel_db_is_locked_and_never_the_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_client: Polaris) -> None:
    held = Path(local_client.backend.db_path)  # type: ignore[attr-defined]
    second = LocalBackend(root_dir=tmp_path, db_path=held)
    local_client.call(second.start())
    try:
        assert second.db_path is not None and second.db_path != held and f"-{os.getpid()}" in second.db_path.name
    finally:
        local_client.call(second.close())
    monkeypatch.setenv("POLARIS_DB_PATH", str(tmp_path / "server.db"))
    monkeypatch.setenv("POLARIS_URL", "http://127.0.0.1:1/")
    assert default_kernel_db_path().name == "kernel.db"
    monkeypatch.delenv("POLARIS_URL")
    assert default_kernel_db_path() == tmp_path / "server.db"


