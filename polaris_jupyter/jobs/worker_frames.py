"""The kernel-worker protocol: the frames between a kernel that defines tasks and the server that
owns their runs, over the WebSocket ``/polaris/api/v1/kernel-worker``.

Each frame is a JSON object whose ``type`` names one of the dataclasses below; field names are
the camelCase of the attributes (``run_id`` → ``runId``). ``to_json()`` gives the wire object,
:func:`parse_frame` (or ``Cls.from_json``) checks one and raises :class:`FrameError` with what
is wrong, so neither end handles a malformed frame by hand. Unknown fields are ignored (a newer
peer may send more); unknown types, missing fields and wrong types are refused.

The conversation::

    kernel                                         server
    claim {id, tasks: [TaskSpec]}           →      claimed {id, tasks, refused}
                                            ←      run {runId, taskId, attempt, payload, run}
    log / metadata / emit {runId, …}        →      (applied to the run; a refusal → error)
    checkpoint / trigger {id, runId, …}     →      ack {id, ok, data | error}
                                            ←      cancel {runId}
    result {runId, attempt, ok, output | error, abort}
    (a frame the server cannot use)         →      error {error, frameType, id}  (or ack ok=false
                                                   when the frame was a request with an id)
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from polaris_jupyter.jobs._models import RetryPolicy
from polaris_jupyter.jobs._registry import QueueDef, TaskDef, TaskFn
from polaris_jupyter.jobs._wire import FrameError, Wire, type_name
from polaris_jupyter.jobs.context import MetadataOp

__all__ = [
    "KERNEL_FRAMES",
    "MAX_TASK_ID_CHARS",
    "SERVER_FRAMES",
    "AckFrame",
    "CancelFrame",
    "CheckpointFrame",
    "ClaimFrame",
    "ClaimedFrame",
    "EmitFrame",
    "ErrorFrame",
    "Frame",
    "FrameError",
    "KernelFrame",
    "LogFrame",
    "MetadataFrame",
    "RequestFrame",
    "ResultFrame",
    "RunFrame",
    "RunSnapshot",
    "ServerFrame",
    "TaskError",
    "TaskSpec",
    "TriggerFrame",
    "parse_frame",
]

MAX_TASK_ID_CHARS = 200
_F = TypeVar("_F", bound="Frame")


class Frame(Wire):
    """A message on the kernel-worker socket; ``TYPE`` is its ``type`` field."""

    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.LABEL = f"{cls.TYPE!r} frame"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, **super().to_json()}

    def dumps(self) -> str:
        """The frame as a WebSocket text message (values that are not JSON become their ``str()``)."""
        return json.dumps(self.to_json(), separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls: type[_F], data: Any) -> _F:
        """Check ``data`` (a decoded JSON object) and build the frame; raises :class:`FrameError`."""
        frame = parse_frame(data, {cls.TYPE: cls})
        assert isinstance(frame, cls)
        return frame


# -- objects inside frames --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TaskSpec(Wire):
    """What the server needs to store and schedule a kernel task's runs (an item of ``claim``)."""

    LABEL: ClassVar[str] = "task definition"
    id: str
    retry: dict[str, Any] | None = None
    queue: dict[str, Any] | None = None
    max_duration_s: float | None = None
    ttl_s: float | None = None
    description: str = ""

    @classmethod
    def from_json(cls, data: Any) -> TaskSpec:
        if not isinstance(data, dict):
            raise FrameError(f"bad task definition: expected an object, got {type_name(data)}")
        return cls._decode(data)

    def _validate(self) -> None:
        if not 0 < len(self.id) <= MAX_TASK_ID_CHARS:
            raise FrameError(f"a task id must be a string of 1 to {MAX_TASK_ID_CHARS} characters")
        for name, value in (("maxDurationS", self.max_duration_s), ("ttlS", self.ttl_s)):
            if value is not None and not value >= 0:
                raise FrameError(f"bad task definition: {name!r} must be 0 or more, got {value!r}")

    @classmethod
    def from_task(cls, definition: TaskDef, description: str) -> TaskSpec:
        """The kernel's side: the spec of a task in its registry."""
        return cls(
            id=definition.id,
            retry=definition.retry.to_json() if definition.retry else None,
            queue=definition.queue.to_json(),
            max_duration_s=definition.max_duration_s,
            ttl_s=definition.ttl_s,
            description=definition.description or description,
        )

    def to_task(self, fn: TaskFn) -> TaskDef:
        """The server's side: a task definition running ``fn``; raises :class:`FrameError` when the
        retry policy or queue cannot be used."""
        try:
            retry = RetryPolicy.from_json(self.retry) if self.retry is not None else None
            queue = self.queue or {}
            limit = queue.get("concurrencyLimit")
            queue_def = QueueDef(str(queue.get("name") or "default"), int(limit) if limit is not None else None)
        except (TypeError, ValueError, KeyError) as exc:
            raise FrameError(f"bad task definition: {exc}") from None
        return TaskDef(
            id=self.id,
            fn=fn,
            retry=retry,
            queue=queue_def,
            max_duration_s=self.max_duration_s or None,
            ttl_s=self.ttl_s or None,
            description=self.description[:300] or "defined in a kernel",
        )


