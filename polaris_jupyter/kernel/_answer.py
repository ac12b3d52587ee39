"""Streaming one assistant answer into ONE cell output that updates in place.

The answer is rebuilt from chat events (deltas by char offset, tool-call cards, status), on the
Polaris loop thread; the cell's own thread redraws a display handle at most every
``REDRAW_INTERVAL_S`` and always once at the end. Ctrl-C / kernel interrupt stops the answer
(the message is cancelled) and the output says so.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polaris_jupyter.kernel.client import Polaris

__all__ = ["AnswerState", "follow_answer", "stream_answer"]

#: At most this often a streaming answer redraws its output (10 updates/s, far below iopub limits).
REDRAW_INTERVAL_S = 0.1
FINAL_MESSAGE_STATUSES = frozenset({"completed", "failed", "cancelled"})


@dataclass
class AnswerState:
    """The assistant message as the cell shows it."""

    message_id: str
    run_id: str | None = None
    content: str = ""
    status: str = "pending"
    tool_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: Any = None
    provider: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    gap: bool = False

    @property
    def final(self) -> bool:
        return self.status in FINAL_MESSAGE_STATUSES

    def copy(self) -> AnswerState:
        return replace(self, tool_calls={k: dict(v) for k, v in self.tool_calls.items()})

    def load(self, message: dict[str, Any]) -> None:
        """Take the stored message (a resync after a gap)."""
        self.content = message.get("content") or ""
        self.status = message.get("status") or self.status
        self.run_id = message.get("runId") or self.run_id
        self.tool_calls = {c["id"]: dict(c) for c in message.get("toolCalls") or [] if c.get("id")}
        self.error = message.get("error")
        self.provider = message.get("provider") or self.provider
        self.model = message.get("model") or self.model
        self.usage = message.get("usage") or self.usage
        self.gap = False

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one event; True when something visible changed."""
        data = event.get("data") or {}
        kind = event.get("type")
        if data.get("messageId") != self.message_id and not (
            kind == "message.created" and (data.get("message") or {}).get("id") == self.message_id
        ):
            return False
        if kind == "message.created":
            message = data.get("message") or {}
            self.run_id = message.get("runId") or self.run_id
            return False
        if kind == "message.delta":
            offset, delta = int(data.get("offset", 0)), str(data.get("delta") or "")
            if offset > len(self.content):
                self.gap = True
                return False
            if offset + len(delta) <= len(self.content):
                return False  # already have it
            self.content = self.content[:offset] + delta
            if self.status == "pending":
                self.status = "processing"
            return True
        if kind == "message.status":
            status = str(data.get("status") or self.status)
            if data.get("reset"):
                self.content, self.tool_calls, self.error = "", {}, None
            if self.final and status not in FINAL_MESSAGE_STATUSES:
                return False
            self.status = status
            self.error = data.get("error", self.error if self.final else None)
            self.provider = data.get("provider") or self.provider
            self.model = data.get("model") or self.model
            self.usage = data.get("usage") or self.usage
            return True
        if kind in ("toolcall.started", "toolcall.finished"):
            call = data.get("toolCall") or {}
            if not call.get("id"):
                return False
            existing = self.tool_calls.get(call["id"])
            if existing is not None and existing.get("status") != "running" and call.get("status") == "running":
                return False  # a late "started" never undoes a "finished"
            self.tool_calls[call["id"]] = {**(existing or {}), **call}
            return True
        return False


async def follow_answer(
    client: Polaris, conversation_id: str, state: AnswerState, since: int, on_change: Callable[[AnswerState], None]
) -> AnswerState:
    """Apply the conversation's events after ``since`` to ``state`` until the message is final."""
    backend = client.backend
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
            if state.final:
                break
    return state


def stream_answer(
    client: Polaris,
    post: Callable[[], dict[str, Any]],
    conversation_id: str,
    show: Callable[[AnswerState], Any],
    update: Callable[[Any, AnswerState], None],
    message_id: str | None = None,
) -> AnswerState:
    """Post (or retry) a message and redraw its answer until it is final. Blocks this cell only.

    ``show(state)`` creates the display and returns a handle; ``update(handle, state)`` redraws.
    """
    since = client.call(client.backend.last_event_seq())
    posted = post()
    state = AnswerState(message_id or posted["messageId"], posted.get("runId"))
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
