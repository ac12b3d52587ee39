"""Inline completions (ghost text): a request around the cursor becomes a stream of suggestion text.

Example::

    service = CompletionService(runtime.models.chain_for, CompletionSettings.from_config(config))
    handle = service.complete(CompletionRequest(prefix="def add(a, b):\\n    return", editor_id="cell-3"))
    async for piece in handle:
        ...  # show it as ghost text
    service.feedback(handle.id, "accepted")

:meth:`CompletionService.complete` returns at once (nothing awaited): a new request from the
same ``editor_id`` supersedes the previous one (its task is cancelled, which closes its model
stream on the spot), an identical request within ``cache_ttl_s`` is answered from a small LRU,
anything else starts a task that opens the model stream
(:mod:`~polaris_jupyter.agent.completions_models`: fill-in-the-middle where the provider has
it), cuts it where the suggestion ends (:mod:`~polaris_jupyter.agent.completions_boundary`)
and hands the pieces to the handle.

Why a completion is an operation of the engine but not a durable run: a run costs a row, an
event, a group commit and a fan-out to subscribers, and buys retries, resume after a restart,
replay and an audit trail. A suggestion is worthless a keystroke later: nobody would retry it,
resume it after a crash or replay it, and typing makes several a second per user, so
durability would only add write amplification and milliseconds on the hot path. What it keeps
of a run: an id, the run statuses (COMPLETED, CANCELED, FAILED, TIMED_OUT), cancellation that
closes the model stream, a time limit, and metrics in the shape of a task's entry in the
engine's metrics — kept in memory (counters and a bounded window of latencies,
:class:`~polaris_jupyter.agent.completions_metrics.CompletionMetrics`), so a restart resets them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from polaris_jupyter.agent.completions_boundary import SuggestionTrimmer, stop_sequences
from polaris_jupyter.agent.completions_metrics import (
    FEEDBACK_EVENTS,
    CachedSuggestion,
    CompletionMetrics,
    SuggestionCache,
)
from polaris_jupyter.agent.completions_models import (
    ChainSource,
    CompletionMode,
    CompletionModels,
    ModelCall,
    SuggestionStream,
)
from polaris_jupyter.agent.completions_prompt import (
    COMPLETION_REQUEST_SCHEMA,
    CompletionRequest,
    build_prompt,
)
from polaris_jupyter.errors import InvalidInput, NotFound
from polaris_jupyter.jobs import RunStatus, new_id

__all__ = [
    "COMPLETION_REQUEST_SCHEMA",
    "CancelReason",
    "CompletionHandle",
    "CompletionMode",
    "CompletionRequest",
    "CompletionService",
    "CompletionSettings",
]

logger = logging.getLogger("polaris_jupyter.agent.completions")
_END = object()


@dataclass(frozen=True)
class CompletionSettings:
    """Budgets and limits of inline completions (``PolarisConfig.completion_*`` traits)."""

    max_tokens: int = 96
    prefix_chars: int = 6000
    suffix_chars: int = 2000
    context_chars: int = 4000
    max_lines: int = 16
    max_chars: int = 2000
    cache_ttl_s: float = 30.0
    cache_size: int = 64
    timeout_s: float = 20.0
    fim: str = "auto"
    feedback_window: int = 2048
    latency_window: int = 1024

    @classmethod
    def from_config(cls, config: Any) -> CompletionSettings:
        """From a ``PolarisConfig`` (any object with the ``completion_*`` attributes it has)."""
        names = {"max_tokens": "completion_max_tokens", "context_chars": "completion_context_chars",
                 "cache_ttl_s": "completion_cache_ttl_s", "cache_size": "completion_cache_size",
                 "fim": "completion_fim"}
        values = {field: getattr(config, trait) for field, trait in names.items() if hasattr(config, trait)}
        return cls(**values)


class CancelReason(str, enum.Enum):
    SUPERSEDED = "superseded"  # a newer request from the same editor
    CANCELLED = "cancelled"  # the caller gave up (client disconnected, editor closed)
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"  # the service is shutting down


class CompletionHandle:
    """One completion: iterate it for suggestion pieces; ``cancel()`` stops it at once.

    Iteration ends when the suggestion is complete or the completion was cancelled; it raises
    the model's error when the completion failed. Times are ``time.perf_counter()`` seconds.
    """

    def __init__(self, request: CompletionRequest, started_at: float) -> None:
        self.id = new_id("cmp")
        self.request = request
        self.editor_id = request.editor_id
        self.started_at = started_at
        self.status = RunStatus.EXECUTING
        self.provider: str | None = None
        self.model: str | None = None
        self.mode: CompletionMode | None = None
        self.cached = False
        self.text = ""
        self.error: BaseException | None = None
        self.cancel_reason: CancelReason | None = None
        self.first_piece_at: float | None = None
        self.finished_at: float | None = None
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._on_finish: Callable[[CompletionHandle], None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def done(self) -> bool:
        return self.status is not RunStatus.EXECUTING

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            item = await self._queue.get()
            if item is _END:
                break
            assert isinstance(item, str)
            yield item
        if self.error is not None:
            raise self.error

    async def wait(self) -> CompletionHandle:
        """Until the completion is final and its model stream is closed."""
        if self._task is not None:
            await asyncio.wait({self._task})
        return self

    def cancel(self, reason: CancelReason = CancelReason.CANCELLED) -> None:
        """Stop now: the iterator ends, the task is cancelled and closes its model stream."""
        if self.done:
            return
        status = RunStatus.TIMED_OUT if reason is CancelReason.TIMED_OUT else RunStatus.CANCELED
        self._finish(status, cancel_reason=reason)
        if self._task is not None:
            self._task.cancel()

    def to_json(self) -> dict[str, Any]:
        """The completion as the wire shows it (the route's ``end`` line)."""
        first_ms = None if self.first_piece_at is None else round((self.first_piece_at - self.started_at) * 1e3, 3)
        end = self.finished_at if self.finished_at is not None else time.perf_counter()
        return {
            "id": self.id, "editorId": self.editor_id, "status": self.status.value,
            "provider": self.provider, "model": self.model, "mode": self.mode.value if self.mode else None,
            "cached": self.cached, "text": self.text,
            "cancelReason": self.cancel_reason.value if self.cancel_reason else None,
            "error": None if self.error is None else str(self.error),
            "firstSuggestionMs": first_ms, "durationMs": round((end - self.started_at) * 1e3, 3),
        }

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The wire lines of ``POST /polaris/api/v1/completions`` (NDJSON): ``start`` with the
        first piece, ``delta`` per piece, then ``end`` (or ``error`` after a failure)."""
        started = False
        try:
            async for piece in self:
                if not started:
                    started = True
                    yield self._start_line()
                yield {"type": "delta", "text": piece}
        except Exception as exc:
            yield {"type": "error", "status": getattr(exc, "http_status", 502), "message": str(exc), "id": self.id}
            return
        if not started:
            yield self._start_line()
        yield {"type": "end", **self.to_json()}

    def _start_line(self) -> dict[str, Any]:
        return {"type": "start", "id": self.id, "provider": self.provider, "model": self.model,
                "mode": self.mode.value if self.mode else None, "cached": self.cached}

    # -- used by the service --------------------------------------------------------------------
    def _push(self, piece: str) -> None:
        if self.done:
            return
        if self.first_piece_at is None:
            self.first_piece_at = time.perf_counter()
        self.text += piece
        self._queue.put_nowait(piece)

    def _finish(self, status: RunStatus, *, error: BaseException | None = None,
                cancel_reason: CancelReason | None = None) -> None:
        if self.done:
            return
        self.status, self.error, self.cancel_reason = status, error, cancel_reason
        self.finished_at = time.perf_counter()
        if self._timer is not None:
            self._timer.cancel()
        self._queue.put_nowait(_END)
        if self._on_finish is not None:
            self._on_finish(self)


class CompletionService:
    """Serves inline completions on the chat's providers (see the module docstring).

    ``chain`` is ``ModelService.chain_for`` (a request's provider/model override then picks the
    chain a conversation with that choice would use) or one fixed chain.
    """

    def __init__(self, chain: ChainSource, settings: CompletionSettings | None = None) -> None:
        self.settings = settings or CompletionSettings()
        self.models = CompletionModels(chain, fim=self.settings.fim)
        self.cache = SuggestionCache(size=self.settings.cache_size, ttl_s=self.settings.cache_ttl_s)
        self.record = CompletionMetrics(window=self.settings.latency_window)
        self._by_editor: dict[str, CompletionHandle] = {}
        self._running: set[CompletionHandle] = set()
        self._feedback: collections.OrderedDict[str, set[str]] = collections.OrderedDict()
        self._stopping = False

    def complete(self, request: CompletionRequest) -> CompletionHandle:
        """Start a completion (returns at once; iterate the handle for the suggestion)."""
        if self._stopping:
            raise InvalidInput("the completion service is stopping")
        started_at = time.perf_counter()
        previous = self._by_editor.get(request.editor_id)
        if previous is not None:
            previous.cancel(CancelReason.SUPERSEDED)
        s = self.settings
        prompt = build_prompt(request, prefix_chars=s.prefix_chars, suffix_chars=s.suffix_chars,
                              context_chars=s.context_chars)
        max_tokens = request.max_tokens or s.max_tokens
        key = (prompt.cache_key(), request.provider, request.model, max_tokens)
        handle = CompletionHandle(request, started_at)
        handle._on_finish = self._finished
        hit = self.cache.get(key)
        if hit is not None:
            handle.cached, handle.provider, handle.model = True, hit.provider, hit.model
            handle.mode = CompletionMode(hit.mode)
            if hit.text:
                handle._push(hit.text)
            handle._finish(RunStatus.COMPLETED)
            return handle
        self._by_editor[request.editor_id] = handle
        self._running.add(handle)
        call = ModelCall(prompt, max_tokens, stop_sequences(prompt.suffix), request.provider, request.model)
        handle._task = asyncio.create_task(self._run(handle, call, key), name=f"completion-{handle.id}")
        if s.timeout_s > 0:
            handle._timer = asyncio.get_running_loop().call_later(s.timeout_s, handle.cancel, CancelReason.TIMED_OUT)
        return handle

    async def _run(self, handle: CompletionHandle, call: ModelCall, key: Any) -> None:
        stream: SuggestionStream | None = None
        try:
            stream = await self.models.open(call)
            handle.provider, handle.model, handle.mode = stream.provider, stream.model, stream.mode
            prompt = call.prompt
            trimmer = SuggestionTrimmer(prompt.prefix, prompt.suffix, prompt.language,
                                        chat=stream.mode is CompletionMode.CHAT,
                                        max_lines=self.settings.max_lines, max_chars=self.settings.max_chars)
            while not trimmer.done:
                piece = await stream.next()
                out = trimmer.finish() if piece is None else trimmer.feed(piece)
                if out:
                    handle._push(out)
            # Closed before the handle is final, so a caller that saw the end sees the stream gone.
            await stream.aclose()
            self.cache.put(key, CachedSuggestion(trimmer.text, stream.provider, stream.model, stream.mode.value))
            handle._finish(RunStatus.COMPLETED)
        except asyncio.CancelledError:
            handle._finish(RunStatus.CANCELED, cancel_reason=CancelReason.CANCELLED)
            raise
        except Exception as exc:
            logger.info("completion %s failed: %s", handle.id, exc)
            handle._finish(RunStatus.FAILED, error=exc)
        finally:
            if stream is not None:
                await stream.aclose()
            self._running.discard(handle)

    def _finished(self, handle: CompletionHandle) -> None:
        if self._by_editor.get(handle.editor_id) is handle:
            del self._by_editor[handle.editor_id]
        first_ms = None if handle.first_piece_at is None else (handle.first_piece_at - handle.started_at) * 1e3
        assert handle.finished_at is not None
        self.record.record(handle.status, mode=handle.mode.value if handle.mode else None, cached=handle.cached,
                           first_chunk_ms=first_ms, duration_ms=(handle.finished_at - handle.started_at) * 1e3,
                           cancel_reason=handle.cancel_reason.value if handle.cancel_reason else None)
        if handle.status is RunStatus.COMPLETED and handle.text:
            self._feedback[handle.id] = set()
            while len(self._feedback) > self.settings.feedback_window:
                self._feedback.popitem(last=False)

    def feedback(self, completion_id: str, event: str) -> dict[str, Any]:
        """The editor reports a suggestion ``shown``, ``accepted`` or ``dismissed`` (once each)."""
        if event not in FEEDBACK_EVENTS:
            raise InvalidInput(f"event must be one of {', '.join(FEEDBACK_EVENTS)}, got {event!r}")
        seen = self._feedback.get(completion_id)
        if seen is None:
            raise NotFound(f"no recent completion {completion_id!r} with a suggestion (the last "
                           f"{self.settings.feedback_window} are kept)")
        for name in ("shown", event) if event == "accepted" else (event,):
            if name not in seen:
                seen.add(name)
                self.record.feedback(name)
        return {"id": completion_id, "events": sorted(seen)}

    def cancel_editor(self, editor_id: str) -> bool:
        """Cancel the running completion of an editor (e.g. it was closed); True if there was one."""
        handle = self._by_editor.get(editor_id)
        if handle is None:
            return False
        handle.cancel(CancelReason.CANCELLED)
        return True

    def metrics(self) -> dict[str, Any]:
        """The operation record as a task entry of the engine's metrics answer (not persisted)."""
        out = self.record.to_json()
        out["running"] = len(self._running)
        out["cacheEntries"] = len(self.cache)
        out["fimSupport"] = self.models.fim_support()
        return out

    async def stop(self) -> None:
        """Cancel running completions, wait until their streams are closed, close the clients."""
        self._stopping = True
        running = list(self._running)
        for handle in running:
            handle.cancel(CancelReason.STOPPED)
        tasks = [h._task for h in running if h._task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.models.aclose()
        self.cache.clear()