@dataclass(frozen=True, kw_only=True)
class RunSnapshot(Wire):
    """The run's state an attempt starts from (sent with ``run``)."""

    LABEL: ClassVar[str] = "'run' frame's run"
    max_attempts: int = 1
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TaskError(Wire):
    """How a task failed in the kernel: the exception's class name, message and traceback."""

    LABEL: ClassVar[str] = "'result' frame's error"
    name: str = "Error"
    message: str
    stack: str | None = None


# -- kernel → server --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClaimFrame(Frame):
    """Run these tasks' attempts here. Items are checked one by one (``TaskSpec.from_json``), so
    one bad definition is refused in ``claimed.refused`` without failing the others."""

    TYPE: ClassVar[str] = "claim"
    id: str | None = None
    tasks: list[Any]


@dataclass(frozen=True, kw_only=True)
class ResultFrame(Frame):
    """The attempt ended: ``output`` when ``ok``, else ``error`` (``abort``: no retries)."""

    TYPE: ClassVar[str] = "result"
    run_id: str
    attempt: int | None = None
    ok: bool
    output: Any = None
    error: TaskError | None = None
    abort: bool = False
    canceled: bool = False

    def _validate(self) -> None:
        if not self.ok and self.error is None:
            raise FrameError("bad 'result' frame: a failed result needs an 'error'")


@dataclass(frozen=True, kw_only=True)
class LogFrame(Frame):
    TYPE: ClassVar[str] = "log"
    run_id: str
    level: str = "info"
    message: str = ""
    data: Any = None


@dataclass(frozen=True, kw_only=True)
class MetadataFrame(Frame):
    """One metadata change; ``value`` is the set/appended value or the increment."""

    TYPE: ClassVar[str] = "metadata"
    run_id: str
    op: MetadataOp
    key: str
    value: Any = None


@dataclass(frozen=True, kw_only=True)
class EmitFrame(Frame):
    TYPE: ClassVar[str] = "emit"
    run_id: str
    event_type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CheckpointFrame(Frame):
    """Save a checkpoint; answered by ``ack`` once it is on disk."""

    TYPE: ClassVar[str] = "checkpoint"
    id: str
    run_id: str
    key: str
    value: Any = None


@dataclass(frozen=True, kw_only=True)
class TriggerFrame(Frame):
    """Trigger a child run from the attempt's context; ``ack.data`` is ``{id, isCached}``."""

    TYPE: ClassVar[str] = "trigger"
    id: str
    run_id: str
    task_id: str
    payload: Any = None
    options: dict[str, Any] | None = None


# -- server → kernel --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClaimedFrame(Frame):
    TYPE: ClassVar[str] = "claimed"
    id: str | None = None
    tasks: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RunFrame(Frame):
    """Run one attempt."""

    TYPE: ClassVar[str] = "run"
    run_id: str
    task_id: str
    attempt: int
    payload: Any = None
    run: RunSnapshot = field(default_factory=RunSnapshot)


@dataclass(frozen=True, kw_only=True)
class CancelFrame(Frame):
    TYPE: ClassVar[str] = "cancel"
    run_id: str


@dataclass(frozen=True, kw_only=True)
class AckFrame(Frame):
    """The answer to a request frame (``checkpoint``, ``trigger``, a malformed one with an id)."""

    TYPE: ClassVar[str] = "ack"
    id: str | None = None
    ok: bool
    data: Any = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class ErrorFrame(Frame):
    """The server could not use a frame the kernel sent (malformed, or refused by the run)."""

    TYPE: ClassVar[str] = "error"
    error: str
    frame_type: str | None = None
    id: str | None = None


KernelFrame = ClaimFrame | ResultFrame | LogFrame | MetadataFrame | EmitFrame | CheckpointFrame | TriggerFrame
ServerFrame = ClaimedFrame | RunFrame | CancelFrame | AckFrame | ErrorFrame
#: Frames a kernel sends that the server answers (``claimed`` or ``ack``, matched by ``id``).
RequestFrame = ClaimFrame | CheckpointFrame | TriggerFrame
KERNEL_FRAMES: dict[str, type[Frame]] = {c.TYPE: c for c in typing.get_args(KernelFrame)}
SERVER_FRAMES: dict[str, type[Frame]] = {c.TYPE: c for c in typing.get_args(ServerFrame)}


def parse_frame(message: str | bytes | Mapping[str, Any], accept: Mapping[str, type[Frame]]) -> Frame:
    """Decode one WebSocket message (or an already decoded object) into a frame of one of the
    ``accept`` types (:data:`KERNEL_FRAMES` on the server, :data:`SERVER_FRAMES` in a kernel)."""
    if isinstance(message, (str, bytes)):
        try:
            data = json.loads(message)
        except ValueError:
            raise FrameError(f"a frame must be a JSON object; got {message[:40]!r}") from None
    else:
        data = message
    if not isinstance(data, Mapping):
        raise FrameError(f"a frame must be a JSON object, got {type_name(data)}")
    request_id = data.get("id") if isinstance(data.get("id"), str) else None
    kind = data.get("type")
    cls = accept.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(sorted(accept))
        raise FrameError(f"unknown frame type {kind!r}; expected one of {known}", request_id=request_id)
    try:
        return cls._decode(data)
    except FrameError as exc:
        raise FrameError(str(exc), request_id=request_id, frame_type=cls.TYPE) from None
