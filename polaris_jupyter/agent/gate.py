"""Holding tool calls for a decision, and continuing the loop where it was held.

The tool loop asks an optional :class:`ToolGate` about each step's calls before running them.
A call may run, be refused (the model gets the refusal as the call's result, the tool is not
run), or be held. When any call of a step is held, the loop stops with :class:`ToolCallsHeld`,
carrying a :class:`LoopState`: everything needed to continue that step later without asking the
model again (the messages the loop added, its counters, the held step's calls). The caller keeps
the state durably (the chat turn saves it as a run checkpoint and suspends the run, see
``chat/approval_gate.py``) and later passes it back as ``run_agent_loop(resume=state)``: the
loop re-plans the held step from its assistant message, asks the gate again, and goes on.

The gate is also told right before a step's calls run and right after their results are in
(``before_run`` / ``after_step``), so a caller that keeps checkpoints can record that approved
calls are under way: a continuation that finds such a mark knows they may have been applied and
does not apply them twice.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from polaris_jupyter.agent.events import ToolCallRecord, Usage
from polaris_jupyter.agent.tool_runner import PlannedCall

__all__ = ["LoopState", "ToolCallsHeld", "ToolGate", "Verdict", "VerdictKind", "refuse"]


class VerdictKind(str, enum.Enum):
    RUN = "run"
    REFUSE = "refuse"
    HOLD = "hold"


@dataclass(frozen=True)
class Verdict:
    """What happens to one call: run it, refuse it with ``text`` as its result, or hold it."""

    kind: VerdictKind
    text: str = ""

    @classmethod
    def run(cls) -> Verdict:
        return cls(VerdictKind.RUN)

    @classmethod
    def hold(cls) -> Verdict:
        return cls(VerdictKind.HOLD)

    @classmethod
    def refuse(cls, text: str) -> Verdict:
        return cls(VerdictKind.REFUSE, text)


def refuse(call: PlannedCall, text: str) -> PlannedCall:
    """``call`` answered with ``text`` instead of running (the runner reports it as failed)."""
    return dataclasses.replace(call, problem=text if text.startswith("Error: ") else f"Error: {text}")


@dataclass
class LoopState:
    """Where a held loop stands, as JSON: ``added`` are the messages the loop appended to the
    request (the last one is the held step's assistant message with its tool calls)."""

    added: list[dict[str, Any]]
    step: int
    text: str
    usage: dict[str, int] | None
    records: list[dict[str, Any]] = field(default_factory=list)
    degraded_steps: list[int] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    provider: str = ""
    model: str = ""
    #: The calls of the step a continuation starts with (held, or under way when saved), as the
    #: model sent them: ``{id, name, arguments}`` (raw JSON text); empty: the next model step.
    held: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopState:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def usage_value(self) -> Usage | None:
        if self.usage is None:
            return None
        return Usage(self.usage.get("prompt_tokens", 0), self.usage.get("completion_tokens", 0),
                     self.usage.get("total_tokens", 0))

    def record_values(self) -> list[ToolCallRecord]:
        return [ToolCallRecord(**r) for r in self.records]


class ToolCallsHeld(Exception):
    """The loop stopped at a step whose calls wait for a decision (see the module docstring)."""

    def __init__(self, state: LoopState, held: list[PlannedCall], calls: list[PlannedCall]) -> None:
        super().__init__(f"{len(held)} tool call(s) wait for a decision: {', '.join(c.name for c in held)}")
        self.state = state
        self.held = held
        self.calls = calls


class ToolGate(Protocol):
    """Decides about each step's tool calls (see the module docstring)."""

    async def review(self, calls: list[PlannedCall], step: int) -> dict[str, Verdict]:
        """A verdict per call id (``step`` is the 0-based model step they come from); a call
        without one runs."""
        ...

    async def before_run(self, state: LoopState, calls: list[PlannedCall]) -> None: ...

    async def after_step(self, state: LoopState) -> None: ...
