"""What the tool loop reports while it runs (:data:`LoopEvent`) and when it is done (:class:`LoopResult`).

Events are small dataclasses so the caller (the ``process-message`` task, project generation,
a notebook) can ``match`` on them and turn them into store rows and WebSocket events.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FinishReason",
    "LoopEvent",
    "LoopResult",
    "ProviderSelected",
    "StepFinished",
    "TextDelta",
    "ToolCallFinished",
    "ToolCallRecord",
    "ToolCallStarted",
    "Usage",
]


class FinishReason(str, enum.Enum):
    """Why the loop stopped: the model was done, the step cap was hit, or the output was cut."""

    STOP = "stop"
    MAX_STEPS = "max_steps"
    LENGTH = "length"

    def __str__(self) -> str:
        return self.value


@dataclass
class Usage:
    """Token counts as the provider reported them (summed over steps by the loop). Where a server
    reports none, the loop has ``None`` instead of a Usage: unknown is never 0."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {"promptTokens": self.prompt_tokens, "completionTokens": self.completion_tokens,
                "totalTokens": self.total_tokens}


@dataclass
class ProviderSelected:
    """A step is answered by this provider/model (emitted on the first step and on every change
    of provider, model or notice). ``notice`` says why tools went unstreamed or unsent."""

    provider: str
    model: str
    degraded: bool = False
    notice: str | None = None


@dataclass
class TextDelta:
    """New assistant text, never repeated: the concatenation of all deltas is ``LoopResult.text``."""

    text: str


@dataclass
class ToolCallStarted:
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class ToolCallFinished:
    """A tool call ended. ``result_text`` is what the model sees (capped); ``summary`` is for the UI."""

    call_id: str
    name: str
    ok: bool
    summary: str
    result_text: str
    duration_ms: float
    error: str | None = None
    diff: str | None = None
    truncated: bool = False


@dataclass
class StepFinished:
    """One model call is done. ``finish_reason`` is the model's own (``stop``, ``tool_calls``, ...)."""

    step: int
    finish_reason: str
    usage: Usage | None  # None: the server reported no usage for this step
    provider: str = ""
    model: str = ""
    degraded: bool = False
    tool_calls: int = 0


LoopEvent = ProviderSelected | TextDelta | ToolCallStarted | ToolCallFinished | StepFinished


@dataclass
class ToolCallRecord:
    """One tool call of the run, as the result keeps it."""

    step: int
    call_id: str
    name: str
    arguments: dict[str, Any]
    ok: bool
    summary: str
    result_text: str
    duration_ms: float
    error: str | None = None
    diff: str | None = None
    truncated: bool = False


@dataclass
class LoopResult:
    """The outcome of :func:`run_agent_loop`."""

    text: str
    steps: int
    usage: Usage | None  # None unless every step's server reported usage
    provider: str
    model: str
    finish_reason: FinishReason
    messages: list[dict[str, Any]]
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    degraded_steps: list[int] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # why steps went degraded (ProviderSelected.notice)
