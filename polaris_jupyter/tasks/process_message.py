"""``process-message``: one chat turn as a durable run (the seed's Trigger.dev task).

Each attempt is a :class:`~polaris_jupyter.chat.turn.ChatTurn`: it loads the conversation
(trimmed to a token budget, ``chat/prompts.py``), runs the tool loop against the provider chain,
streams text as coalesced deltas, records tool calls as they start and finish, and marks the
message completed with usage. Each attempt starts the reply from scratch (offset 0, with a
``reset`` status event), so a retry replaces the text and never appends it twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from polaris_jupyter.chat.turn import user_facing_error
from polaris_jupyter.jobs import AbortTaskError, RunContext

if TYPE_CHECKING:
    from polaris_jupyter.chat.service import ChatService

__all__ = ["make_process_message", "user_facing_error"]


def make_process_message(service: ChatService) -> Callable[[Any, RunContext], Awaitable[dict[str, Any]]]:
    async def process_message(payload: Any, ctx: RunContext) -> dict[str, Any]:
        """Answer one chat message with the model and the workspace tools."""
        if not isinstance(payload, dict) or not isinstance(payload.get("messageId"), str):
            raise AbortTaskError("payload must be {messageId, conversationId}")
        turn = await service.open_turn(payload["messageId"], ctx)
        try:
            if turn.is_final:  # cancelled before this attempt began: nothing to answer
                return {"messageId": turn.message_id, "skipped": f"message is already {turn.status.value}"}
            return await turn.run(lambda: service.prepare_turn(turn))
        finally:
            service.close_turn(turn)

    return process_message
