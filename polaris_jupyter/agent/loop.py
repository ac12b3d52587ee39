"""The agent tool loop (DESIGN §4): stream a model step, run its tool calls, repeat.

Up to ``max_steps`` model calls. Text is reported as deltas while it streams; tool calls are
assembled from their deltas by index and run once the step ends (see :mod:`tool_runner`).
Cancelling the task running the loop closes the HTTP stream at once and cancels running tools.
An optional gate (``agent/gate.py``) may refuse or hold a step's calls before they run; a held
loop stops with ``ToolCallsHeld`` and continues later from its ``LoopState`` (``resume=``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from polaris_jupyter.agent.chain import ChatStream, ProviderChain, SystemPrompt
from polaris_jupyter.agent.events import (
    FinishReason,
    LoopEvent,
    LoopResult,
    ProviderSelected,
    StepFinished,
    TextDelta,
    ToolCallRecord,
    Usage,
)
from polaris_jupyter.agent.gate import LoopState, ToolCallsHeld, ToolGate, VerdictKind, refuse
from polaris_jupyter.agent.tool_runner import PlannedCall, plan_call, run_tool_calls
from polaris_jupyter.tools.base import MAX_TOOL_OUTPUT_CHARS, ToolContext, ToolRegistry

__all__ = ["ToolChoice", "run_agent_loop"]

ToolChoice = str | dict[str, Any] | None

_CHOICE_KEYWORDS = ("auto", "none", "required")


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _StepOutput:
    text: str = ""
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    finish_reason: str = "stop"
    usage: Usage | None = None  # None: the server sent no usage (llama.cpp ignores include_usage)


def _normalize_choice(choice: ToolChoice, registry: ToolRegistry) -> ToolChoice:
    """``"auto"``/``"none"``/``"required"`` pass through, a tool name becomes a forced function choice."""
    if choice is None or isinstance(choice, dict):
        return choice
    if choice in _CHOICE_KEYWORDS:
        return choice
    if choice in registry:
        return {"type": "function", "function": {"name": choice}}
    raise ValueError(f"tool choice {choice!r} is neither auto/none/required nor a registered tool "
                     f"({', '.join(registry.names()) or 'no tools registered'})")


def _choice_for_step(step: int, first: str | None, per_step: Callable[[int], ToolChoice] | None) -> ToolChoice:
    if step == 0 and first is not None:
        return first
    return per_step(step) if per_step is not None else None


def _separator(text_so_far: str) -> str:
    """Text of a new step starts on a new paragraph, so the deltas join into readable text."""
    if not text_so_far or text_so_far.endswith("\n\n"):
        return ""
    return "\n" if text_so_far.endswith("\n") else "\n\n"


def _add_tool_delta(calls: dict[int, _PendingCall], index: int | None, call_id: str | None,
                    name: str | None, arguments: str | None) -> None:
    if index is None:  # servers that omit the index: a new id starts a new call
        known = any(c.id == call_id for c in calls.values())
        index = len(calls) if (call_id and not known) or not calls else max(calls)
    call = calls.setdefault(index, _PendingCall())
    if call_id and not call.id:
        call.id = call_id
    if name and name != call.name:
        call.name = name if not call.name else call.name + name
    if arguments:
        call.arguments.append(arguments)


async def _consume(stream: ChatStream, emit: Callable[[LoopEvent], Awaitable[None]],
                   text_so_far: str) -> _StepOutput:
    out = _StepOutput()
    parts: list[str] = []
    async for delta in stream:
        if delta.content:
            if not parts:
                sep = _separator(text_so_far)
                if sep:
                    await emit(TextDelta(sep))
            parts.append(delta.content)
            await emit(TextDelta(delta.content))
        for tc in delta.tool_calls:
            _add_tool_delta(out.calls, tc.index, tc.id, tc.name, tc.arguments)
        if delta.finish_reason:
            out.finish_reason = delta.finish_reason
        if delta.usage is not None:
            out.usage = delta.usage
    out.text = "".join(parts)
    return out


def _replan(state: LoopState, registry: ToolRegistry) -> list[PlannedCall]:
    """The held step's calls again, from its assistant message (same ids, same arguments)."""
    return [plan_call(c["id"], c["name"], c["arguments"], registry) for c in state.held]


def _plan(out: _StepOutput, registry: ToolRegistry) -> list[PlannedCall]:
    planned: list[PlannedCall] = []
    seen: set[str] = set()
    for _index, pending in sorted(out.calls.items()):
        call_id = pending.id if pending.id and pending.id not in seen else f"call_{uuid.uuid4().hex[:24]}"
        seen.add(call_id)
        planned.append(plan_call(call_id, pending.name, "".join(pending.arguments), registry))
    return planned


