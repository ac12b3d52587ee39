"""One chat turn: an attempt of ``process-message`` at one assistant message.

A :class:`ChatTurn` is made for every attempt and owns the message while it runs: its own copy
of the row, changed only through its methods, written to the store and streamed through the
run's task context (``ctx.emit``). The message's state machine::

    pending ──start()──▶ processing ──complete()──────────▶ completed
                            ├──fail(final=True)───────────▶ failed
                            ├──fail(final=False)──▶ processing, retrying (the next attempt is a
                            │                       new turn and starts the text over)
                            └──cancel()───────────────────▶ cancelled

Once the message is final nothing more is written: a cancel wins over text still arriving.
A cancel is explicit: the chat service finds the running turn in :class:`OpenMessages` and
calls :meth:`ChatTurn.cancel` before cancelling the run; the run's own cancellation reaches the
turn as ``CancelledError`` and ends in the same method.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polaris_jupyter.chat.store import ChatStore, Message, MessageStatus
from polaris_jupyter.chat.stream import DeltaCoalescer
from polaris_jupyter.jobs import Clock, Conflict, RunContext, is_retryable

if TYPE_CHECKING:
    from polaris_jupyter.agent import LoopEvent, LoopResult, ProviderChain
    from polaris_jupyter.agent.pricing import PriceTable
    from polaris_jupyter.chat.approval_gate import ApprovalGate, TurnCheckpoint
    from polaris_jupyter.chat.prompts import TurnPrompt
    from polaris_jupyter.tools.base import ToolContext, ToolRegistry

__all__ = ["ChatTurn", "OpenMessages", "TurnInputs", "message_status_data", "user_facing_error"]

#: ``error.detail`` (the exception's own text) is cut to this many characters.
MAX_ERROR_DETAIL_CHARS = 2000


def message_status_data(message: Message, **extra: Any) -> dict[str, Any]:
    """The data of a ``message.status`` event: id, status, ``final`` (from
    :attr:`MessageStatus.is_final`, so no client keeps its own list), then ``extra``."""
    return {
        "messageId": message.id,
        "status": message.status.value,
        "final": message.status.is_final,
        **extra,
    }


def user_facing_error(exc: BaseException) -> str:
    """A short sentence for the chat bubble; the detail goes in ``error.detail``."""
    from polaris_jupyter.agent import ModelError

    if isinstance(exc, ModelError):  # no provider, every provider failed, a broken stream, ...
        return str(exc)  # which provider failed, its status and words, and the fix (never a key)
    if "disconnect" in str(exc).lower():
        return "The model's answer was cut off."
    return "Something went wrong while answering."


def _copy(message: Message) -> Message:
    return dataclasses.replace(message, tool_calls=[dict(c) for c in message.tool_calls])


@dataclass(frozen=True)
class TurnInputs:
    """What an attempt needs besides its message (built by the chat service per attempt)."""

    chain: ProviderChain
    registry: ToolRegistry
    tools: ToolContext
    #: The request: trimmed history and the system prompt by tools sent (``prompts.build_turn_prompt``).
    prompt: TurnPrompt
    max_steps: int
    stream_window_s: float
    #: Prices for the answer's estimated cost (``usage.costUsd``; None: unknown, never 0).
    prices: PriceTable | None = None
    #: Holds calls that need the user's consent (``chat/approval_gate.py``); None: all run.
    gate: ApprovalGate | None = None


class ChatTurn:
    """One attempt at answering one assistant message (see the module docstring)."""

    def __init__(
        self,
        message: Message,
        ctx: RunContext,
        store: ChatStore,
        clock: Clock,
        *,
        on_final: Callable[[Message], None] | None = None,
    ) -> None:
        self._message = _copy(message)
        self._message.run_id = ctx.run_id
        self._ctx = ctx
        self._store = store
        self._clock = clock
        self._on_final = on_final
        self._calls: dict[str, dict[str, Any]] = {}
        self._stream: DeltaCoalescer | None = None
        #: The checkpoint of a turn held for approvals, when this attempt continues it.
        self.resumed_from: TurnCheckpoint | None = None

    # -- reading --------------------------------------------------------------------------------
    @property
    def message_id(self) -> str:
        return self._message.id

    @property
    def conversation_id(self) -> str:
        return self._message.conversation_id

    @property
    def context(self) -> RunContext:
        """The run's task context (a gate saves checkpoints and emits through it)."""
        return self._ctx

    @property
    def status(self) -> MessageStatus:
        return self._message.status

    @property
    def is_final(self) -> bool:
        return self._message.status.is_final

    def snapshot(self) -> Message:
        """A copy of the message as it is now, streamed text included (the row gets the whole
        text only at state changes, so a listing reads a running message here)."""
        return _copy(self._message)

    # -- the state machine ------------------------------------------------------------------------
    def start(self) -> None:
        """pending (or an earlier attempt's processing) → processing, with the text reset: each
        attempt answers from scratch, and ``reset`` tells clients to drop an earlier attempt's text."""
        if self._set(status=MessageStatus.PROCESSING, content="", tool_calls=[], error=None):
            attempt = self._ctx.attempt
            self._emit(
                "message.status", message_status_data(self._message, attempt=attempt, reset=attempt > 1)
            )

    def add_text(self, delta: str, offset: int) -> None:
        """Streamed text at ``offset`` (the coalescer's flush). The delta event is the durable
        record of the text; the row gets it at the next state change, not once per window."""
        if self.is_final:
            return
        self._message.content = self._message.content[:offset] + delta
        self._emit("message.delta", {"messageId": self.message_id, "delta": delta, "offset": offset})

    def provider_selected(
        self, provider: str, model: str, *, degraded: bool = False, notice: str | None = None
    ) -> None:
        if not self._set(provider=provider, model=model):
            return
        self._ctx.metadata.set("provider", provider)
        self._ctx.metadata.set("model", model)
        extra: dict[str, Any] = {"provider": provider, "model": model}
        if degraded:
            extra["degraded"] = True
        if notice:
            extra["notice"] = notice
        self._emit("message.status", message_status_data(self._message, **extra))

    def tool_started(self, call_id: str, name: str, arguments: dict[str, Any]) -> None:
        if self._stream is not None:
            self._stream.close()  # text before a tool card is shown before it
        # ``offset``: where the card stands in the text (code points, as deltas count them), so a
        # reply reads in order: the text before the call, its card, the text after.
        call: dict[str, Any] = {
            "id": call_id, "name": name, "arguments": arguments, "status": "running",
            "offset": len(self._message.content),
        }
        shown = next((c for c in self._message.tool_calls if c.get("id") == call_id), None)
        if shown is not None:  # a held call's card (waiting for approval) now runs, where it was shown
            call["offset"] = shown.get("offset", call["offset"])
            shown.update(call)
            call = shown
        self._calls[call_id] = call
        if self._set(tool_calls=[*self._message.tool_calls] if shown is not None else [*self._message.tool_calls, call]):
            self._emit("toolcall.started", {"messageId": self.message_id, "toolCall": call})

    def tool_finished(
        self,
        call_id: str,
        name: str,
        *,
        ok: bool,
        summary: str,
        duration_ms: float,
        error: str | None = None,
        diff: str | None = None,
        truncated: bool = False,
    ) -> None:
        call = self._calls.get(call_id)
        if call is None:  # a card the start of which was not seen: show it anyway
            call = {"id": call_id, "name": name, "arguments": {}}
            self._message.tool_calls.append(call)
        call.update(
            status="succeeded" if ok else "failed",
            summary=summary,
            durationMs=round(duration_ms, 1),
            error=error,
            diff=diff,
            truncated=truncated,
        )
        if self._set(tool_calls=list(self._message.tool_calls)):
            self._emit("toolcall.finished", {"messageId": self.message_id, "toolCall": call})

    def show_cards(self, cards: list[dict[str, Any]]) -> None:
        """Show (or replace, by id) the cards of a held step, e.g. waiting for approval."""
        self._close_stream()
        offset = len(self._message.content)
        for card in cards:  # in place: the gate's checkpoint keeps the same cards
            card.setdefault("offset", offset)
        by_id = {c["id"]: c for c in cards}
        kept = [by_id.pop(c.get("id"), c) for c in self._message.tool_calls]
        if self._set(tool_calls=[*kept, *by_id.values()]):
            for card in cards:
                self._calls[card["id"]] = card
                self._emit("toolcall.started", {"messageId": self.message_id, "toolCall": card})

    def update_card(self, call_id: str, **fields: Any) -> None:
        """Change one card (an approval decided while this turn owns the message)."""
        for card in self._message.tool_calls:
            if card.get("id") == call_id:
                card.update(fields)
                self._set(tool_calls=list(self._message.tool_calls))
                return

    def resume(self, checkpoint: TurnCheckpoint) -> None:
        """Continue a held turn: the message keeps its text and cards (as of ``checkpoint``)."""
        self.resumed_from = checkpoint
        text, shown = checkpoint.loop.text, self._message.content
        decided = {c.get("id"): c["approval"] for c in self._message.tool_calls if c.get("approval")}
        cards = [{**c, "approval": decided[c["id"]]} if c.get("id") in decided else dict(c) for c in checkpoint.cards]
        if self._set(status=MessageStatus.PROCESSING, content=text, tool_calls=cards, error=None):  # decisions kept
            moved_on = shown != text  # a crashed continuation streamed past the checkpoint: show it again
            self._emit("message.status", message_status_data(self._message, attempt=self._ctx.attempt, resumed=True,
                                                             reset=moved_on))
            if moved_on and text:
                self._emit("message.delta", {"messageId": self.message_id, "delta": text, "offset": 0})

    def complete(self, text: str, *, usage: dict[str, Any] | None, provider: str, model: str) -> None:
        """processing → completed; ``text`` is the loop's result (it agrees with the deltas)."""
        self._finish(MessageStatus.COMPLETED, content=text, usage=usage, provider=provider, model=model)

    def fail(self, exc: BaseException, *, final: bool) -> None:
        """An attempt failed: the message fails (``final``) or stays processing with the error
        and ``retrying`` while the run waits for its next attempt."""
        error = {
            "message": user_facing_error(exc),
            "detail": f"{type(exc).__name__}: {exc}"[:MAX_ERROR_DETAIL_CHARS],
            "attempt": self._ctx.attempt,
        }
        if final:
            self._finish(MessageStatus.FAILED, error=error)
        elif self._set(error={**error, "retrying": True}):
            self._emit("message.status", message_status_data(self._message, error=error, retrying=True))

    def cancel(self, reason: str) -> bool:
        """→ cancelled with ``reason`` as the error text; False if the message was already final."""
        if self.is_final:
            return False
        self._finish(MessageStatus.CANCELLED, error={"message": reason})
        return True

    # -- the attempt ------------------------------------------------------------------------------
    async def run(self, prepare: Callable[[], Awaitable[TurnInputs]]) -> dict[str, Any]:
        """Start, build the inputs (``prepare``: history, prompt, chain, tools), run the tool
        loop, and end in exactly one state. Errors and cancellation are re-raised for the
        engine, which retries or finishes the run; the message already says what happened."""
        from polaris_jupyter.agent import run_agent_loop
        from polaris_jupyter.agent.gate import ToolCallsHeld
        from polaris_jupyter.chat.approval_gate import TurnCheckpoint

        held = TurnCheckpoint.load(self._ctx)
        if held is None:
            self.start()
        else:
            self.resume(held)
        try:
            inputs = await prepare()
            self._stream = DeltaCoalescer(inputs.stream_window_s, self.add_text, offset=len(self._message.content))
            result = await run_agent_loop(
                chain=inputs.chain,
                messages=list(inputs.prompt.history),
                system_prompt=inputs.prompt.system,
                registry=inputs.registry,
                ctx=inputs.tools,
                max_steps=inputs.max_steps,
                on_event=self._on_event,
                gate=inputs.gate,
                resume=None if held is None else held.loop,
            )
        except ToolCallsHeld as stop:
            assert inputs.gate is not None  # only a gate holds calls
            await inputs.gate.hold(stop)  # raises Suspend: the run waits, holding no worker
        except asyncio.CancelledError:
            self._close_stream()
            if not self._ctx.stopping:  # a server stopping interrupts: the next one answers on
                self.cancel("the run was cancelled")
            raise
        except Exception as exc:
            self._close_stream()
            self.fail(exc, final=not is_retryable(exc) or self._ctx.attempt >= self._ctx.run.max_attempts)
            raise
        updates = self._close_stream()
        usage = result.usage.to_dict() if result.usage is not None else None
        if inputs.prices is not None:
            usage = inputs.prices.with_cost(usage, result.provider, result.model)
        self.complete(result.text, usage=usage, provider=result.provider, model=result.model)
        return _output(self.message_id, result, usage, updates)

    async def _on_event(self, event: LoopEvent) -> None:
        from polaris_jupyter.agent import ProviderSelected, TextDelta, ToolCallFinished, ToolCallStarted

        if isinstance(event, TextDelta):
            if self._stream is not None:
                self._stream.add(event.text)
        elif isinstance(event, ProviderSelected):
            self.provider_selected(event.provider, event.model, degraded=event.degraded, notice=event.notice)
        elif isinstance(event, ToolCallStarted):
            self.tool_started(event.call_id, event.name, event.arguments)
        elif isinstance(event, ToolCallFinished):
            self.tool_finished(
                event.call_id,
                event.name,
                ok=event.ok,
                summary=event.summary,
                duration_ms=event.duration_ms,
                error=event.error,
                diff=event.diff,
                truncated=event.truncated,
            )

    def _close_stream(self) -> int:
        """Flush the last delta (never dropped); the number of delta updates sent."""
        if self._stream is None:
            return 0
        self._stream.close()
        return self._stream.updates

    # -- writing ----------------------------------------------------------------------------------
    def _set(self, **changes: Any) -> bool:
        """Apply ``changes`` and write the row, unless the message is final (then False)."""
        if self.is_final:
            return False
        for key, value in changes.items():
            setattr(self._message, key, value)
        self._message.updated_at = self._clock.now()
        self._store.put_message(self._message)
        return True

    def _finish(self, status: MessageStatus, **changes: Any) -> None:
        if not self._set(**changes, status=status):
            return
        extra = {key: getattr(self._message, key) for key in ("error", "usage", "provider", "model")}
        self._emit(
            "message.status",
            message_status_data(self._message, **{k: v for k, v in extra.items() if v is not None}),
        )
        if self._on_final is not None:
            self._on_final(self._message)

    def _emit(self, type: str, data: dict[str, Any]) -> None:
        self._ctx.emit(type, data)  # the run's stream, tagged with the run's conversation


