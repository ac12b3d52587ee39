"""One task context contract: the engine's RunContext and the kernel's context keep the same
``TaskContext`` API and refuse the same bad input with the same message, because both use the
one set of rules in ``polaris_jupyter.jobs.context``; and the frames a kernel context sends,
applied on the server, give the server's run the same metadata and log lines."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from polaris_jupyter.jobs import (
    Engine,
    InvalidInput,
    RunContext,
    RunMetadata,
    TaskContext,
    TaskRegistry,
    TriggerOptions,
    task,
)
from polaris_jupyter.jobs.context import (
    MAX_EVENT_DATA_BYTES,
    MAX_LOG_MESSAGE_CHARS,
    MAX_METADATA_BYTES,
    MetadataChange,
)
from polaris_jupyter.jobs.worker_frames import AckFrame, Frame, LogFrame, MetadataFrame, RunFrame, RunSnapshot
from polaris_jupyter.kernel._bridge import KernelRunContext

START_METADATA = {"word": "hi", "count": 1}


class FakeBridge:
    """What a KernelRunContext needs of its bridge: frames are recorded, requests succeed."""

    def __init__(self) -> None:
        self.sent: list[Frame] = []
        self.backend = None
        self._ids = 0

    def new_request_id(self) -> str:
        self._ids += 1
        return f"k{self._ids}"

    def send(self, frame: Frame) -> None:
        self.sent.append(frame)

    async def request(self, frame: Frame, timeout_s: float = 30.0) -> AckFrame:
        self.sent.append(frame)
        return AckFrame(id=getattr(frame, "id", None), ok=True)


def kernel_ctx(bridge: FakeBridge | None = None) -> KernelRunContext:
    frame = RunFrame(run_id="run_k", task_id="t", attempt=1, payload=None,
                     run=RunSnapshot(max_attempts=3, tags=["a"], metadata=dict(START_METADATA)))
    return KernelRunContext(bridge or FakeBridge(), frame)  # type: ignore[arg-type]


Probe = Callable[[TaskContext], Any]
LAST_RUN = [""]

#: (name, a bad call, what the message says). Each is run on a fresh context of each kind.
BAD_INPUT: list[tuple[str, Probe, str]] = [
    ("empty key", lambda c: c.metadata.set("", 1), "a metadata key must be a string of 1 to 256 characters, got ''"),
    ("key not a string", lambda c: c.metadata.set(5, 1), "a metadata key must be a string of 1 to 256 characters, got 5"),  # type: ignore[arg-type]
    ("long key", lambda c: c.metadata.set("k" * 300, 1), "a metadata key must be a string of 1 to 256 characters"),
    ("value not JSON", lambda c: c.metadata.set("k", object()), "metadata 'k' must be JSON-serializable"),
    ("NaN value", lambda c: c.metadata.set("k", math.nan), "metadata 'k' must be JSON-serializable (no NaN or infinity)"),
    ("append not JSON", lambda c: c.metadata.append("files", {1, 2}), "metadata 'files' must be JSON-serializable"),
    ("too large", lambda c: c.metadata.set("big", "x" * MAX_METADATA_BYTES), f"the limit is {MAX_METADATA_BYTES}"),
    ("increment a word", lambda c: c.metadata.increment("word"), "metadata 'word' is not a number"),
    ("increment by text", lambda c: c.metadata.increment("count", "2"), "metadata 'count' can only be changed by a number, got '2'"),  # type: ignore[arg-type]
    ("increment by bool", lambda c: c.metadata.increment("count", True), "metadata 'count' can only be changed by a number, got True"),
    ("increment by inf", lambda c: c.metadata.increment("count", math.inf), "can only be changed by a number, got inf"),
    ("decrement by text", lambda c: c.metadata.decrement("count", "1"), "metadata 'count' can only be changed by a number, got '1'"),  # type: ignore[arg-type]
    ("unknown op", lambda c: c.metadata.apply("zap", "k", 1), "unknown metadata operation 'zap'; known: set, append, increment, remove"),
    ("log level", lambda c: c.logger.log("loud", "x"), "log level must be one of debug, info, warn, error, got 'loud'"),
    ("engine event", lambda c: c.emit("run.status", {}), "event type 'run.status' is reserved"),
    ("event data", lambda c: c.emit("custom.x", [1]), "the data of event 'custom.x' must be a JSON object, got list"),  # type: ignore[arg-type]
    ("event type", lambda c: c.emit("", {}), "an event type must be a string of 1 to 100 characters"),
    ("event too big", lambda c: c.emit("custom.big", {"blob": "x" * MAX_EVENT_DATA_BYTES}),
     f"the data of event 'custom.big' is {MAX_EVENT_DATA_BYTES + 11} bytes; the limit is {MAX_EVENT_DATA_BYTES}"),
    ("nested event too big", lambda c: c.emit("custom.big", {"rows": [{"v": "y" * 1000}] * 300}), "the limit is"),
]


async def server_ctx_call(engine: Engine, registry: TaskRegistry, probe: Probe) -> tuple[BaseException | None, dict[str, Any]]:
    """Run ``probe`` inside a real task on the engine; return what it raised and the metadata after
    (``outcome["run_id"]`` of the last call is kept in ``LAST_RUN``)."""
    outcome: dict[str, Any] = {}

    @task(id="probe", registry=registry)
    async def run_probe(payload: Any, ctx: RunContext) -> None:
        try:
            result = probe(ctx)
            if hasattr(result, "__await__"):
                await result
        except Exception as exc:
            outcome["error"] = exc
        outcome["metadata"] = dict(ctx.metadata.current)

    handle = await engine.trigger("probe", None, TriggerOptions(metadata=dict(START_METADATA)))
    await handle.result(timeout_s=10)
    LAST_RUN[0] = handle.id
    return outcome.get("error"), outcome["metadata"]


@pytest.mark.asyncio
@pytest.mark.parametrize(("name", "probe", "message"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
async def test_the_same_bad_input_is_refused_the_same_way_on_the_server_and_in_a_kernel(
    make_engine: Any, registry: TaskRegistry, name: str, probe: Probe, message: str
) -> None:
    engine = await make_engine()
    server_error, server_metadata = await server_ctx_call(engine, registry, probe)

    bridge = FakeBridge()
    ctx = kernel_ctx(bridge)
    with pytest.raises(InvalidInput) as kernel_error:
        probe(ctx)

    assert isinstance(server_error, InvalidInput), server_error
    assert message in str(server_error)
    assert str(kernel_error.value) == str(server_error)
    # Refused means nothing changed and nothing was sent.
    assert server_metadata == START_METADATA and ctx.metadata.current == START_METADATA
    assert bridge.sent == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (lambda c: c.save_checkpoint("", 1), "a checkpoint key must be a string of 1 to 256 characters"),
        (lambda c: c.save_checkpoint("step", object()), "checkpoint 'step' must be JSON-serializable"),
    ],
)
async def test_bad_checkpoints_are_refused_the_same_way(make_engine: Any, registry: TaskRegistry, probe: Probe, message: str) -> None:
    engine = await make_engine()
    server_error, _ = await server_ctx_call(engine, registry, probe)
    bridge = FakeBridge()
    with pytest.raises(InvalidInput) as kernel_error:
        await probe(kernel_ctx(bridge))
    assert message in str(server_error) and str(kernel_error.value) == str(server_error)
    assert bridge.sent == []


def test_the_kernel_reserves_the_chat_events_for_the_server() -> None:
    """The one documented difference: ``message.*`` / ``toolcall.*`` belong to the server's chat
    task, so a kernel task may not emit them (the server applies the same wider set to frames)."""
    with pytest.raises(InvalidInput, match=r"event type 'message\.delta' is reserved \(the message\.\* events belong to Polaris\)"):
        kernel_ctx().emit("message.delta", {"text": "spoof"})


def good_writes(ctx: TaskContext) -> None:
    ctx.metadata.set("phase", "working")
    ctx.metadata.increment("count", 2)
    ctx.metadata.decrement("count")
    ctx.metadata.append("files", "a.py")
    ctx.metadata.append("word", "there")  # a scalar becomes the first item of a list
    ctx.metadata.remove("phase")
    ctx.logger.warning("careful", data={"x": 1})
    ctx.logger.info("y" * (MAX_LOG_MESSAGE_CHARS + 5))
    ctx.logger.debug("big data", data={"blob": "z" * 100_000})


EXPECTED_METADATA = {"word": ["hi", "there"], "count": 2, "files": ["a.py"]}


@pytest.mark.asyncio
async def test_accepted_writes_give_the_same_run_on_both_sides(make_engine: Any, registry: TaskRegistry) -> None:
    """The same writes on both contexts give the same metadata and log lines, and the frames the
    kernel context sends, applied on the server, give the server's run exactly that."""
    engine = await make_engine()
    server_logs: list[tuple[str, str, Any]] = []
    error, server_metadata = await server_ctx_call(engine, registry, good_writes)
    assert error is None and server_metadata == EXPECTED_METADATA
    for entry in await engine.store.logs(LAST_RUN[0]):
        server_logs.append((entry["level"], entry["message"], entry["data"]))

    bridge = FakeBridge()
    ctx = kernel_ctx(bridge)
    good_writes(ctx)
    assert ctx.metadata.current == EXPECTED_METADATA
    kernel_logs = [(f.level, f.message, f.data) for f in bridge.sent if isinstance(f, LogFrame)]
    assert kernel_logs == server_logs
    assert [level for level, _, _ in kernel_logs] == ["warn", "info", "debug"]
    assert kernel_logs[1][1].endswith(f"(cut: the message had {MAX_LOG_MESSAGE_CHARS + 5} characters)")
    assert kernel_logs[2][2]["truncated"] is True and kernel_logs[2][2]["bytes"] > 100_000

    # Replay the kernel's metadata frames through the server's rules (what kernel_routes does).
    changes: list[MetadataChange] = []
    replica = RunMetadata(dict(START_METADATA), changes.append)
    for frame in bridge.sent:
        if isinstance(frame, MetadataFrame):
            replica.apply(frame.op, frame.key, frame.value)
    assert replica.current == EXPECTED_METADATA
    assert [c.op for c in changes] == ["set", "increment", "increment", "append", "append", "remove"]


