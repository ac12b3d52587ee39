"""The contract of a task's ``ctx``, written once for every place a task runs.

A task function gets ``(payload, ctx)``. On the server ``ctx`` is the engine's ``RunContext``;
in a kernel that defines the task it is the kernel bridge's context, whose writes travel to the
server over the kernel-worker socket. Both implement :class:`TaskContext`, and both build their
``ctx.metadata`` and ``ctx.logger`` from the classes here, so a task behaves the same in either
place: the same bad input is refused with the same :class:`~polaris_jupyter.errors.InvalidInput`
message, whether the task runs in the server or in a notebook.

The classes are parameterised by a *sink*: what happens to a change once the rules accepted it
(the server persists and streams it; the kernel sends it as a frame, and the server applies it
again through the same rules, so a kernel cannot bypass them).

Example::

    from polaris_jupyter.jobs import TaskContext, task

    @task(id="resize")
    async def resize(payload: dict, ctx: TaskContext) -> dict:
        ctx.metadata.increment("files")
        ctx.logger.info("resized", data={"file": payload["file"]})
        return {"ok": True}
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast, runtime_checkable

from polaris_jupyter.jobs._models import InvalidInput, RunStatus, TriggerOptions
from polaris_jupyter.jobs._options import MAX_PAYLOAD_BYTES, check_json_size

__all__ = [
    "EVENT_PREFIXES_RESERVED_FOR_ENGINE",
    "EVENT_PREFIXES_RESERVED_FOR_SERVER",
    "LOG_LEVELS",
    "MAX_EVENT_DATA_BYTES",
    "MAX_LOG_DATA_BYTES",
    "MAX_LOG_MESSAGE_CHARS",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_KEY_CHARS",
    "MAX_OUTPUT_BYTES",
    "METADATA_OPS",
    "LogSink",
    "MetadataChange",
    "MetadataOp",
    "MetadataSink",
    "RunLogger",
    "RunMetadata",
    "TaskContext",
    "TaskRunHandle",
    "TaskRunResult",
    "check_checkpoint",
    "check_event",
    "check_output",
]

#: Run metadata is kept small: it is sent with every run listing.
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_KEY_CHARS = 256
MetadataOp = Literal["set", "append", "increment", "remove"]
METADATA_OPS: tuple[MetadataOp, ...] = ("set", "append", "increment", "remove")

LOG_LEVELS = ("debug", "info", "warn", "error")
_LEVEL_ALIASES = {"warning": "warn"}
#: A log line longer than this is cut (with a note saying so): a log must never fail a run.
MAX_LOG_MESSAGE_CHARS = 16 * 1024
#: Log ``data`` larger than this once encoded is replaced by a preview (with its size).
MAX_LOG_DATA_BYTES = 64 * 1024
_LOG_DATA_PREVIEW_CHARS = 2000

#: A task's return value, stored with the run.
MAX_OUTPUT_BYTES = 10 * MAX_PAYLOAD_BYTES

#: A custom event's data is a JSON object of at most this many bytes.
MAX_EVENT_DATA_BYTES = 256 * 1024
MAX_EVENT_TYPE_CHARS = 100
#: The engine's own events: no task may emit them (readers rely on their shape).
EVENT_PREFIXES_RESERVED_FOR_ENGINE: tuple[str, ...] = ("run.",)
#: Also refused from tasks defined in a kernel: the chat's events belong to the server's tasks.
EVENT_PREFIXES_RESERVED_FOR_SERVER: tuple[str, ...] = ("run.", "message.", "toolcall.")


# -- metadata ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetadataChange:
    """One accepted change: ``value`` is the set/appended value or the increment; ``metadata`` the
    whole object after the change (what the sink stores)."""

    op: MetadataOp
    key: str
    value: Any
    metadata: dict[str, Any]


MetadataSink = Callable[[MetadataChange], None]


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_METADATA_KEY_CHARS:
        shown = f"{key[:20]!r}… ({len(key)} characters)" if isinstance(key, str) and key else repr(key)
        raise InvalidInput(f"a metadata key must be a string of 1 to {MAX_METADATA_KEY_CHARS} characters, got {shown}")
    return key


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Encodes as the wire does: compact, values that are not JSON as their ``str()``. One instance,
#: because building an encoder per call costs more than encoding a small event.
_LENIENT = json.JSONEncoder(separators=(",", ":"), default=str)


def _encode_strict(value: Any, what: str) -> str:
    """Compact JSON, refusing what a browser could not parse (objects, NaN, infinities)."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} must be JSON-serializable (no NaN or infinity): {exc}") from None


