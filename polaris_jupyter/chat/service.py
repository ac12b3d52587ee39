"""Chat on top of the engine: conversations, messages, and the ``process-message`` task.

Posting a message creates the user message and an assistant placeholder and triggers a run in
one transaction, then returns at once; the answer arrives as events. Each attempt is a
``ChatTurn`` (``chat/turn.py``) owning the message while it runs; ``OpenMessages`` says which
conversation is busy and which turn runs, so a cancel is a call on the turn. Replaying a chat
run answers its message again (:meth:`ChatService.replay_run`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from polaris_jupyter.chat.approvals import ApprovalService
from polaris_jupyter.chat.context import attach_context
from polaris_jupyter.chat.prompts import build_turn_prompt
from polaris_jupyter.chat.rules import load_rules
from polaris_jupyter.chat.store import ChatStore, Conversation, Message, MessageStatus
from polaris_jupyter.chat.turn import ChatTurn, OpenMessages, TurnInputs, message_status_data
from polaris_jupyter.jobs import (
    AbortTaskError,
    Conflict,
    InvalidInput,
    RetryPolicy,
    Run,
    RunContext,
    RunHandle,
    RunNotFound,
    TaskDef,
    TriggerOptions,
    new_id,
)
from polaris_jupyter.tools.permissions import PermissionMode, parse_mode

if TYPE_CHECKING:
    from polaris_jupyter.agent import ProviderChain
    from polaris_jupyter.runtime import PolarisRuntime

__all__ = ["MAX_MESSAGE_CHARS", "PROCESS_MESSAGE_TASK_ID", "ChatService", "install"]

PROCESS_MESSAGE_TASK_ID = "process-message"
MAX_MESSAGE_CHARS = 100_000
MAX_TITLE_CHARS = 200
log = logging.getLogger("polaris_jupyter.chat")


class ChatService:
    def __init__(self, runtime: PolarisRuntime) -> None:
        self.runtime = runtime
        self.engine = runtime.engine
        self.store = ChatStore(runtime.engine.store)
        #: Messages being answered in this process and their running turns.
        self.open_messages = OpenMessages()
        #: Tool calls held for the user's consent (``chat/approvals.py``).
        self.approvals = ApprovalService(self)

    # -- shared resources --------------------------------------------------------------------
    async def chain(self) -> ProviderChain:
        """The runtime's provider chain (one model config for chat, generation and completions)."""
        return await self.runtime.models.chain()

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
            reverted = await self.runtime.journal.revert_run(self.runtime.root_dir, run_id, force=force)
        except RevertConflict as exc:
            raise Conflict(str(exc)) from exc
        except ToolError as exc:
            raise InvalidInput(str(exc)) from exc
        if reverted:
            payload = run.payload if isinstance(run.payload, dict) else {}
            conversation_id = payload.get("conversationId")
            self.engine.emit(
                "run.reverted",
                {"runId": run_id, "paths": reverted},
                conversation_id=conversation_id if isinstance(conversation_id, str) else None,
            )
        return reverted

    async def messages_json(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's messages as the API sends them (a running answer with the text
        streamed so far), each answer with ``revertedAt`` when its run's edits were reverted
        (so a reloaded view still shows it)."""
        messages = [self.open_messages.current(m) for m in await self.store.list_messages(conversation_id)]
        reverted = await self.runtime.journal.reverted_runs(m.run_id for m in messages if m.run_id)
        out = []
        for message in messages:
            data = message.to_json()
            if message.run_id in reverted:
                data["revertedAt"] = reverted[message.run_id]
            out.append(data)
        return out

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

    async def set_model(self, conversation_id: str, provider: str | None, model: str | None) -> Conversation:
        """Answer this conversation with ``provider``/``model`` from its next message (both None:
        the default again); refused with the reason when that choice cannot answer now."""
        conv = await self.conversation(conversation_id)
        await self.runtime.models.check_choice(provider, model)
        conv.provider, conv.model, conv.updated_at = provider, model, self.engine.clock.now()
        self.store.set_conversation_model(conv.id, provider, model, conv.updated_at)
        await self.engine.store.commit()
        return conv

    def permission_mode(self, conv: Conversation | None) -> PermissionMode:
        """The conversation's permission mode, else the server's default (``PolarisConfig``)."""
        return parse_mode((conv.permission_mode if conv is not None else None) or self.runtime.config.permission_mode)

    async def set_permission_mode(self, conversation_id: str, mode: Any) -> Conversation:
        """What the conversation's tool calls may do without asking (``tools/permissions.py``)."""
        conv = await self.conversation(conversation_id)
        conv.permission_mode, conv.updated_at = parse_mode(mode).value, self.engine.clock.now()
        self.store.set_conversation_mode(conv.id, conv.permission_mode, conv.updated_at)
        await self.engine.store.commit()
        return conv

    async def delete(self, conversation_id: str) -> None:
        await self.conversation(conversation_id)
        busy = self.open_messages.busy(conversation_id)
        if busy is not None:
            await self.cancel_message(busy)
        await self.store.delete_conversation(conversation_id)

    # -- messages ----------------------------------------------------------------------------
    async def post_message(
        self, conversation_id: str, content: Any, context: Any = None, intent: Any = None
    ) -> tuple[Message, str]:
        """Create the user message + assistant placeholder and trigger the run; 409 while busy.
        What ``context.items`` attach is read now and kept on the message (``chat/context.py``)."""
        conv = await self.conversation(conversation_id)
        if not isinstance(content, str) or not content.strip():
            raise InvalidInput("content must be a non-empty string")
        if len(content) > MAX_MESSAGE_CHARS:
            raise InvalidInput(f"content is {len(content)} characters; the limit is {MAX_MESSAGE_CHARS}")
        context = await attach_context(context, intent, root=self.runtime.root_dir, kernels=self.runtime.notebook_kernels,
                                       budget_tokens=self.runtime.config.context_token_budget)
        now = self.engine.clock.now()
        user = Message(new_id("msg"), conversation_id, "user", content, MessageStatus.COMPLETED, now, now, context=context)
        assistant = Message(new_id("msg"), conversation_id, "assistant", "", MessageStatus.PENDING, now, now + 1e-6)
        self.open_messages.claim(assistant)  # Conflict while another message is answered
        title = _clean_title(content.splitlines()[0]) if conv.title == "New chat" else None
        handle = await self._trigger(assistant, extra=[user], title=title)
        return assistant, handle.id

    async def cancel_message(self, message_id: str) -> Message:
        """Cancel a message being answered (its run is cancelled too); a final one is returned as is."""
        message = await self._message(message_id)
        turn = self.open_messages.turn(message_id)
        if turn is not None:
            turn.cancel("cancelled by the user")
            message = turn.snapshot()
        elif self.open_messages.holds(message):  # pending, or between two attempts
            self._finish_unattended(message, MessageStatus.CANCELLED, {"message": "cancelled by the user"})
        else:  # final (maybe finished while we read it): nothing to cancel
            return message if message.status.is_final else await self._message(message_id)
        if message.run_id:
            await self.engine.cancel(message.run_id)
        await self.engine.store.commit()
        return message

    async def retry_message(self, message_id: str) -> tuple[Message, str]:
        """Answer a failed or cancelled message again, in place (a new run)."""
        message = await self._message(message_id)
        if message.role != "assistant":
            raise InvalidInput("only assistant messages can be retried")
        if message.status not in (MessageStatus.FAILED, MessageStatus.CANCELLED):
            raise Conflict(f"message is {message.status.value}; only failed or cancelled messages can be retried")
        handle = await self._restart(message)
        return message, handle.id

    async def replay_run(self, run: Run, resume: bool = False) -> RunHandle:
        """What replaying a ``process-message`` run means (the engine's replay handler): answer
        its message again, in place, as Retry does (also after a completed answer, which is
        replaced). Refused with a Conflict and the reason when that cannot be done: the message
        is gone, it is still being answered, or another message of its conversation is.
        ``resume`` changes nothing (a chat turn keeps no checkpoints)."""
        payload = run.payload if isinstance(run.payload, dict) else {}
        message_id = payload.get("messageId")
        if not isinstance(message_id, str):
            raise Conflict(f"run {run.id} names no message to answer (payload {run.payload!r}); there is nothing to replay")
        try:
            message = await self._message(message_id)
        except RunNotFound:
            gone = f"run {run.id} answered message {message_id}, which no longer exists (its conversation was deleted)"
            raise Conflict(gone) from None
        if message.role != "assistant":
            raise Conflict(f"run {run.id} names message {message_id}, which is not an assistant message")
        if not message.status.is_final:
            busy = f"message {message_id} is still being answered (run {message.run_id}); wait or cancel it, then replay"
            raise Conflict(busy)
        return await self._restart(message, replayed_from=run.id)

    async def _message(self, message_id: str) -> Message:
        turn = self.open_messages.turn(message_id)
        if turn is not None:
            return turn.snapshot()
        message = await self.store.get_message(message_id)
        if message is None:
            raise RunNotFound(f"no message with id {message_id!r}")
        return self.open_messages.current(message)  # a turn may have started while we read

    async def _restart(self, message: Message, *, replayed_from: str | None = None) -> RunHandle:
        """Reset an answer (text, tool calls, error, usage) and trigger a new run for it."""
        self.open_messages.claim(message)  # Conflict while another message of the conversation is answered
        message.content, message.tool_calls, message.error, message.usage = "", [], None, None
        message.status, message.updated_at = MessageStatus.PENDING, self.engine.clock.now()
        data = message_status_data(message, reset=True)
        self.engine.emit("message.status", data, conversation_id=message.conversation_id)
        return await self._trigger(message, extra=[], replayed_from=replayed_from)

    async def _trigger(
        self, assistant: Message, extra: list[Message], title: str | None = None, replayed_from: str | None = None
    ) -> RunHandle:
        conversation_id = assistant.conversation_id

        def rows() -> None:
            for message in [*extra, assistant]:
                self.store.put_message(message)
            self.store.touch_conversation(conversation_id, assistant.updated_at, title)

        try:
            handle = await self.engine.trigger(
                PROCESS_MESSAGE_TASK_ID,
                {"messageId": assistant.id, "conversationId": conversation_id},
                TriggerOptions(conversation_id=conversation_id, tags=[f"conversation:{conversation_id}"]),
                replayed_from=replayed_from,
                before_commit=rows,
            )
        except Exception:
            self.open_messages.release(assistant)
            raise
        assistant.run_id = handle.id
        if self.open_messages.turn(assistant.id) is None:  # a started turn wrote the row (and run id) itself
            self.store.put_message(assistant)
        # The question before its answer: a live view appends in event order.
        for message in extra:
            self.engine.emit("message.created", {"message": message.to_json()}, conversation_id=conversation_id)
        self.engine.emit("message.created", {"message": assistant.to_json()}, run_id=handle.id, conversation_id=conversation_id)
        await self.engine.store.commit()
        return handle

    def _finish_unattended(self, message: Message, status: MessageStatus, error: dict[str, Any]) -> None:
        """Finish a message no turn is running for (pending, between attempts, after a restart)."""
        message.status, message.error, message.updated_at = status, error, self.engine.clock.now()
        self.store.put_message(message)
        self.open_messages.release(message)
        data = message_status_data(message, error=error)
        self.engine.emit("message.status", data, run_id=message.run_id, conversation_id=message.conversation_id)

    # -- the turns of process-message -----------------------------------------------------------
    async def open_turn(self, message_id: str, ctx: RunContext) -> ChatTurn:
        """The turn of this attempt (already final if the message was cancelled before it ran)."""
        message = await self.store.get_message(message_id)
        if message is None:
            raise AbortTaskError(f"message {message_id} no longer exists")
        turn = ChatTurn(message, ctx, self.store, self.engine.clock, on_final=self.open_messages.release)
        if not turn.is_final:
            self.open_messages.attach(turn)
        return turn

    async def prepare_turn(self, turn: ChatTurn) -> TurnInputs:
        """Everything an attempt needs: the history and prompt (``prompts``), chain and tools."""
        from polaris_jupyter.chat.approval_gate import ApprovalGate
        from polaris_jupyter.tools import load_all
        from polaris_jupyter.tools.base import ToolContext
        from polaris_jupyter.tools.permissions import tools_for_mode

        cfg, message = self.runtime.config, turn.snapshot()
        history = await self.store.list_messages(message.conversation_id)
        rules = await load_rules(self.runtime.root_dir, cfg.rules_max_chars)  # per turn: edits apply next message
        prompt = build_turn_prompt(history, message, root=self.runtime.root_dir, budget_tokens=cfg.history_token_budget,
                                   rules=rules.text)
        settings = {"allowed_commands": list(cfg.allowed_commands) or None, "command_timeout_s": cfg.command_timeout_s}
        conv = await self.store.get_conversation(message.conversation_id)
        models = self.runtime.models
        mode = self.permission_mode(conv)
        tools = ToolContext(root=self.runtime.root_dir, run_id=message.run_id, edits=self.runtime.journal, settings=settings,
                            kernels=self.runtime.notebook_kernels, proposals=self.runtime.proposals)
        return TurnInputs(
            chain=await (models.chain_for(conv.provider, conv.model) if conv is not None else models.chain()),
            prices=models.prices,
            # workspace tools + ready MCP servers, without edits and commands in plan mode
            registry=tools_for_mode(self.runtime.mcp.registry_with(load_all()), mode),
            tools=tools,
            prompt=prompt,
            max_steps=cfg.max_steps,
            stream_window_s=cfg.stream_window_ms / 1000,
            gate=ApprovalGate(self.approvals, turn, turn.context, mode, tools),
        )

    async def run_cancelled(self, payload: Any, ctx: RunContext) -> None:
        """``process-message``'s on_cancel: a run cancelled while no turn ran it (waiting for an
        approval, e.g. cancelled from the runs dashboard) ends its message and its approvals."""
        message_id = payload.get("messageId") if isinstance(payload, dict) else None
        message = await self.store.get_message(message_id) if isinstance(message_id, str) else None
        if message is not None and not message.status.is_final and self.open_messages.turn(message.id) is None:
            self._finish_unattended(message, MessageStatus.CANCELLED, {"message": "the run was cancelled"})
        await self.approvals.expire_run(ctx.run_id, "the run was cancelled")

    def close_turn(self, turn: ChatTurn) -> None:
        """The attempt ended (any way): the message stays claimed only while its run may retry."""
        self.open_messages.detach(turn)

    async def recover(self) -> None:
        """Messages left unfinished by a previous process follow their run (or fail if it is gone)."""
        for message in await self.store.unfinished_messages():
            run = None
            if message.run_id:
                try:
                    run = await self.engine.get_run(message.run_id)
                except RunNotFound:
                    pass
            busy = self.open_messages.busy(message.conversation_id)
            if run is not None and not run.status.is_final and busy in (None, message.id):
                self.open_messages.claim(message)
            else:
                self._finish_unattended(message, MessageStatus.FAILED, {"message": "the server stopped while answering; retry"})
        await self.engine.store.commit()


def _clean_title(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    title = " ".join(value.split())
    return title[: MAX_TITLE_CHARS - 1] + "…" if len(title) > MAX_TITLE_CHARS else title


def install(runtime: PolarisRuntime) -> ChatService:
    """The chat service of a runtime, with its task and cleanup step registered (before start)."""
    from polaris_jupyter.tasks.process_message import make_process_message

    service = ChatService(runtime)
    runtime.engine.register(
        TaskDef(
            id=PROCESS_MESSAGE_TASK_ID,
            fn=make_process_message(service),
            retry=RetryPolicy(max_attempts=3, factor=2, min_timeout_s=1, max_timeout_s=10),
            max_duration_s=30 * 60,
            description="Answer a chat message with the model and the workspace tools.",
            on_cancel=service.run_cancelled,
        )
    )
    runtime.engine.set_replay_handler(PROCESS_MESSAGE_TASK_ID, service.replay_run)

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
    runtime.startup_hooks.append(service.approvals.store.migrate)
    runtime.startup_hooks.append(service.approvals.recover)  # after the messages: decided waits go on
    return service
