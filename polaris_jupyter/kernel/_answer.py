"""Streaming one assistant answer into ONE cell output that updates in place.

The answer is rebuilt from chat events (deltas by code-point offset, tool-call cards, status)
on the Polaris loop thread by :class:`AnswerState`, the Python twin of the lab renderer's
reducer; the cell's own thread redraws a display handle at most every ``REDRAW_INTERVAL_S`` and
always once at the end. Ctrl-C / kernel interrupt stops the answer (the message is cancelled)
and the output says so.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from polaris_jupyter.chat.store import MessageStatus

if TYPE_CHECKING:
    from polaris_jupyter.kernel.client import Polaris

__all__ = ["ANSWER_MIME_TYPE", "AnswerState", "follow_answer", "merge_delta", "stream_answer"]

#: At most this often a streaming answer redraws its output (10 updates/s, far below iopub limits).
REDRAW_INTERVAL_S = 0.1
FINAL_MESSAGE_STATUSES = frozenset(s.value for s in MessageStatus if s.is_final)
#: The cell output's rich mime type, drawn by the lab extension's renderer (answerMime.ts).
ANSWER_MIME_TYPE = "application/vnd.polaris.answer+json"
ANSWER_PAYLOAD_VERSION = 1
_TOOL_EVENTS = ("toolcall.started", "toolcall.finished")


def merge_delta(content: str, length: int, offset: Any, delta: str) -> tuple[str, str]:
    """Apply ``delta`` at ``offset`` (code points, as the server counts) to ``content`` of
    ``length`` code points: ``(content, "applied" | "duplicate" | "gap")``. An overlap keeps
    what we have and appends only the new tail, as ``mergeDelta`` in renderer/stream.ts."""
    valid = isinstance(offset, (int, float)) and not isinstance(offset, bool) and float(offset).is_integer()
    if not valid or offset < 0 or offset > length:
        return content, "gap"
    start = int(offset)
    if start + len(delta) <= length:
        return content, "duplicate"
    return content + delta[length - start :], "applied"


#: A tool call only moves forward: held for approval, running, then finished.
_PHASE = {"waiting": 0, "running": 1, "succeeded": 2, "failed": 2}


def _upsert_tool_call(calls: dict[str, dict[str, Any]], call: dict[str, Any]) -> None:
    existing = calls.get(call["id"])
    if existing is not None and _PHASE.get(call.get("status", ""), 2) < _PHASE.get(existing.get("status", ""), 2):
        return  # a late "started" never undoes a "finished" (nor a "waiting" a "running")
    calls[call["id"]] = {**(existing or {}), **call}


def _event_message_id(event: dict[str, Any]) -> Any:
    data = event.get("data") or {}
    return (data.get("message") or {}).get("id") if event.get("type") == "message.created" else data.get("messageId")


@dataclass
class AnswerState:
    """The assistant message as the cell shows it, reduced from chat events.

    The rules are those of ``applyMessageEvent`` / ``mergeMessage`` in the lab extension's
    renderer/stream.ts; ``tests/fixtures/events/*.json`` pins both to the same results.
    """

    message_id: str
    run_id: str | None = None
    content: str = ""
    status: str = "pending"
    tool_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: Any = None
    provider: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    conversation_id: str | None = None
    #: An event showed that an earlier one was missed: reload the stored message (``load``).
    gap: bool = False

    @property
    def final(self) -> bool:
        return self.status in FINAL_MESSAGE_STATUSES

    @property
    def held(self) -> bool:
        """A tool call of the answer waits for the user's approval (the answer waits with it)."""
        return not self.final and any(
            isinstance(c.get("approval"), dict) and c["approval"].get("status") == "pending" for c in self.tool_calls.values()
        )

    def copy(self) -> AnswerState:
        return replace(self, tool_calls={k: dict(v) for k, v in self.tool_calls.items()})

    def to_json(self) -> dict[str, Any]:
        """The message in the wire shape (camelCase, as ``GET .../messages`` answers)."""
        return {
            "id": self.message_id,
            "conversationId": self.conversation_id,
            "role": "assistant",
            "runId": self.run_id,
            "content": self.content,
            "status": self.status,
            "toolCalls": [dict(c) for c in self.tool_calls.values()],
            "error": self.error,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage,
        }

    @classmethod
    def from_json(cls, message: dict[str, Any]) -> AnswerState:
        state = cls(str(message["id"]))
        state._take(message)
        return state

    def _take(self, message: dict[str, Any]) -> None:
        self.run_id = message.get("runId")
        self.content = message.get("content") or ""
        self.status = str(message.get("status") or self.status)
        self.tool_calls = {}
        for call in message.get("toolCalls") or []:
            if isinstance(call, dict) and call.get("id"):
                _upsert_tool_call(self.tool_calls, call)
        self.error, self.provider, self.model = message.get("error"), message.get("provider"), message.get("model")
        self.usage = message.get("usage")
        self.conversation_id = message.get("conversationId") or self.conversation_id

    def merge(self, incoming: dict[str, Any]) -> None:
        """Take a stored or created message. Within one run the longer streamed text and a final
        status win over an older snapshot; another run (a retry) replaces it wholesale."""
        if (self.run_id or None) != (incoming.get("runId") or None):
            self._take(incoming)
            return
        content, status, error, calls = self.content, self.status, self.error, self.tool_calls
        for key, attr in (("status", "status"), ("error", "error"), ("provider", "provider"), ("model", "model"), ("usage", "usage")):
            if key in incoming:
                setattr(self, attr, incoming[key])
        new_content = incoming.get("content") or ""
        self.content = content if len(content) > len(new_content) and content.startswith(new_content) else new_content
        if status in FINAL_MESSAGE_STATUSES and incoming.get("status") not in FINAL_MESSAGE_STATUSES:
            self.status, self.error = status, error
        self.tool_calls = {k: dict(v) for k, v in calls.items()}
        for call in incoming.get("toolCalls") or []:
            if isinstance(call, dict) and call.get("id"):
                _upsert_tool_call(self.tool_calls, call)

    def load(self, message: dict[str, Any]) -> None:
        """Take the stored message (a resync after a gap)."""
        self.merge(message)
        self.gap = False

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one event; True when the state changed (a gap sets ``gap`` instead)."""
        if _event_message_id(event) != self.message_id:
            return False
        data = event.get("data") or {}
        kind = event.get("type")
        event_run = event.get("runId")
        other_run = bool(event_run and self.run_id and event_run != self.run_id)
        if kind == "message.created":
            self.merge(data["message"])
            return True
        if kind == "message.delta":
            if other_run or self.final:
                return False  # another run's text, or a finished answer's (its text is complete)
            delta = data.get("delta")
            content, result = merge_delta(self.content, len(self.content), data.get("offset"), "" if delta is None else str(delta))
            if result != "applied":
                self.gap = self.gap or result == "gap"
                return False
            self.content = content
            if self.status == "pending":
                self.status = "processing"
            return True
        if kind == "message.status":
            return self._apply_status(data, event_run, other_run)
        if kind == "approval.decided":  # the card shows the decision (its buttons go away)
            call = self.tool_calls.get(str(data.get("toolCallId")))
            approval = data.get("approval")
            if other_run or call is None or not isinstance(approval, dict):
                return False
            call["approval"] = {k: approval.get(k) for k in ("id", "status", "scope", "expiresAt", "reason")}
            return True
        if kind in _TOOL_EVENTS:
            call = data.get("toolCall")
            if other_run or not isinstance(call, dict) or not call.get("id"):
                return False
            _upsert_tool_call(self.tool_calls, call)
            return True
        return False

    def _apply_status(self, data: dict[str, Any], event_run: str | None, other_run: bool) -> bool:
        status = data["status"] if isinstance(data.get("status"), str) else self.status
        final = status in FINAL_MESSAGE_STATUSES
        if data.get("reset") or (other_run and not final):
            self.content, self.tool_calls, self.error = "", {}, None
        elif other_run or (self.final and not final):
            return False  # the end of an older run, or older than what we hold
        self.run_id = event_run or self.run_id
        self.status = status
        if data.get("error") is not None:
            self.error = data["error"]
        elif not final:
            self.error = None
        for key in ("usage", "provider", "model"):
            if data.get(key) is not None:
                setattr(self, key, data[key])
        return True


async def follow_answer(
    client: Polaris, conversation_id: str, state: AnswerState, since: int, on_change: Callable[[AnswerState], None]
) -> AnswerState:
    """Apply the conversation's events after ``since`` to ``state`` until the message is final,
    or until it waits for the user's approval (a cell must not block while it does)."""
    backend = client.backend
    if state.final or state.held:
        return state
    stream = backend.events(conversation_id=conversation_id, since=since)
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        async for event in stream:
            if state.apply(event):
                on_change(state.copy())
            if state.gap:
                messages = await backend.messages(conversation_id)
                stored = next((m for m in messages if m["id"] == state.message_id), None)
                if stored is not None:
                    state.load(stored)
                    on_change(state.copy())
            if state.final or state.held:
                break
    return state


def stream_answer(
    client: Polaris,
    post: Callable[[], dict[str, Any]],
    conversation_id: str,
    show: Callable[[AnswerState], Any],
    update: Callable[[Any, AnswerState], None],
    message_id: str | None = None,
    *,
    resume: bool = False,
) -> AnswerState:
    """Post (or retry) a message and redraw its answer until it is final (or waits for an
    approval). Blocks this cell only. ``resume``: ``post`` lets an answer go on (an approval
    decided), which is drawn from what it says so far.

    ``show(state)`` creates the display and returns a handle; ``update(handle, state)`` redraws.
    """
    since = client.call(client.backend.last_event_seq())
    posted = post()
    state = AnswerState(message_id or posted["messageId"], posted.get("runId"), conversation_id=conversation_id)
    if resume:
        stored = next((m for m in client.messages(conversation_id) if m["id"] == state.message_id), None)
        if stored is not None:
            state.load(stored)
    handle = show(state.copy())
    changes: queue.SimpleQueue[AnswerState] = queue.SimpleQueue()
    future = client.loop.submit(follow_answer(client, conversation_id, state, since, changes.put))
    latest: AnswerState | None = None
    drawn_at = 0.0
    try:
        while True:
            with contextlib.suppress(queue.Empty):
                latest = changes.get(timeout=REDRAW_INTERVAL_S / 2)
                while True:
                    latest = changes.get_nowait()
            done = future.done()
            if latest is not None and (done or time.monotonic() - drawn_at >= REDRAW_INTERVAL_S):
                update(handle, latest)
                drawn_at, latest = time.monotonic(), None
            if done:
                final = future.result()
                update(handle, final.copy())
                return final
    except KeyboardInterrupt:
        return _stop(client, future, state, handle, update)


def _stop(client: Polaris, future: Any, state: AnswerState, handle: Any, update: Callable[[Any, AnswerState], None]) -> AnswerState:
    """Ctrl-C: cancel the message, wait briefly for the final status, draw it."""
    with contextlib.suppress(Exception):
        client.cancel_message(state.message_id)
    with contextlib.suppress(Exception):
        future.result(5.0)
    future.cancel()
    final = state.copy()
    if not final.final:
        final.status = "cancelled"
    update(handle, final)
    return final