class RunMetadata:
    """``ctx.metadata``: a JSON object on the run, changed with set/append/increment/remove.

    Every change is checked here (the key, the value is JSON, an increment is a number on a
    number, the whole object stays under :data:`MAX_METADATA_BYTES`), applied to a copy, and
    handed to ``sink``; a refused change leaves the metadata as it was.
    """

    def __init__(self, current: dict[str, Any], sink: MetadataSink) -> None:
        self._current = current
        self._sink = sink

    @property
    def current(self) -> dict[str, Any]:
        return self._current

    def get(self, key: str, default: Any = None) -> Any:
        return self._current.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.apply("set", key, value)

    def append(self, key: str, value: Any) -> None:
        """Append to the list under ``key`` (a missing key starts one; a scalar becomes the first item)."""
        self.apply("append", key, value)

    def increment(self, key: str, by: float = 1) -> None:
        """Add ``by`` to the number under ``key`` (a missing key counts from 0)."""
        self.apply("increment", key, by)

    def decrement(self, key: str, by: float = 1) -> None:
        if not _is_number(by):
            raise InvalidInput(f"metadata {key!r} can only be changed by a number, got {by!r}")
        self.apply("increment", key, -by)

    def remove(self, key: str) -> None:
        self.apply("remove", key, None)

    def apply(self, op: str, key: Any, value: Any = None) -> None:
        """Apply one change by name: what the methods above call, and what the server does with
        a kernel's ``metadata`` frame."""
        if op not in METADATA_OPS:
            raise InvalidInput(f"unknown metadata operation {op!r}; known: {', '.join(METADATA_OPS)}")
        key = _check_key(key)
        candidate: dict[str, Any] = json.loads(_encode_strict(self._current, "run metadata"))
        if op == "set":
            _encode_strict(value, f"metadata {key!r}")
            candidate[key] = value
        elif op == "append":
            _encode_strict(value, f"metadata {key!r}")
            existing = candidate.get(key)
            candidate[key] = [value] if existing is None else [*existing, value] if isinstance(existing, list) else [existing, value]
        elif op == "increment":
            if not _is_number(value) or not math.isfinite(value):
                raise InvalidInput(f"metadata {key!r} can only be changed by a number, got {value!r}")
            current = candidate.get(key, 0)
            if not _is_number(current):
                raise InvalidInput(f"metadata {key!r} is not a number")
            candidate[key] = current + value
        else:
            candidate.pop(key, None)
        size = len(_encode_strict(candidate, "run metadata").encode())
        if size > MAX_METADATA_BYTES:
            raise InvalidInput(f"run metadata would be {size} bytes; the limit is {MAX_METADATA_BYTES}")
        self._current = candidate
        self._sink(MetadataChange(cast("MetadataOp", op), key, value, candidate))


# -- logs -------------------------------------------------------------------------------------------

LogSink = Callable[[str, str, Any], None]


