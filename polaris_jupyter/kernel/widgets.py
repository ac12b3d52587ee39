"""The notebook chat widget :class:`ChatPanel` (anywidget; :class:`GenerationProgress` lives in
``progress_widget.py``, the plumbing both share in ``_widget_base.py``).

The JavaScript (built from ``labextension/src/widget``) renders the same chat view as the lab
sidebar. Protocol, over anywidget custom messages: the kernel sends ``{"kind": "snapshot"}``,
``{"kind": "events", "events": [...]}`` and ``{"kind": "response", "id", "ok", "data"|"error"}``;
the browser sends ``{"kind": "request", "id", "action", "args"}``. What must survive a re-render
(current conversation, the conversation list, status line, busy flag) lives in traitlets.

Streaming forwards the server's events (text arrives as deltas, never the whole text again),
batched so that a panel sends at most ``1 / BATCH_WINDOW_S`` messages per second: far below the
kernel's iopub rate limit however fast the model writes.

Context (issue 13): the panel offers what its kernel knows as removable chips above the input
(``context_items``, a traitlet re-offered after each cell: the notebook, the last error, the
kernel's variables; see :mod:`~polaris_jupyter.kernel._context`); what the chips keep is sent
with the message. Typing ``@`` asks the ``files`` action for workspace files to attach.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from traitlets import Bool, Dict, List, Unicode

from polaris_jupyter.kernel._base import PolarisError
from polaris_jupyter.kernel._context import KernelContext, kernel_context
from polaris_jupyter.kernel._widget_base import BATCH_WINDOW_S, PolarisWidget, batched, bundle, error_text
from polaris_jupyter.kernel.paths import _server_root
from polaris_jupyter.kernel.progress_widget import GenerationProgress

if TYPE_CHECKING:
    from polaris_jupyter.kernel.client import Polaris

__all__ = ["BATCH_WINDOW_S", "ChatPanel", "GenerationProgress"]

CHAT_EVENT_TYPES = frozenset(
    {"message.created", "message.delta", "message.status", "toolcall.started", "toolcall.finished", "run.reverted",
     "approval.decided", "proposal.updated"}
)
#: Workspace files one @-mention lists at most.
MAX_MENTION_FILES = 50


SNAPSHOT_MESSAGES = 50


def _kernel_context(client: Polaris) -> KernelContext | None:
    """What this kernel offers a chat panel. The workspace: the server's root (remote), else the
    in-kernel engine's; the server reaches this kernel's variables only when it started it (remote)."""
    remote = client.mode == "remote"
    root = (_server_root() if remote else getattr(client.backend, "root_dir", None)) or os.getcwd()
    return kernel_context(root=str(root), offer_variables=remote)


class ChatPanel(PolarisWidget):
    """The chat panel: conversation picker, streamed messages, tool cards, Stop/Retry/Revert."""

    _esm = bundle("chat-widget.js")
    _css = bundle("chat-widget.css")

    conversation_id = Unicode("").tag(sync=True)
    conversations = List(Dict()).tag(sync=True)
    status_text = Unicode("").tag(sync=True)
    busy = Bool(False).tag(sync=True)
    #: The latest snapshot (last SNAPSHOT_MESSAGES messages), synced with the widget state so a
    #: view renders at once, even while the kernel is busy and cannot answer a refresh request.
    snapshot = Dict().tag(sync=True)
    #: What the kernel offers as context (``ContextItem`` wire form): the chips above the input.
    context_items = List(Dict()).tag(sync=True)

    def __init__(self, client: Polaris, conversation_id: str | None = None, **kwargs: Any) -> None:
        self._context = _kernel_context(client)  # offered from the first state the view gets
        super().__init__(client, context_items=self._context.items() if self._context else [], **kwargs)
        self._status: dict[str, Any] = {}
        self.call = client.call
        cid = conversation_id or client.current_conversation()
        self.call(self._switch(cid))
        self.call(self._snapshot())
        self.status_text = "" if client.mode == "remote" else "engine in this kernel"
        self._unwatch = self._context.watch(self._offer) if self._context is not None else None

    def __repr__(self) -> str:
        # The text/plain fallback: what a saved output shows once its kernel is gone (JupyterLab
        # after a restart, an untrusted notebook) and what a frontend without widgets prints.
        return (
            f"ChatPanel(conversation={self.conversation_id!r}) — not connected: re-run this cell to reconnect "
            "the panel (it needs a running kernel and JupyterLab, Notebook or VS Code)"
        )

    def _offer(self) -> None:
        """Re-offer the kernel's context (a traitlet: synced only when it changed)."""
        items = self._context.items() if self._context is not None else []
        if items != self.context_items:
            self.context_items = items

    def close(self) -> None:
        if getattr(self, "_unwatch", None) is not None:
            self._unwatch()  # type: ignore[misc]
            self._unwatch = None
        super().close()

    async def _switch(self, conversation_id: str) -> dict[str, Any]:
        backend = self._client.backend
        conversation = await backend.conversation(conversation_id)
        since = await backend.last_event_seq()
        self._client.conversation_id = conversation_id
        self.conversation_id = conversation_id
        await self._load_conversations()
        self._start_pump(self._pump_events(conversation_id, since))
        return conversation

    async def _load_conversations(self) -> None:
        listed = await self._client.backend.conversations()
        self.conversations = [{"id": c["id"], "title": c.get("title") or c["id"]} for c in listed[:200]]

    async def _status_line(self) -> dict[str, Any]:
        if not self._status:
            try:
                active = (await self._client.backend.config()).get("active") or {}
                self._status = {"provider": active.get("provider"), "model": active.get("model")}
            except PolarisError:
                self._status = {}
        return self._status

    async def _snapshot(self) -> None:
        backend = self._client.backend
        conversation = await backend.conversation(self.conversation_id)
        messages = await backend.messages(self.conversation_id)
        status = await self._status_line()
        self.snapshot = {"conversation": conversation, "messages": messages[-SNAPSHOT_MESSAGES:], "status": status}
        self._push({"kind": "snapshot", "conversation": conversation, "messages": messages, "status": status})

    async def _pump_events(self, conversation_id: str, since: int) -> None:
        stream = self._client.backend.events(conversation_id=conversation_id, since=since)
        async for batch in batched(stream, BATCH_WINDOW_S):
            events = [e for e in batch if e.get("type") in CHAT_EVENT_TYPES]
            if events:
                self._push({"kind": "events", "events": events})
            for event in events:
                data = event.get("data") or {}
                if data.get("provider") or data.get("model"):
                    self._status = {"provider": data.get("provider"), "model": data.get("model")}
                if event["type"] == "message.created" and (data.get("message") or {}).get("role") == "user":
                    await self._load_conversations()  # the first message names the conversation

    def _on_pump_error(self, exc: BaseException) -> None:
        self.status_text = f"live updates stopped: {error_text(exc)}"

    # -- requests from the browser ---------------------------------------------------------------
    async def _do_refresh(self, args: dict[str, Any]) -> None:
        await self._snapshot()

    async def _do_send(self, args: dict[str, Any]) -> dict[str, Any]:
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PolarisError("type a message first")
        context = args.get("context") if isinstance(args.get("context"), dict) else None
        self.busy = True
        try:
            accepted = await self._client.backend.post_message(self.conversation_id, text, context)
        finally:
            self.busy = False
        await self._snapshot()  # as the sidebar does: the server's order (its events name the answer first)
        return accepted

    # the context chips (re-offered when the panel renders) and the @-mention list
    async def _do_context(self, args: dict[str, Any]) -> dict[str, Any]:
        self._offer()
        return {"items": self.context_items}

    async def _do_files(self, args: dict[str, Any]) -> dict[str, Any]:
        query, limit = args.get("query"), args.get("limit")
        limit = max(1, min(limit, MAX_MENTION_FILES)) if isinstance(limit, int) else 20
        return {"paths": await self._client.backend.mention_files(query if isinstance(query, str) else "", limit)}

    # the proposal cards of a Fix (renderer/proposals.ts): list a run's, Apply, Discard
    async def _do_proposals(self, args: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._client.backend.call("run_proposals", path={"runId": str(args.get("runId") or "")}))

    async def _do_apply_proposal(self, args: dict[str, Any]) -> dict[str, Any]:
        path = {"proposalId": str(args.get("proposalId") or "")}
        return dict(await self._client.backend.call("apply_proposal", path=path))

    async def _do_discard_proposal(self, args: dict[str, Any]) -> dict[str, Any]:
        path = {"proposalId": str(args.get("proposalId") or "")}
        return dict(await self._client.backend.call("discard_proposal", path=path))

    async def _do_stop(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._client.backend.cancel_message(str(args.get("messageId") or ""))

    async def _do_retry(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._client.backend.retry_message(str(args.get("messageId") or ""))

    async def _do_revert(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._client.backend.revert_run(str(args.get("runId") or ""), args.get("force") is True)

    # the tool cards' Approve / Deny / Approve all in this run, the header's permission mode
    async def _do_decide(self, args: dict[str, Any]) -> dict[str, Any]:
        body = {"decision": args.get("decision"), "scope": args.get("scope") or "once"}
        path = {"approvalId": str(args.get("approvalId") or "")}
        return dict(await self._client.backend.call("decide_approval", path=path, body=body))

    async def _do_set_mode(self, args: dict[str, Any]) -> dict[str, Any]:
        path = {"conversationId": self.conversation_id}
        return dict(await self._client.backend.call("update_conversation", path=path, body={"permissionMode": args.get("mode")}))

    async def _do_select_conversation(self, args: dict[str, Any]) -> dict[str, Any]:
        conversation_id = args.get("conversationId")
        if not isinstance(conversation_id, str) or not conversation_id:
            raise PolarisError("choose a conversation")
        conversation = await self._switch(conversation_id)
        await self._snapshot()
        return conversation

    # the chat header's model picker and rules line (labextension/src/chat/modelPicker.ts)
    async def _do_models(self, args: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._client.backend.call("list_models", query={"refresh": args.get("refresh") is True}))

    async def _do_rules(self, args: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._client.backend.call("get_rules"))

    async def _do_set_model(self, args: dict[str, Any]) -> dict[str, Any]:
        body = {"provider": args.get("provider") or None, "model": args.get("model") or None}
        path = {"conversationId": self.conversation_id}
        return dict(await self._client.backend.call("update_conversation", path=path, body=body))

    async def _do_new_conversation(self, args: dict[str, Any]) -> dict[str, Any]:
        created = await self._client.backend.create_conversation(args.get("title") if isinstance(args.get("title"), str) else None)
        conversation = await self._switch(created["id"])
        await self._snapshot()
        return conversation