async def run_agent_loop(
    *,
    chain: ProviderChain,
    messages: list[dict[str, Any]],
    registry: ToolRegistry,
    ctx: ToolContext,
    max_steps: int = 10,
    first_tool_choice: str | None = None,
    tool_choice_per_step: Callable[[int], str | dict[str, Any] | None] | None = None,
    on_event: Callable[[LoopEvent], Awaitable[None]] | None = None,
    max_tool_output_chars: int = MAX_TOOL_OUTPUT_CHARS,
    temperature: float | None = None,
    system_prompt: SystemPrompt | None = None,
    gate: ToolGate | None = None,
    resume: LoopState | None = None,
) -> LoopResult:
    """Run the model with tools until it answers without tool calls or ``max_steps`` calls were made.

    ``messages`` is not modified; the full transcript (assistant and tool messages included) is
    ``LoopResult.messages``. ``first_tool_choice`` forces a tool (by name) or a mode on step 0;
    ``tool_choice_per_step(step)`` chooses for each step (0-based). Model errors propagate
    (:class:`~polaris_jupyter.agent.errors.ModelError`); tool errors go to the model as text.
    ``system_prompt(tool_names)`` builds the system message of each request from the tools it
    really sends (a server that cannot take tools gets a prompt that lists none).
    ``LoopResult.usage`` is None unless every step's server reported usage.
    ``gate`` reviews each step's calls (``agent/gate.py``); ``resume`` continues a loop that a
    gate held, from its state, at the held step's calls (``messages`` is the same request).
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    tools = registry.openai_tools() or None
    transcript: list[dict[str, Any]] = [dict(m) for m in messages]
    lock = asyncio.Lock()

    async def emit(event: LoopEvent) -> None:
        if on_event is not None:
            async with lock:  # tool tasks finish concurrently; the callback sees one event at a time
                await on_event(event)

    text = ""
    usage: Usage | None = Usage()
    records: list[ToolCallRecord] = []
    degraded_steps: list[int] = []
    notices: list[str] = []
    announced: tuple[str, str, str | None] | None = None
    provider = model = ""
    finish = FinishReason.STOP
    step = 0
    held_step: list[PlannedCall] | None = None
    if resume is not None:
        transcript.extend(dict(m) for m in resume.added)
        text, usage, records = resume.text, resume.usage_value(), resume.record_values()
        degraded_steps, notices = list(resume.degraded_steps), list(resume.notices)
        provider, model, step = resume.provider, resume.model, resume.step
        held_step = _replan(resume, registry)

    def state() -> LoopState:
        return LoopState(
            added=transcript[len(messages):], step=step, text=text,
            usage=None if usage is None else dataclasses.asdict(usage),
            records=[dataclasses.asdict(r) for r in records], degraded_steps=list(degraded_steps),
            notices=list(notices), provider=provider, model=model,
        )

    while True:
        if held_step is not None:  # continuing a held step: its model call was made already
            planned, held_step = held_step, None
            if planned:
                await _run_step(planned, gate, state, ctx, emit, step, max_tool_output_chars, records, transcript)
                continue
        if step >= max_steps:
            finish = FinishReason.MAX_STEPS
            break
        choice = _normalize_choice(_choice_for_step(step, first_tool_choice, tool_choice_per_step), registry)
        stream = await chain.open_stream(messages=transcript, tools=tools, tool_choice=choice if tools else None,
                                         temperature=temperature, system_prompt=system_prompt)
        async with stream:
            provider, model = stream.provider.name, stream.model
            if announced != (provider, model, stream.notice):
                announced = (provider, model, stream.notice)
                await emit(ProviderSelected(provider, model, stream.degraded, stream.notice))
            if stream.notice and stream.notice not in notices:
                notices.append(stream.notice)
            out = await _consume(stream, emit, text)
        if out.text:
            text += _separator(text) + out.text
        usage = usage + out.usage if usage is not None and out.usage is not None else None
        if stream.degraded:
            degraded_steps.append(step)
        truncated = out.finish_reason == "length"
        planned = [] if truncated else _plan(out, registry)
        assistant: dict[str, Any] = {"role": "assistant", "content": out.text}
        if planned:
            assistant["tool_calls"] = [
                {"id": c.call_id, "type": "function",
                 "function": {"name": c.name, "arguments": c.transcript_arguments()}}
                for c in planned
            ]
        transcript.append(assistant)
        await emit(StepFinished(step, out.finish_reason, out.usage, provider, model, stream.degraded,
                                len(planned)))
        step += 1
        if truncated:
            finish = FinishReason.LENGTH
            break
        if not planned:
            break
        await _run_step(planned, gate, state, ctx, emit, step, max_tool_output_chars, records, transcript)
    if system_prompt is not None:
        transcript.insert(0, {"role": "system", "content": system_prompt(registry.names())})
    return LoopResult(text=text, steps=step, usage=usage, provider=provider, model=model,
                      finish_reason=finish, messages=transcript, tool_calls=records,
                      degraded_steps=degraded_steps, notices=notices)


async def _run_step(
    planned: list[PlannedCall],
    gate: ToolGate | None,
    state: Callable[[], LoopState],
    ctx: ToolContext,
    emit: Callable[[LoopEvent], Awaitable[None]],
    step: int,
    max_output_chars: int,
    records: list[ToolCallRecord],
    transcript: list[dict[str, Any]],
) -> None:
    """Review (if gated) and run one step's calls; records and results join ``records`` and ``transcript``.
    Raises :class:`ToolCallsHeld` when the gate holds any of them (nothing of the step ran)."""
    if gate is not None:
        verdicts = await gate.review(planned, step - 1)
        held = [c for c in planned if (v := verdicts.get(c.call_id)) is not None and v.kind is VerdictKind.HOLD]
        at = state()  # with the step's calls: what a continuation re-plans (held, or under way)
        at.held = [{"id": c.call_id, "name": c.name, "arguments": c.raw_arguments} for c in planned]
        if held:
            raise ToolCallsHeld(at, held, planned)
        planned = [
            refuse(c, v.text) if (v := verdicts.get(c.call_id)) is not None and v.kind is VerdictKind.REFUSE else c
            for c in planned
        ]
        await gate.before_run(at, planned)
    step_records = await run_tool_calls(planned, ctx, emit, step=step - 1, max_output_chars=max_output_chars)
    records.extend(step_records)
    transcript.extend({"role": "tool", "tool_call_id": r.call_id, "content": r.result_text} for r in step_records)
    if gate is not None:
        await gate.after_step(state())
