"""``process-message``: one chat turn as a durable run (the seed's Trigger.dev task).

Loads the conversation (trimmed to a token budget), runs the tool loop against the provider
chain, streams text as coalesced deltas, records tool calls as they start and finish, and marks
the message completed with usage. Each attempt starts the reply from scratch (offset 0, with a
``reset`` status event), so a retry replaces the text and never appends it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from polaris_jupyter.chat.prompts import build_system_prompt, trim_history
from polaris_jupyter.chat.store import Message, MessageStatus
from polaris_jupyter.chat.stream import DeltaCoalescer
from polaris_jupyter.jobs import AbortTaskError, RunContext

if TYPE_CHECKING:
    from polaris_jupyter.agent import LoopEvent
    from polaris_jupyter.chat.service import ChatService

__all__ = ["make_process_message", "user_facing_error"]


def user_facing_error(exc: BaseException) -> str:
    """A short sentence for the chat bubble; the detail goes in ``error.detail``."""
    name = type(exc).__name__
    text = str(exc)
    if "NoProvider" in name:
        return "No model is configured. Set OPENAI_API_KEY (or another provider) or install the local model."
    if "AllProvidersFailed" in name:
        return "Every configured model provider failed before answering."
    if "Stream" in name or "disconnect" in text.lower():
        return "The model's answer was cut off."
    return "Something went wrong while answering."


def make_process_message(service: ChatService) -> Callable[[Any, RunContext], Awaitable[dict[str, Any]]]:
    async def process_message(payload: Any, ctx: RunContext) -> dict[str, Any]:
        """Answer one chat message with the model and the workspace tools."""
        from polaris_jupyter.agent import (
            ProviderSelected,
            TextDelta,
            ToolCallFinished,
            ToolCallStarted,
            run_agent_loop,
        )
        from polaris_jupyter.tools import load_all
        from polaris_jupyter.tools.base import ToolContext

        if not isinstance(payload, dict) or not isinstance(payload.get("messageId"), str):
            raise AbortTaskError("payload must be {messageId, conversationId}")
        message = await service.store.get_message(payload["messageId"])
        if message is None:
            raise AbortTaskError(f"message {payload['messageId']} no longer exists")
        if message.status.is_final:
            return {"skipped": f"message is already {message.status.value}"}
        service.store.live[message.id] = message
        message.run_id = ctx.run_id
        runtime = service.runtime
        window_s = runtime.config.stream_window_ms / 1000

        def flush(delta: str, offset: int) -> None:
            # The delta event is the durable record of the text (append-only); the message row
            # gets the whole text only at state changes, never once per window (the seed's O(n²)).
            if message.status.is_final:
                return
            message.content = message.content[:offset] + delta
            service._emit(message, "message.delta", {"messageId": message.id, "delta": delta, "offset": offset})

        coalescer = DeltaCoalescer(window_s, flush)
        service.update(message, status=MessageStatus.PROCESSING, content="", tool_calls=[], error=None)
        service._emit(
            message,
            "message.status",
            {"messageId": message.id, "status": "processing", "attempt": ctx.attempt, "reset": ctx.attempt > 1},
        )
        calls: dict[str, dict[str, Any]] = {}

        async def on_event(event: LoopEvent) -> None:
            if isinstance(event, TextDelta):
                coalescer.add(event.text)
            elif isinstance(event, ProviderSelected):
                service.update(message, provider=event.provider, model=event.model)
                ctx.metadata.set("provider", event.provider)
                ctx.metadata.set("model", event.model)
                data: dict[str, Any] = {
                    "messageId": message.id,
                    "status": message.status.value,
                    "provider": event.provider,
                    "model": event.model,
                }
                if event.degraded:
                    data["degraded"] = True
                service._emit(message, "message.status", data)
            elif isinstance(event, ToolCallStarted):
                coalescer.close()  # text before a tool card is shown before it
                call: dict[str, Any] = {
                    "id": event.call_id,
                    "name": event.name,
                    "arguments": event.arguments,
                    "status": "running",
                }
                calls[event.call_id] = call
                service.update(message, tool_calls=[*message.tool_calls, call])
                service._emit(message, "toolcall.started", {"messageId": message.id, "toolCall": call})
            elif isinstance(event, ToolCallFinished):
                call = calls.get(event.call_id) or {"id": event.call_id, "name": event.name, "arguments": {}}
                call.update(
                    status="succeeded" if event.ok else "failed",
                    summary=event.summary,
                    durationMs=round(event.duration_ms, 1),
                    error=event.error,
                    diff=event.diff,
                    truncated=event.truncated,
                )
                service.update(message, tool_calls=list(message.tool_calls))
                service._emit(message, "toolcall.finished", {"messageId": message.id, "toolCall": call})

        history = await service.store.list_messages(message.conversation_id)
        turns = [
            {"role": m.role, "content": m.content}
            for m in history
            if m.id != message.id and m.role in ("user", "assistant") and m.content and m.created_at <= message.created_at
        ]
        turns = trim_history(turns, runtime.config.history_token_budget)
        context = next((m.context for m in reversed(history) if m.role == "user" and m.context), None)
        registry = load_all()
        system = build_system_prompt(runtime.root_dir, registry.names(), context)
        tool_ctx = ToolContext(
            root=runtime.root_dir,
            run_id=ctx.run_id,
            edits=service.journal(),
            settings={
                "allowed_commands": list(runtime.config.allowed_commands) or None,
                "command_timeout_s": runtime.config.command_timeout_s,
            },
        )
        try:
            result = await run_agent_loop(
                chain=await service.chain(),
                messages=[{"role": "system", "content": system}, *turns],
                registry=registry,
                ctx=tool_ctx,
                max_steps=runtime.config.max_steps,
                on_event=on_event,
            )
        except asyncio.CancelledError:
            coalescer.close()
            _finish_cancelled(service, message)
            raise
        except Exception as exc:
            coalescer.close()
            final = isinstance(exc, AbortTaskError) or ctx.attempt >= ctx.run.max_attempts
            error = {"message": user_facing_error(exc), "detail": f"{type(exc).__name__}: {exc}"[:2000], "attempt": ctx.attempt}
            if final:
                service._finish(message, MessageStatus.FAILED, error=error)
            else:
                service.update(message, error={**error, "retrying": True})
                service._emit(message, "message.status", {"messageId": message.id, "status": "processing", "error": error, "retrying": True})
            raise
        coalescer.close()
        if message.content != result.text and not message.status.is_final:
            message.content = result.text  # the streamed text and the result agree; keep the result
        usage = result.usage.to_dict()
        service._finish(
            message,
            MessageStatus.COMPLETED,
            usage=usage,
            provider=result.provider,
            model=result.model,
        )
        return {
            "messageId": message.id,
            "steps": result.steps,
            "finishReason": str(getattr(result.finish_reason, "value", result.finish_reason)),
            "toolCalls": len(result.tool_calls),
            "usage": usage,
            "chars": len(result.text),
            "updates": coalescer.updates,
        }

    return process_message


def _finish_cancelled(service: ChatService, message: Message) -> None:
    if not message.status.is_final:
        service._finish(message, MessageStatus.CANCELLED, error={"message": "cancelled"})