def test_the_kernel_context_is_a_task_context_built_from_the_run_frame() -> None:
    ctx = kernel_ctx()
    assert isinstance(ctx, TaskContext)
    assert (ctx.run_id, ctx.task_id, ctx.attempt, ctx.max_attempts, ctx.tags) == ("run_k", "t", 1, 3, ["a"])


@pytest.mark.asyncio
async def test_the_server_context_accepts_trigger_options_as_json_like_a_kernel(make_engine: Any, registry: TaskRegistry) -> None:
    seen: dict[str, Any] = {}

    @task(id="child", registry=registry)
    async def child(payload: Any, ctx: RunContext) -> Any:
        return payload

    @task(id="parent", registry=registry)
    async def parent(payload: Any, ctx: RunContext) -> None:
        seen["is_task_context"] = isinstance(ctx, TaskContext)
        seen["max_attempts"] = ctx.max_attempts
        result = await ctx.trigger_and_wait("child", 21, {"tags": ["json"], "maxAttempts": 1})
        seen["output"], seen["tags"] = result.output, result.run.tags
        try:
            await ctx.trigger("child", None, {"colour": "red"})
        except InvalidInput as exc:
            seen["refused"] = str(exc)

    engine = await make_engine()
    await (await engine.trigger("parent", None)).result(timeout_s=10)
    assert seen["is_task_context"] is True and seen["max_attempts"] >= 1
    assert seen["output"] == 21 and seen["tags"] == ["json"]
    assert "unknown option(s): colour" in seen["refused"]
