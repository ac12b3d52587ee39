"""Chat on top of the engine: conversations, messages, and the ``process-message`` task.

Posting a message creates the user message and an assistant placeholder and triggers a run in
one transaction, then returns at once; the answer arrives as events. A cancelled message is
final: the task checks the shared live object before every write.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from polaris_jupyter.chat.store import ChatStore, Conversation, Message, MessageStatus
from polaris_jupyter.jobs import (
    Conflict,
    InvalidInput,
    RetryPolicy,
    RunNotFound,
    TaskDef,
    TriggerOptions,
    new_id,
)

if TYPE_CHECKING:
    from polaris_jupyter.agent import ProviderChain
    from polaris_jupyter.runtime import PolarisRuntime
    from polaris_jupyter.tools.edits import SqliteEditJournal

__all__ = ["PROCESS_MESSAGE_TASK_ID", "ChatService", "install"]

PROCESS_MESSAGE_TASK_ID = "process-message"
MAX_MESSAGE_CHARS = 100_000
MAX_TITLE_CHARS = 200
log = logging.getLogger("polaris_jupyter.chat")


class ChatService:
    def __init__(self, runtime: PolarisRuntime) -> None:
        self.runtime = runtime
        self.engine = runtime.engine
        self.store = ChatStore(runtime.engine.store)
        self._chain: ProviderChain | None = None
        self._journal: SqliteEditJournal | None = None
        self.model_override: dict[str, str] = {}

    # -- shared resources --------------------------------------------------------------------
    async def chain(self) -> ProviderChain:
        """The provider chain, built on first use from env + config (rebuilt after a model change)."""
        if self._chain is None:
            from polaris_jupyter.agent import ProviderChain

            cfg = self.runtime.config
            self._chain = await ProviderChain.from_env(
                provider=self.model_override.get("provider") or cfg.provider or None,
                model=self.model_override.get("model") or cfg.model or None,
                bundled_fallback=cfg.bundled_fallback,
                degrade_ttl_s=cfg.degrade_ttl_s,
            )
        return self._chain

    async def set_model(self, provider: str | None, model: str | None) -> None:
        if provider is not None:
            self.model_override["provider"] = provider
        if model is not None:
            self.model_override["model"] = model
        old, self._chain = self._chain, None
        try:
            await self.chain()
        except Exception as exc:
            self._chain = old
            for key, value in (("provider", provider), ("model", model)):
                if value is not None:
                    self.model_override.pop(key, None)
            raise InvalidInput(str(exc)) from exc
        if old is not None:
            await old.aclose()

    async def config_snapshot(self) -> dict[str, Any]:
        """Every known provider, the one answering now, and any override (GET /config)."""
        from polaris_jupyter.agent import known_providers

        active: dict[str, Any] = {"provider": None, "model": None}
        error = None
        try:
            chain = await self.chain()
            first = chain.providers[0]
            active = {"provider": first.name, "model": first.model}
            if chain.last_provider is not None:
                active = {"provider": chain.last_provider.name, "model": chain.last_model}
        except Exception as exc:  # no provider configured is a state to show, not a failure
            error = str(exc)
        providers = [
            {"name": p.name, "baseUrl": p.base_url, "model": p.model, "configured": bool(getattr(p, "configured", True))}
            for p in known_providers()
        ]
        return {"providers": providers, "active": active, "error": error, "override": dict(self.model_override)}

    def journal(self) -> SqliteEditJournal:
        if self._journal is None:
            from polaris_jupyter.tools.edits import SqliteEditJournal

            self._journal = SqliteEditJournal(self.engine.store)  # the store is the file's one writer
        return self._journal

    # -- reverting a run's file edits ---------------------------------------------------------
    async def revert_run(self, run_id: str, *, force: bool = False) -> list[str]:
        """Undo a run's file edits (see ``EditJournal.revert_run``: refuses to discard later
        changes unless ``force``) and tell every open chat view, which marks the run's tool
        cards as reverted (another tab, the notebook panel, a ``%polaris revert``).

        Refusals come out as engine errors, so every client answers alike: a file changed
        since the run is a Conflict (409), a journal path the sandbox refuses is InvalidInput."""
        from polaris_jupyter.tools.base import ToolError
        from polaris_jupyter.tools.edits import RevertConflict

        run = await self.engine.get_run(run_id)  # RunNotFound → 404
        try:
            reverted = await self.journal().revert_run(self.runtime.root_dir, run_id, force=force)
        except RevertConflict as exc:
            raise Conflict(str(exc)) from exc
        except ToolError as exc:
            raise InvalidInput(str(exc)) from exc
        if reverted:
            payload = run.payload if isinstance(run.payload, dict) else {}
            conversation_id = payload.get("conversationId")
            self.engine.bus.emit(
                "run.reverted",
                {"runId": run_id, "paths": reverted},
                self.engine.clock.now(),
                conversation_id=conversation_id if isinstance(conversation_id, str) else None,
            )
        return reverted

    async def messages_json(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's messages as the API sends them, each answer with ``revertedAt``
        when its run's edits were reverted (so a reloaded view still shows it)."""
        messages = await self.store.list_messages(conversation_id)
        reverted = await self.journal().reverted_runs(m.run_id for m in messages if m.run_id)
        out = []
        for message in messages:
            data = message.to_json()
            if message.run_id in reverted:
                data["revertedAt"] = reverted[message.run_id]
            out.append(data)
        return out

    async def stop(self) -> None:
        if self._chain is not None:
            await self._chain.aclose()
            self._chain = None
        if self._journal is not None:
            await self._journal.close()
            self._journal = None

    # -- conversations -----------------------------------------------------------------------
    async def create_conversation(self, title: str | None = None) -> Conversation:
        title = _clean_title(title) or "New chat"
        return await self.store.create_conversation(title, str(self.runtime.root_dir), self.engine.clock.now())

    async def conversation(self, conversation_id: str) -> Conversation:
        conv = await self.store.get_conversation(conversation_id)
        if conv is None:
            raise RunNotFound(f"no conversation with id {conversation_id!r}")
        return conv

    async def rename(self, conversation_id: str, title: Any) -> Conversation:
        conv = await self.conversation(conversation_id)
        clean = _clean_title(title)
        if not clean:
            raise InvalidInput("title must be a non-empty string")
        conv.title, conv.updated_at = clean, self.engine.clock.now()
        self.store.touch_conversation(conv.id, conv.updated_at, clean)
        await self.engine.store.commit()
        return conv

    async def delete(self, conversation_id: str) -> None:
        await self.conversation(conversation_id)
        busy = await self.store.busy_message(conversation_id)
        if busy is not None and busy.run_id:
            await self.cancel_message(busy.id)
        await self.store.delete_conversation(conversation_id)

    # -- messages ----------------------------------------------------------------------------
    async def post_message(self, conversation_id: str, content: Any, context: Any = None) -> tuple[Message, str]:
        """Create the user message + assistant placeholder and trigger the run; 409 while busy."""
        conv = await self.conversation(conversation_id)
        if not isinstance(content, str) or not content.strip():
            raise InvalidInput("content must be a non-empty string")
        if len(content) > MAX_MESSAGE_CHARS:
            raise InvalidInput(f"content is {len(content)} characters; the limit is {MAX_MESSAGE_CHARS}")
        if context is not None and not isinstance(context, dict):
            raise InvalidInput("context must be an object such as {\"currentFile\": \"src/app.py\"}")
        busy = await self.store.busy_message(conversation_id)
        if busy is not None:
            raise Conflict(f"message {busy.id} of this conversation is still being answered; wait or cancel it")
        now = self.engine.clock.now()
        user = Message(new_id("msg"), conversation_id, "user", content, MessageStatus.COMPLETED, now, now, context=context)
        assistant = Message(new_id("msg"), conversation_id, "assistant", "", MessageStatus.PENDING, now, now + 1e-6)
        self.store.live[assistant.id] = assistant
        title = _clean_title(content.splitlines()[0]) if conv.title == "New chat" else None
        run_id = await self._trigger(assistant, extra=[user], title=title)
        return assistant, run_id

    async def _trigger(self, assistant: Message, extra: list[Message], title: str | None = None) -> str:
        def rows() -> None:
            for message in [*extra, assistant]:
                self.store.put_message(message)
            self.store.touch_conversation(assistant.conversation_id, assistant.updated_at, title)

        try:
            handle = await self.engine.trigger(
                PROCESS_MESSAGE_TASK_ID,
                {"messageId": assistant.id, "conversationId": assistant.conversation_id},
                TriggerOptions(conversation_id=assistant.conversation_id, tags=[f"conversation:{assistant.conversation_id}"]),
                before_commit=rows,
            )
        except Exception:
            self.store.live.pop(assistant.id, None)
            raise
        assistant.run_id = handle.id
        self.store.put_message(assistant)
        self._emit(assistant, "message.created", {"message": assistant.to_json()})
        for message in extra:
            self._emit(assistant, "message.created", {"message": message.to_json()}, run=False)
        await self.engine.store.commit()
        return handle.id

    async def cancel_message(self, message_id: str) -> Message:
        message = await self._message(message_id)
        if message.status.is_final:
            return message
        self._finish(message, MessageStatus.CANCELLED, error={"message": "cancelled by the user"})
        if message.run_id:
            await self.engine.cancel(message.run_id)
        await self.engine.store.commit()
        return message

    async def retry_message(self, message_id: str) -> tuple[Message, str]:
        message = await self._message(message_id)
        if message.role != "assistant":
            raise InvalidInput("only assistant messages can be retried")
        if message.status not in (MessageStatus.FAILED, MessageStatus.CANCELLED):
            raise Conflict(f"message is {message.status.value}; only failed or cancelled messages can be retried")
        busy = await self.store.busy_message(message.conversation_id)
        if busy is not None:
            raise Conflict(f"message {busy.id} of this conversation is still being answered")
        now = self.engine.clock.now()
        message.content, message.tool_calls, message.error, message.usage = "", [], None, None
        message.status, message.updated_at = MessageStatus.PENDING, now
        self.store.live[message.id] = message
        self._emit(message, "message.status", {"messageId": message.id, "status": message.status.value, "reset": True}, run=False)
        run_id = await self._trigger(message, extra=[])
        return message, run_id

    async def _message(self, message_id: str) -> Message:
        message = await self.store.get_message(message_id)
        if message is None:
            raise RunNotFound(f"no message with id {message_id!r}")
        return message

    # -- updates used by process-message ------------------------------------------------------
    def _emit(self, message: Message, type: str, data: dict[str, Any], *, run: bool = True) -> None:
        run_id = message.run_id if run else None
        if run_id is not None and run_id in self.engine._active:
            self.engine._emit_run_event(self.engine._active[run_id], type, data, conversation_id=message.conversation_id)
        else:
            self.engine.bus.emit(type, data, self.engine.clock.now(), conversation_id=message.conversation_id)

    def update(self, message: Message, **changes: Any) -> bool:
        """Apply changes to a live message unless it is already final (cancel wins)."""
        if message.status.is_final:
            return False
        for key, value in changes.items():
            setattr(message, key, value)
        message.updated_at = self.engine.clock.now()
        self.store.put_message(message)
        return True

    def _finish(self, message: Message, status: MessageStatus, **changes: Any) -> None:
        if message.status.is_final:
            return
        self.update(message, **changes)
        message.status = status
        self.store.put_message(message)
        self.store.live.pop(message.id, None)
        data: dict[str, Any] = {"messageId": message.id, "status": status.value}
        for key in ("error", "usage", "provider", "model"):
            value = getattr(message, key)
            if value is not None:
                data[key] = value
        self._emit(message, "message.status", data)

    async def recover(self) -> None:
        """Messages left unfinished by a previous process follow their run (or fail if it is gone)."""
        for message in await self.store.unfinished_messages():
            run = None
            if message.run_id:
                try:
                    run = await self.engine.get_run(message.run_id)
                except RunNotFound:
                    run = None
            if run is not None and not run.status.is_final:
                self.store.live[message.id] = message
            else:
                self._finish(message, MessageStatus.FAILED, error={"message": "the server stopped while answering; retry"})
        await self.engine.store.commit()


