"""The kernel-worker frames: every frame survives the wire unchanged, and every malformed frame is
refused with a message naming what is wrong (and the request id, so a request can be answered)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polaris_jupyter.jobs import InvalidInput, QueueDef, RetryPolicy, TaskDef
from polaris_jupyter.jobs.worker_frames import (
    KERNEL_FRAMES,
    SERVER_FRAMES,
    AckFrame,
    CancelFrame,
    CheckpointFrame,
    ClaimedFrame,
    ClaimFrame,
    EmitFrame,
    ErrorFrame,
    Frame,
    FrameError,
    LogFrame,
    MetadataFrame,
    ResultFrame,
    RunFrame,
    RunSnapshot,
    TaskError,
    TaskSpec,
    TriggerFrame,
    parse_frame,
)

KERNEL_SAMPLES: list[Frame] = [
    ClaimFrame(id="k1", tasks=[{"id": "t"}]),
    ResultFrame(run_id="run_1", attempt=2, ok=True, output={"n": [1, 2]}),
    ResultFrame(run_id="run_1", attempt=1, ok=False, error=TaskError(name="ValueError", message="no", stack="Traceback"), abort=True),
    ResultFrame(run_id="run_1", ok=False, canceled=True, error=TaskError(name="Canceled", message="canceled in the kernel")),
    LogFrame(run_id="run_1", level="warn", message="careful", data={"x": 1}),
    MetadataFrame(run_id="run_1", op="increment", key="count", value=2.5),
    MetadataFrame(run_id="run_1", op="remove", key="count"),
    EmitFrame(run_id="run_1", event_type="custom.progress", data={"done": 1}),
    CheckpointFrame(id="k2", run_id="run_1", key="step", value=None),
    TriggerFrame(id="k3", run_id="run_1", task_id="child", payload=[1], options={"tags": ["a"]}),
]
SERVER_SAMPLES: list[Frame] = [
    ClaimedFrame(id="k1", tasks=["t"], refused={"u": "a task with this id is defined by the server itself"}),
    RunFrame(run_id="run_1", task_id="t", attempt=3, payload={"a": 1},
             run=RunSnapshot(max_attempts=5, tags=["x"], metadata={"m": 1}, checkpoints={"c": [1]})),
    CancelFrame(run_id="run_1"),
    AckFrame(id="k2", ok=True, data={"id": "run_2", "isCached": False}),
    AckFrame(id="k3", ok=False, error="the run run_1 is not executing in this kernel"),
    ErrorFrame(error="unknown frame type 'x'", frame_type=None),
]


@pytest.mark.parametrize("frame", KERNEL_SAMPLES + SERVER_SAMPLES, ids=lambda f: f.TYPE)
def test_every_frame_round_trips_through_the_wire(frame: Frame) -> None:
    accept = KERNEL_FRAMES if frame.TYPE in KERNEL_FRAMES else SERVER_FRAMES
    text = frame.dumps()
    assert json.loads(text)["type"] == frame.TYPE
    assert parse_frame(text, accept) == frame
    assert type(frame).from_json(json.loads(text)) == frame
    assert parse_frame(frame.to_json(), accept) == frame


def test_the_wire_names_are_camel_case_and_each_end_knows_its_peers_frames() -> None:
    wire = RunFrame(run_id="r", task_id="t", attempt=1, run=RunSnapshot(max_attempts=2)).to_json()
    assert wire == {"type": "run", "runId": "r", "taskId": "t", "attempt": 1, "payload": None,
                    "run": {"maxAttempts": 2, "tags": [], "metadata": {}, "checkpoints": {}}}
    assert EmitFrame(run_id="r", event_type="e").to_json()["eventType"] == "e"
    assert set(KERNEL_FRAMES) == {"claim", "result", "log", "metadata", "emit", "checkpoint", "trigger"}
    assert set(SERVER_FRAMES) == {"claimed", "run", "cancel", "ack", "error"}
    with pytest.raises(FrameError, match="unknown frame type 'run'"):
        parse_frame(wire, KERNEL_FRAMES)  # a kernel cannot send the server's frames


def test_unknown_fields_are_ignored_and_optional_ones_default() -> None:
    frame = parse_frame({"type": "log", "runId": "r", "newer": True}, KERNEL_FRAMES)
    assert frame == LogFrame(run_id="r", level="info", message="", data=None)
    run = parse_frame({"type": "run", "runId": "r", "taskId": "t", "attempt": 1}, SERVER_FRAMES)
    assert isinstance(run, RunFrame) and run.run == RunSnapshot() and run.run.max_attempts == 1


def test_values_that_are_not_json_are_sent_as_text() -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    sent = json.loads(LogFrame(run_id="r", message="m", data={"obj": Thing()}).dumps())
    assert sent["data"] == {"obj": "a thing"}


MALFORMED: list[tuple[Any, str, str | None]] = [
    ("not json", "a frame must be a JSON object; got 'not json'", None),
    (b"\xff\xfe", "a frame must be a JSON object", None),
    ("[1, 2]", "a frame must be a JSON object, got a list", None),
    ("3", "a frame must be a JSON object, got 3", None),
    ({"runId": "r"}, "unknown frame type None; expected one of checkpoint, claim, emit, log, metadata, result, trigger", None),
    ({"type": "nonsense", "id": "k9"}, "unknown frame type 'nonsense'", "k9"),
    ({"type": "result", "ok": True}, "bad 'result' frame: 'runId' is missing", None),
    ({"type": "result", "runId": 7, "ok": True}, "bad 'result' frame: 'runId' must be a string, got 7", None),
    ({"type": "result", "runId": "r", "ok": "yes"}, "bad 'result' frame: 'ok' must be true or false, got 'yes'", None),
    ({"type": "result", "runId": "r", "ok": False}, "bad 'result' frame: a failed result needs an 'error'", None),
    ({"type": "result", "runId": "r", "ok": False, "error": {"name": "E"}}, "bad 'result' frame's error: 'message' is missing", None),
    ({"type": "result", "runId": "r", "ok": True, "attempt": True}, "'attempt' must be an integer or null, got True", None),
    ({"type": "metadata", "runId": "r", "op": "zap", "key": "k"},
     "bad 'metadata' frame: 'op' must be one of 'set', 'append', 'increment', 'remove', got 'zap'", None),
    ({"type": "metadata", "runId": "r", "op": "set", "key": None}, "'key' must be a string, got null", None),
    ({"type": "emit", "runId": "r", "eventType": "e", "data": [1]}, "bad 'emit' frame: 'data' must be an object, got a list", None),
    ({"type": "checkpoint", "id": "k4", "runId": "r"}, "bad 'checkpoint' frame: 'key' is missing", "k4"),
    ({"type": "trigger", "id": "k5", "runId": "r", "taskId": "t", "options": "fast"}, "'options' must be an object or null, got 'fast'", "k5"),
    ({"type": "claim", "id": "k6", "tasks": {"id": "t"}}, "bad 'claim' frame: 'tasks' must be a list, got an object", "k6"),
]


@pytest.mark.parametrize(("message", "expected", "request_id"), MALFORMED)
def test_malformed_frames_are_refused_with_what_is_wrong(message: Any, expected: str, request_id: str | None) -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(message, KERNEL_FRAMES)
    assert expected in str(caught.value)
    assert caught.value.request_id == request_id  # so the server can fail that request, not time it out
    assert isinstance(caught.value, InvalidInput)


def test_server_frames_from_a_broken_server_are_refused_too() -> None:
    with pytest.raises(FrameError, match="'run' frame's run: 'maxAttempts' must be an integer, got '3'"):
        parse_frame({"type": "run", "runId": "r", "taskId": "t", "attempt": 1, "run": {"maxAttempts": "3"}}, SERVER_FRAMES)
    with pytest.raises(FrameError, match="'refused' must be an object, got a list"):
        ClaimedFrame.from_json({"type": "claimed", "refused": []})
    with pytest.raises(FrameError, match="unknown frame type 'ack'"):
        CancelFrame.from_json({"type": "ack", "ok": True})


def test_a_task_spec_carries_a_kernel_task_to_the_server() -> None:
    async def fn(payload: Any, ctx: Any) -> None:
        return None

    definition = TaskDef(id="k-task", fn=fn, retry=RetryPolicy(max_attempts=4, min_timeout_s=2), queue=QueueDef("q", 3),
                         max_duration_s=60, ttl_s=600)
    spec = TaskSpec.from_task(definition, "defined in kernel abc")
    assert TaskSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    rebuilt = spec.to_task(fn)
    assert (rebuilt.id, rebuilt.retry, rebuilt.queue, rebuilt.max_duration_s, rebuilt.ttl_s, rebuilt.description) == (
        "k-task", definition.retry, QueueDef("q", 3), 60, 600, "defined in kernel abc")
    assert TaskSpec.from_json({"id": "bare"}).to_task(fn).queue == QueueDef("default")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (7, "bad task definition: expected an object, got 7"),
        ({"id": ""}, "a task id must be a string of 1 to 200 characters"),
        ({"id": "x" * 201}, "a task id must be a string of 1 to 200 characters"),
        ({"id": "t", "retry": 3}, "bad task definition: 'retry' must be an object or null, got 3"),
        ({"id": "t", "ttlS": -1}, "bad task definition: 'ttlS' must be 0 or more"),
    ],
)
def test_bad_task_specs_are_refused_one_by_one(raw: Any, expected: str) -> None:
    with pytest.raises(FrameError, match=expected.replace("(", r"\(")):
        TaskSpec.from_json(raw)


def test_a_spec_whose_retry_policy_cannot_be_used_is_a_bad_task_definition() -> None:
    spec = TaskSpec.from_json({"id": "t", "retry": {"maxAttempts": "many"}})
    with pytest.raises(FrameError, match="bad task definition"):
        spec.to_task(lambda payload, ctx: None)  # type: ignore[arg-type,return-value]
