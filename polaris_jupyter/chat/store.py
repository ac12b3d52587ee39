"""Conversations and messages (the seed's Convex tables), in the engine's SQLite file.

Writes go through the engine store's write queue, so chat rows commit in the same batches as
run rows and events and never block the event loop.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from polaris_jupyter.jobs import AddColumn, Schema, SqliteStore, iso, new_id

__all__ = ["CHAT_SCHEMA", "ChatStore", "Conversation", "Message", "MessageStatus"]

#: The chat tables, registered with the engine's store (version 1: the unversioned shape;
#: version 2: the provider and model a conversation is answered with, NULL = the default;
#: version 3: its permission mode, ``tools/permissions.py``, NULL = PolarisConfig.permission_mode).
CHAT_SCHEMA = Schema(
    "chat",
    migrations=(
        (
            "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL, "
            "workspace TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL)",
            "CREATE TABLE IF NOT EXISTS messages (num INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, "
            "conversation_id TEXT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, status TEXT NOT NULL, "
            "run_id TEXT, tool_calls TEXT, error TEXT, provider TEXT, model TEXT, usage TEXT, context TEXT, "
            "created_at REAL NOT NULL, updated_at REAL NOT NULL)",
            "CREATE INDEX IF NOT EXISTS messages_conv ON messages(conversation_id, num)",
        ),
        (AddColumn("conversations", "provider", "TEXT"), AddColumn("conversations", "model", "TEXT")),
        (AddColumn("conversations", "permission_mode", "TEXT"),),
    ),
)
_MESSAGE_COLUMNS = (
    "id",
    "conversation_id",
    "role",
    "content",
    "status",
    "run_id",
    "tool_calls",
    "error",
    "provider",
    "model",
    "usage",
    "context",
    "created_at",
    "updated_at",
)
_UPSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(_MESSAGE_COLUMNS)}) VALUES ({', '.join('?' * len(_MESSAGE_COLUMNS))}) "
    f"ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in _MESSAGE_COLUMNS[1:])}"
)


class MessageStatus(str, enum.Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (MessageStatus.COMPLETED, MessageStatus.FAILED, MessageStatus.CANCELLED)


@dataclass
class Conversation:
    id: str
    title: str
    workspace: str
    created_at: float
    updated_at: float
    #: The provider and model this conversation's answers use (None: the server's default).
    provider: str | None = None
    model: str | None = None
    #: What its tool calls may do without asking (None: the server's default permission mode).
    permission_mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "workspace": self.workspace,
            "provider": self.provider,
            "model": self.model,
            "permissionMode": self.permission_mode,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }


@dataclass
class Message:
    id: str
    conversation_id: str
    role: str
    content: str
    status: MessageStatus
    created_at: float
    updated_at: float
    run_id: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    provider: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    context: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversationId": self.conversation_id,
            "role": self.role,
            "content": self.content,
            "status": self.status.value,
            "runId": self.run_id,
            "toolCalls": self.tool_calls,
            "error": self.error,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage,
            "context": self.context,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }

    def to_row(self) -> tuple[Any, ...]:
        dump = json.dumps
        return (
            self.id,
            self.conversation_id,
            self.role,
            self.content,
            self.status.value,
            self.run_id,
            dump(self.tool_calls),
            None if self.error is None else dump(self.error),
            self.provider,
            self.model,
            None if self.usage is None else dump(self.usage),
            None if self.context is None else dump(self.context),
            self.created_at,
            self.updated_at,
        )


def _message(row: Any) -> Message:
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=row["role"],
        content=row["content"],
        status=MessageStatus(row["status"]),
        run_id=row["run_id"],
        tool_calls=json.loads(row["tool_calls"] or "[]"),
        error=json.loads(row["error"]) if row["error"] else None,
        provider=row["provider"],
        model=row["model"],
        usage=json.loads(row["usage"]) if row["usage"] else None,
        context=json.loads(row["context"]) if row["context"] else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _conversation(row: Any) -> Conversation:
    return Conversation(row["id"], row["title"], row["workspace"] or "", row["created_at"], row["updated_at"],
                        provider=row["provider"], model=row["model"], permission_mode=row["permission_mode"])


class ChatStore:
    """Conversation and message rows. A message being answered is owned by its chat turn
    (``chat/turn.py``), which writes the row at every state change."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        store.register(CHAT_SCHEMA)

    async def migrate(self) -> None:
        """Make sure the chat tables exist (the store applies them when it opens; this covers a
        store that was already open when the chat store was made)."""
        await self.store.ensure_schema(CHAT_SCHEMA)

    # -- conversations ---------------------------------------------------------------------------
    async def create_conversation(self, title: str, workspace: str, now: float) -> Conversation:
        conv = Conversation(new_id("conv"), title, workspace, now, now)
        self.store.execute(
            "INSERT INTO conversations (id, title, workspace, created_at, updated_at) VALUES (?,?,?,?,?)",
            (conv.id, conv.title, conv.workspace, conv.created_at, conv.updated_at),
        )
        await self.store.commit()
        return conv

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        rows = await self.store.query("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return _conversation(rows[0]) if rows else None

    async def list_conversations(self, limit: int = 200) -> list[Conversation]:
        rows = await self.store.query("SELECT * FROM conversations ORDER BY updated_at DESC LIMIT ?", (limit,))
        return [_conversation(r) for r in rows]

    def touch_conversation(self, conversation_id: str, now: float, title: str | None = None) -> None:
        if title is None:
            self.store.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        else:
            self.store.execute(
                "UPDATE conversations SET updated_at = ?, title = ? WHERE id = ?", (now, title, conversation_id)
            )

    def set_conversation_model(self, conversation_id: str, provider: str | None, model: str | None, now: float) -> None:
        """Answer this conversation with ``provider``/``model`` from its next message (None: the default)."""
        self.store.execute(
            "UPDATE conversations SET provider = ?, model = ?, updated_at = ? WHERE id = ?",
            (provider, model, now, conversation_id),
        )

    def set_conversation_mode(self, conversation_id: str, mode: str | None, now: float) -> None:
        """The conversation's permission mode for turns prepared from now on (a waiting turn takes it
        when it continues); None: the default."""
        self.store.execute(
            "UPDATE conversations SET permission_mode = ?, updated_at = ? WHERE id = ?", (mode, now, conversation_id)
        )

    async def delete_conversation(self, conversation_id: str) -> None:
        self.store.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
        self.store.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        await self.store.commit()

    async def stale_conversations(self, before: float) -> list[str]:
        rows = await self.store.query("SELECT id FROM conversations WHERE updated_at < ?", (before,))
        return [r["id"] for r in rows]

    # -- messages --------------------------------------------------------------------------------
    def put_message(self, message: Message) -> None:
        self.store.execute(_UPSERT_MESSAGE, message.to_row())

    async def get_message(self, message_id: str) -> Message | None:
        rows = await self.store.query("SELECT * FROM messages WHERE id = ?", (message_id,))
        return _message(rows[0]) if rows else None

    async def list_messages(self, conversation_id: str, limit: int = 1000) -> list[Message]:
        rows = await self.store.query(
            "SELECT * FROM (SELECT * FROM messages WHERE conversation_id = ? ORDER BY num DESC LIMIT ?) ORDER BY num",
            (conversation_id, limit),
        )
        return [_message(r) for r in rows]

    async def unfinished_messages(self) -> list[Message]:
        unfinished = [s.value for s in MessageStatus if not s.is_final]
        rows = await self.store.query(
            f"SELECT * FROM messages WHERE status IN ({', '.join('?' * len(unfinished))})", unfinished
        )
        return [_message(r) for r in rows]