def _clean_title(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    title = " ".join(value.split())
    return title[: MAX_TITLE_CHARS - 1] + "…" if len(title) > MAX_TITLE_CHARS else title


async def install(runtime: PolarisRuntime) -> None:
    """Add the chat service, its task and its cleanup step to a runtime (before engine start)."""
    from polaris_jupyter.tasks.process_message import make_process_message

    service = ChatService(runtime)
    runtime.services["chat"] = service
    runtime.engine.register(
        TaskDef(
            id=PROCESS_MESSAGE_TASK_ID,
            fn=make_process_message(service),
            retry=RetryPolicy(max_attempts=3, factor=2, min_timeout_s=1, max_timeout_s=10),
            max_duration_s=30 * 60,
            description="Answer a chat message with the model and the workspace tools.",
        )
    )

    async def delete_stale_conversations(ctx: Any) -> dict[str, Any]:
        days = runtime.config.conversation_retention_days
        if days <= 0:
            return {"deletedConversations": 0}
        stale = await service.store.stale_conversations(runtime.engine.clock.now() - days * 86400)
        for conversation_id in stale:
            await service.store.delete_conversation(conversation_id)
        return {"deletedConversations": len(stale)}

    runtime.cleanup_steps.append(delete_stale_conversations)
    runtime.startup_hooks.append(service.store.migrate)
    runtime.startup_hooks.append(service.recover)