class RunLogger:
    """``ctx.logger``: log lines stored with the run (per attempt) and streamed as events.

    The level must be one of :data:`LOG_LEVELS` (``warning`` is ``warn``); anything else is
    refused. The message is text: a longer one than :data:`MAX_LOG_MESSAGE_CHARS` is cut, and
    ``data`` larger than :data:`MAX_LOG_DATA_BYTES` once encoded is replaced by a preview, both
    saying so, because logging must never fail a run. Non-JSON values in ``data`` are written as
    their ``str()``. ``sink(level, message, data)`` stores or forwards the accepted line.
    """

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def log(self, level: str, message: Any, data: Any = None) -> None:
        level = _LEVEL_ALIASES.get(level, level) if isinstance(level, str) else level
        if level not in LOG_LEVELS:
            raise InvalidInput(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        text = message if isinstance(message, str) else str(message)
        if len(text) > MAX_LOG_MESSAGE_CHARS:
            text = f"{text[:MAX_LOG_MESSAGE_CHARS]}… (cut: the message had {len(text)} characters)"
        if data is not None and not isinstance(data, (bool, int, float)):
            encoded = _LENIENT.encode(data)
            if len(encoded) > MAX_LOG_DATA_BYTES:
                data = {"truncated": True, "bytes": len(encoded), "preview": encoded[:_LOG_DATA_PREVIEW_CHARS]}
        self._sink(level, text, data)

    def debug(self, message: Any, data: Any = None) -> None:
        self.log("debug", message, data)

    def info(self, message: Any, data: Any = None) -> None:
        self.log("info", message, data)

    def warn(self, message: Any, data: Any = None) -> None:
        self.log("warn", message, data)

    warning = warn

    def error(self, message: Any, data: Any = None) -> None:
        self.log("error", message, data)


# -- checkpoints and events -------------------------------------------------------------------------


def check_checkpoint(key: Any, value: Any) -> str:
    """Refuse a checkpoint key that is not a short string, or a value that is not JSON or too large."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_METADATA_KEY_CHARS:
        raise InvalidInput(f"a checkpoint key must be a string of 1 to {MAX_METADATA_KEY_CHARS} characters, got {key!r}")
    _encode_strict(value, f"checkpoint {key!r}")
    check_json_size(value, f"checkpoint {key!r}", MAX_PAYLOAD_BYTES)
    return key


_SCALARS = (type(None), bool, int, float)


def _flat_and_small(data: dict[str, Any], limit_bytes: int) -> bool:
    """True when ``data`` holds only scalars and strings short enough that its JSON cannot reach
    ``limit_bytes`` (6 bytes per character at worst, ``\\uXXXX``): the common event needs no
    encoding to be measured (events can be frequent, e.g. streamed text)."""
    budget = limit_bytes // 6 - 64
    for key, value in data.items():
        kind = type(value)
        if type(key) is not str:
            return False
        if kind is str:
            budget -= len(value) + len(key) + 8
        elif kind in _SCALARS:
            budget -= len(key) + 40
        else:
            return False
    return budget > 0


def check_output(output: Any) -> None:
    """Refuse a task's return value that is not JSON or larger than :data:`MAX_OUTPUT_BYTES`."""
    check_json_size(output, "task output", MAX_OUTPUT_BYTES)


def check_event(type: Any, data: Any, reserved: tuple[str, ...] = EVENT_PREFIXES_RESERVED_FOR_ENGINE) -> None:
    """Refuse a custom event whose type is not a short name outside ``reserved``, or whose data is
    not a JSON object under :data:`MAX_EVENT_DATA_BYTES` (non-JSON values count as their ``str()``,
    as they are sent)."""
    if not isinstance(type, str) or not 0 < len(type) <= MAX_EVENT_TYPE_CHARS:
        raise InvalidInput(f"an event type must be a string of 1 to {MAX_EVENT_TYPE_CHARS} characters, got {type!r}")
    if type.startswith(reserved):
        prefix = next(p for p in reserved if type.startswith(p))
        raise InvalidInput(f"event type {type!r} is reserved (the {prefix}* events belong to Polaris); pick your own prefix")
    if not isinstance(data, dict):
        raise InvalidInput(f"the data of event {type!r} must be a JSON object, got {data.__class__.__name__}")
    if _flat_and_small(data, MAX_EVENT_DATA_BYTES):
        return
    size = len(_LENIENT.encode(data))
    if size > MAX_EVENT_DATA_BYTES:
        raise InvalidInput(f"the data of event {type!r} is {size} bytes; the limit is {MAX_EVENT_DATA_BYTES}")


# -- the protocol -----------------------------------------------------------------------------------


class TaskRunResult(Protocol):
    """What ``ctx.trigger_and_wait`` returns: ``ok`` with ``output``, or the ``error``; ``run`` is
    the child run (a ``Run`` on the server, its JSON in a kernel)."""

    @property
    def ok(self) -> bool: ...
    @property
    def output(self) -> Any: ...
    @property
    def error(self) -> dict[str, Any] | None: ...
    @property
    def run(self) -> Any: ...


class TaskRunHandle(Protocol):
    """A child run triggered from a task: its id, whether an idempotency key returned an existing
    run, and ``status()`` / ``result()`` / ``cancel()``."""

    @property
    def id(self) -> str: ...
    @property
    def is_cached(self) -> bool: ...
    async def status(self) -> RunStatus: ...
    async def result(self, timeout_s: float | None = None) -> TaskRunResult: ...
    async def cancel(self) -> Any: ...


@runtime_checkable
class TaskContext(Protocol):
    """The ``ctx`` every task function gets, wherever it runs (server engine or a kernel).

    Identity: ``run_id``, ``task_id``, ``attempt`` (1-based), ``max_attempts``, ``payload``,
    ``tags``. Writes: ``metadata`` (:class:`RunMetadata`), ``logger`` (:class:`RunLogger`),
    ``save_checkpoint`` (durable before it returns; ``checkpoint`` reads it back, also in a later
    attempt), ``emit`` (a custom event on the run's stream, see :func:`check_event`). Children:
    ``trigger`` / ``trigger_and_wait``, with ``options`` a ``TriggerOptions`` or its JSON form.
    """

    @property
    def run_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def payload(self) -> Any: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def metadata(self) -> RunMetadata: ...
    @property
    def logger(self) -> RunLogger: ...

    def checkpoint(self, key: str) -> Any: ...
    async def save_checkpoint(self, key: str, value: Any) -> None: ...
    def emit(self, type: str, data: dict[str, Any]) -> None: ...
    async def trigger(
        self, task_id: str, payload: Any = None, options: TriggerOptions | dict[str, Any] | None = None
    ) -> TaskRunHandle: ...
    async def trigger_and_wait(
        self, task_id: str, payload: Any = None, options: TriggerOptions | dict[str, Any] | None = None
    ) -> TaskRunResult: ...