def _output(
    message_id: str, result: LoopResult, usage: dict[str, Any] | None, updates: int
) -> dict[str, Any]:
    """The run's output: what the dashboard shows for a finished chat run."""
    return {
        "messageId": message_id,
        "steps": result.steps,
        "finishReason": str(getattr(result.finish_reason, "value", result.finish_reason)),
        "toolCalls": len(result.tool_calls),
        "usage": usage,
        "chars": len(result.text),
        "updates": updates,
    }


class OpenMessages:
    """The assistant messages this process is answering (pending, processing, or between two
    attempts), at most one per conversation, and the turn running for each, if any.

    The one place that says a conversation is busy (a second post, a retry or a replay is a
    Conflict), where a cancel finds the running turn, and where a listing reads the text
    streamed so far. Everything here is synchronous, so a check and the claim that follows it
    cannot be interleaved by another request.
    """

    def __init__(self) -> None:
        self._by_conversation: dict[str, str] = {}
        self._turns: dict[str, ChatTurn] = {}

    def busy(self, conversation_id: str) -> str | None:
        """The id of the message of this conversation being answered, if any."""
        return self._by_conversation.get(conversation_id)

    def holds(self, message: Message) -> bool:
        return self._by_conversation.get(message.conversation_id) == message.id

    def claim(self, message: Message) -> None:
        """Mark ``message`` as being answered; a Conflict if another message of its conversation is."""
        busy = self._by_conversation.get(message.conversation_id)
        if busy is not None and busy != message.id:
            raise Conflict(f"message {busy} of this conversation is still being answered; wait or cancel it")
        self._by_conversation[message.conversation_id] = message.id

    def release(self, message: Message) -> None:
        """The message is final (or was never triggered): its conversation is free again."""
        if self.holds(message):
            del self._by_conversation[message.conversation_id]

    def attach(self, turn: ChatTurn) -> None:
        """The attempt ``turn`` runs now (claiming its conversation, e.g. for a run recovered
        after a restart)."""
        self._turns[turn.message_id] = turn
        self._by_conversation.setdefault(turn.conversation_id, turn.message_id)

    def detach(self, turn: ChatTurn) -> None:
        """The attempt ended: forget the turn; the message stays claimed unless it is final."""
        if self._turns.get(turn.message_id) is turn:
            del self._turns[turn.message_id]
        if turn.is_final:
            self.release(turn.snapshot())

    def turn(self, message_id: str) -> ChatTurn | None:
        return self._turns.get(message_id)

    def current(self, message: Message) -> Message:
        """``message`` as it is now: the running turn's copy when one is attached, else the row."""
        turn = self._turns.get(message.id)
        return turn.snapshot() if turn is not None else message
