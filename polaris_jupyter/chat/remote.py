"""Chat on a shared database: answers that another process runs.

With PostgreSQL (``database_url``), a message posted to this server may be answered by a
``polaris-jupyter worker``: the chat turn runs there, writes the message row and streams its
events there, and frees the conversation there. This process claimed the conversation when
the message was posted (a second post is a 409 while it is answered); it learns that the
answer ended from the message's final ``message.status`` event, which reaches every process
of the schema (LISTEN/NOTIFY), and frees the conversation here too, so the next post is
accepted. On SQLite one process runs every turn and nothing here is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polaris_jupyter.chat.store import Message, MessageStatus

if TYPE_CHECKING:
    from polaris_jupyter.chat.service import ChatService
    from polaris_jupyter.jobs import Event

__all__ = ["follow_remote_answers"]


def follow_remote_answers(service: ChatService) -> bool:
    """Free a conversation held here when another process finished its message; False (and
    nothing installed) when the engine's bus has no events of other processes."""
    add_listener = getattr(service.engine.bus, "add_listener", None)
    if add_listener is None:
        return False
    open_messages = service.open_messages

    def on_event(event: Event) -> None:
        data: Any = event.data
        if event.type != "message.status" or not data.get("final") or event.conversation_id is None:
            return
        message_id = data.get("messageId")
        if open_messages.busy(event.conversation_id) != message_id or open_messages.turn(message_id) is not None:
            return  # not held here, or answered here (the local turn frees it itself)
        try:
            status = MessageStatus(data.get("status"))
        except ValueError:
            return
        open_messages.release(Message(message_id, event.conversation_id, "assistant", "", status, event.ts, event.ts))

    add_listener(on_event)
    return True
