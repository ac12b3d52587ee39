"""The provider chain: one ``openai.AsyncOpenAI`` client per provider, streaming with fallback.

:meth:`ProviderChain.open_stream` tries providers in order and only moves on when a call fails
before its first token (connection error, 401/403/404/408/409/429/5xx, a stream that breaks
before any output). The first chunk carrying output commits the chain to that provider: later
errors propagate as :class:`ModelStreamError`. Every failure comes out as a
:class:`~polaris_jupyter.agent.errors.ModelError` that says what failed and what to do.

Servers that cannot take tools (a 4xx whose text says so, see
:func:`~polaris_jupyter.agent.errors.refuses_tools`; never a 5xx or a proxy's "upstream" error)
are asked again without streaming, then without tools for steps that do not force one. What was
learned is remembered per provider and model for ``degrade_ttl_s`` and then tried again; the
stream says it ``degraded`` and carries a ``notice`` for the user. A ``system_prompt`` callable
is given the names of the tools each request really sends, so the prompt never lists tools
that are not there. The SDK makes each request; the SSE body is read by
:mod:`polaris_jupyter.agent.sse`.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import openai

from polaris_jupyter.agent.errors import (
    AllProvidersFailed,
    ModelError,
    ModelStreamError,
    NoProviderError,
    ProviderError,
    _server_message,
    provider_error,
    refuses_tools,
)
from polaris_jupyter.agent.providers import ProviderConfig, discover_providers
from polaris_jupyter.agent.sse import SseChunkSource, StreamDelta, ToolCallDelta, deltas_from_completion

__all__ = ["DEFAULT_DEGRADE_TTL_S", "ChatStream", "ProviderChain", "StreamDelta", "SystemPrompt",
           "ToolCallDelta", "ToolMode"]

logger = logging.getLogger("polaris_jupyter.agent")

#: How long a learned "this server cannot stream tools" is trusted before trying again.
DEFAULT_DEGRADE_TTL_S = 600.0
_FALLBACK_STATUSES = frozenset({401, 403, 404, 408, 409, 429})

#: Builds the system message from the names of the tools a request really sends.
SystemPrompt = Callable[[list[str]], str]


def _can_fall_back(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _FALLBACK_STATUSES or exc.status_code >= 500
    return isinstance(exc, (openai.APIConnectionError, openai.APIError, ModelStreamError))


def _error_text(exc: openai.APIStatusError) -> str:
    return f"{exc.message} {_server_message(exc)}".lower()


class ChatStream:
    """An open model answer: iterate it for :class:`StreamDelta`; ``aclose()`` drops the HTTP stream."""

    def __init__(self, provider: ProviderConfig, model: str, source: SseChunkSource | None,
                 buffered: list[StreamDelta], *, degraded: bool = False) -> None:
        self.provider = provider
        self.model = model
        self.degraded = degraded
        #: Why this step went without streaming or without tools (for the user), None if it did not.
        self.notice: str | None = None
        self._source = source
        self._buffered = buffered

    async def __aiter__(self) -> AsyncIterator[StreamDelta]:
        buffered, self._buffered = self._buffered, []
        finished = any(d.finish_reason for d in buffered)
        for delta in buffered:
            yield delta
        source = self._source
        if source is None:
            return
        while True:
            try:
                delta = await source.next()
            except StopAsyncIteration:
                break
            except ModelStreamError as exc:
                raise ModelStreamError(
                    f"The stream from {self.provider.name} ({self.model}) broke after output had started: "
                    f"{exc}", provider=self.provider.name, model=self.model) from exc
            finished = finished or delta.finish_reason is not None
            yield delta
        if not finished:
            raise ModelStreamError(
                f"The stream from {self.provider.name} ({self.model}) ended before the model finished",
                provider=self.provider.name, model=self.model)

    async def aclose(self) -> None:
        """Close the HTTP response at once (the server sees the connection go away)."""
        source, self._source = self._source, None
        if source is not None:
            await source.close()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@dataclass
class _ToolModeNote:
    """How tool requests are known to work for one provider+model, and until when to trust it."""

    mode: ToolMode
    notice: str | None
    expires_at: float | None  # None: told by the server itself (the bundled model), never expires


class ProviderChain:
    """Providers in fallback order, each with its own async client (``max_retries=0``).

    ``degrade_ttl_s``: how long a learned tool degrade is kept; ``clock`` (monotonic seconds)
    is injectable so tests need not wait.
    """

    def __init__(self, providers: Sequence[ProviderConfig], *, degrade_ttl_s: float = DEFAULT_DEGRADE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not providers:
            raise NoProviderError("The provider chain is empty: configure at least one model provider")
        self.providers = list(providers)
        self.last_provider: ProviderConfig | None = None
        self.last_model: str | None = None
        self.degrade_ttl_s = degrade_ttl_s
        self._clock = clock
        self._clients: dict[str, tuple[openai.AsyncOpenAI, str]] = {}
        self._tool_modes: dict[tuple[str, str], _ToolModeNote] = {}
        self._no_stream_options: set[str] = set()
        self._local_server: Any | None = None
        self._owns_local_server = False
        self._client_lock = asyncio.Lock()

    @classmethod
    async def from_env(cls, *, degrade_ttl_s: float = DEFAULT_DEGRADE_TTL_S, **kwargs: Any) -> ProviderChain:
        """Build from the environment (see :func:`discover_providers` for the keyword arguments)."""
        return cls(await discover_providers(**kwargs), degrade_ttl_s=degrade_ttl_s)

    def degraded(self) -> list[dict[str, Any]]:
        """The tool degrades in force (provider, model, mode, notice, expiresInS), for status views."""
        now = self._clock()
        return [
            {"provider": name, "model": model, "mode": note.mode.name.lower(), "notice": note.notice,
             "expiresInS": None if note.expires_at is None else round(max(0.0, note.expires_at - now), 1)}
            for (name, model), note in self._tool_modes.items()
            if note.mode is not ToolMode.STREAM and (note.expires_at is None or note.expires_at > now)
        ]

    async def _client(self, p: ProviderConfig) -> tuple[openai.AsyncOpenAI, str]:
        """The client and model for ``p`` (starting the bundled model on first use, and again
        after its process died: it comes back on a new port, so the client is rebuilt)."""
        cached = self._clients.get(p.name)
        if cached is not None and self._usable(p):
            return cached
        async with self._client_lock:  # concurrent first calls share one client
            cached = self._clients.get(p.name)
            if cached is not None and not self._usable(p):
                del self._clients[p.name]
                await cached[0].close()
            if p.name not in self._clients:
                self._clients[p.name] = await self._new_client(p)
            return self._clients[p.name]

    def _usable(self, p: ProviderConfig) -> bool:
        return not p.bundled or (self._local_server is not None and bool(self._local_server.running))

    async def _new_client(self, p: ProviderConfig) -> tuple[openai.AsyncOpenAI, str]:
        base_url, model = p.base_url, p.model
        if p.bundled:
            local_model = importlib.import_module("polaris_jupyter.agent.local_model")  # optional

            if self._local_server is None:
                shared = getattr(local_model, "get_local_model_server", None)
                self._owns_local_server = shared is None
                self._local_server = shared() if shared is not None else local_model.LocalModelServer()
            base_url = await self._local_server.ensure_started()
            model = self._local_server.model_name
            mode = _mode_from_capabilities(self._local_server)
            notice = None if mode is ToolMode.STREAM else (
                "the bundled model cannot choose tools itself: only steps that force a tool send tools"
                if mode is ToolMode.NO_TOOLS else "the bundled model cannot stream tool calls: tools go unstreamed")
            self._tool_modes[(p.name, model)] = _ToolModeNote(mode, notice, None)
        client = openai.AsyncOpenAI(
            base_url=base_url, api_key=p.api_key or "no-key", max_retries=0,
            timeout=openai.Timeout(p.read_timeout_s, connect=p.connect_timeout_s),
            default_headers=p.headers or None,
        )
        return client, model

    async def open_stream(
        self,
        *,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        temperature: float | None = None,
        extra_body: dict[str, Any] | None = None,
        system_prompt: SystemPrompt | None = None,
    ) -> ChatStream:
        """Open a streamed answer on the first provider that gets to its first token.

        ``system_prompt(tool_names)``, when given, becomes the first message of every request,
        built from the tools that request really carries. Raises :class:`ProviderError` for a
        failure that no other provider could fix (a 400), :class:`AllProvidersFailed` when every
        provider failed before its first token."""
        kwargs: dict[str, Any] = {"messages": messages}
        if tools:
            kwargs["tools"] = tools
            if tool_choice is not None:
                kwargs["tool_choice"] = tool_choice
        if temperature is not None:
            kwargs["temperature"] = temperature
        if extra_body:
            kwargs["extra_body"] = extra_body
        errors: list[ProviderError] = []
        for p in self.providers:
            model = p.model
            try:
                client, model = await self._client(p)
                stream = await self._open_one(p, client, model, kwargs, bool(tools), system_prompt)
            except Exception as exc:
                start_failure = _is_start_failure(exc, p)
                if not isinstance(exc, (openai.APIError, ModelError)) and not start_failure:
                    raise  # a bug, not a provider's answer
                failure = provider_error(exc, p, model)
                if not _can_fall_back(exc) and not start_failure:
                    raise failure from None
                logger.warning("provider %s (%s) failed before its first token: %s", p.name, model, failure)
                errors.append(failure)
                continue
            self.last_provider, self.last_model = p, model
            return stream
        raise AllProvidersFailed(errors) from None

    def _known_mode(self, p: ProviderConfig, model: str) -> tuple[ToolMode, str | None]:
        key = (p.name, model)
        note = self._tool_modes.get(key)
        if note is None:
            return ToolMode.STREAM, None
        if note.expires_at is not None and self._clock() >= note.expires_at:
            del self._tool_modes[key]
            logger.info("provider %s (%s): tool degrade expired, sending streamed tools again", p.name, model)
            return ToolMode.STREAM, None
        return note.mode, note.notice

    def _learn(self, p: ProviderConfig, model: str, mode: ToolMode, exc: openai.APIStatusError) -> str:
        """Remember that ``p``/``model`` needs ``mode`` (for ``degrade_ttl_s``); the notice says why."""
        what = ("tools go without streaming" if mode is ToolMode.COMPLETE
                else "steps that do not force a tool go without tools")
        minutes = f"{self.degrade_ttl_s / 60:g} min"
        notice = (f"{p.name} ({model}) refused tool calls ({exc.status_code} {_server_message(exc)}): "
                  f"{what} for the next {minutes}")
        logger.warning("provider %s (%s) refused tool mode %s: %s", p.name, model, ToolMode(mode - 1).name, notice)
        self._tool_modes[(p.name, model)] = _ToolModeNote(mode, notice, self._clock() + self.degrade_ttl_s)
        return notice

    async def _open_one(self, p: ProviderConfig, client: openai.AsyncOpenAI, model: str,
                        kwargs: dict[str, Any], tools_sent: bool, system_prompt: SystemPrompt | None) -> ChatStream:
        """Stream; with tools, walk down the degrade ladder when the server refuses (and remember)."""
        if not tools_sent:
            return await self._stream_until_output(p, client, model, kwargs, system_prompt)
        forced = _is_forced(kwargs.get("tool_choice"))
        known, notice = self._known_mode(p, model)
        mode = min(known, ToolMode.COMPLETE) if forced else known
        while True:
            try:
                if mode is ToolMode.STREAM:
                    stream = await self._stream_until_output(p, client, model, kwargs, system_prompt)
                elif mode is ToolMode.COMPLETE:
                    stream = await self._complete(p, client, model, kwargs, system_prompt)
                else:  # the server cannot choose tools itself: answer in text this step
                    plain = {k: v for k, v in kwargs.items() if k not in ("tools", "tool_choice")}
                    stream = await self._stream_until_output(p, client, model, plain, system_prompt)
                    stream.degraded = True
            except openai.APIStatusError as exc:
                lowest = ToolMode.COMPLETE if forced else ToolMode.NO_TOOLS
                if mode >= lowest or not refuses_tools(exc):
                    raise
                mode = ToolMode(mode + 1)
                if mode > known:
                    notice = self._learn(p, model, mode, exc)
                continue
            if stream.degraded:
                stream.notice = notice
            return stream

    async def _complete(self, p: ProviderConfig, client: openai.AsyncOpenAI, model: str,
                        kwargs: dict[str, Any], system_prompt: SystemPrompt | None) -> ChatStream:
        request = _with_system(kwargs, system_prompt)
        completion = await client.chat.completions.create(model=model, stream=False, **request)
        return ChatStream(p, model, None, deltas_from_completion(completion.model_dump()), degraded=True)

    async def _stream_until_output(self, p: ProviderConfig, client: openai.AsyncOpenAI, model: str,
                                   kwargs: dict[str, Any], system_prompt: SystemPrompt | None) -> ChatStream:
        """Open the stream and read until the first chunk with output (the fallback boundary)."""
        request = _with_system(kwargs, system_prompt)
        want_usage = p.stream_usage and p.name not in self._no_stream_options
        extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if want_usage else {}
        raw = client.chat.completions.with_streaming_response
        try:
            response = await raw.create(model=model, stream=True, **extra, **request).__aenter__()
        except openai.APIStatusError as exc:
            if not extra or exc.status_code not in (400, 422) or "stream_options" not in _error_text(exc):
                raise
            self._no_stream_options.add(p.name)  # older servers refuse it: stream without usage
            response = await raw.create(model=model, stream=True, **request).__aenter__()
        source = SseChunkSource(response, provider=p.name, model=model)
        buffered: list[StreamDelta] = []
        try:
            while True:
                try:
                    delta = await source.next()
                except StopAsyncIteration:
                    raise ModelStreamError("the stream ended without any output",
                                           provider=p.name, model=model) from None
                buffered.append(delta)
                if delta.has_output:
                    return ChatStream(p, model, source, buffered)
        except BaseException:
            await source.close()
            raise

    async def aclose(self) -> None:
        """Close every client and stop the bundled model if this chain started it."""
        clients, self._clients = self._clients, {}
        for client, _model in clients.values():
            await client.close()
        if self._local_server is not None:
            server, self._local_server = self._local_server, None
            if self._owns_local_server:  # the shared server belongs to local_model (stopped at exit)
                await server.stop()

    async def __aenter__(self) -> ProviderChain:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ToolMode(enum.IntEnum):
    """How a provider takes requests with tools, from best to most degraded."""

    STREAM = 0
    COMPLETE = 1  # no streaming when tools are sent
    NO_TOOLS = 2  # non-forced steps go without tools (the server cannot pick tools itself)


def _with_system(kwargs: dict[str, Any], system_prompt: SystemPrompt | None) -> dict[str, Any]:
    """The request with ``system_prompt(names of the tools it sends)`` as its first message."""
    if system_prompt is None:
        return kwargs
    names = [str((t.get("function") or {}).get("name", "")) for t in kwargs.get("tools") or ()]
    return {**kwargs, "messages": [{"role": "system", "content": system_prompt(names)}, *kwargs["messages"]]}


def _is_forced(choice: Any) -> bool:
    return isinstance(choice, dict) or choice == "required"


def _mode_from_capabilities(server: Any) -> ToolMode:
    """The bundled server says up front what it can do (``LocalModelCapabilities``)."""
    caps = getattr(server, "capabilities", None)
    caps = caps() if callable(caps) else caps
    if caps is None:
        return ToolMode.STREAM
    if not getattr(caps, "auto_tool_choice", True):
        return ToolMode.NO_TOOLS
    return ToolMode.STREAM if getattr(caps, "stream_with_tools", True) else ToolMode.COMPLETE


def _is_start_failure(exc: BaseException, p: ProviderConfig) -> bool:
    """The bundled model failing to start (missing extra, no weights) is a fallback case too."""
    return p.bundled and isinstance(exc, (ImportError, OSError, RuntimeError, TimeoutError))
