"""The model side of inline completions: fill-in-the-middle where it works, a chat prompt otherwise.

Providers come from the chat's :class:`~polaris_jupyter.agent.chain.ProviderChain`, in its
order. For each provider, ``/completions`` with ``prompt`` + ``suffix`` is tried unless that
provider and model are known to refuse it; a refusal (404/405/501, or a 4xx/5xx that names the
suffix, infill or chat-only models) is remembered per provider+model and the provider is asked
through the chain's chat path from then on. Any other failure before the first token moves on to
the next provider, as the chat does; when no provider completes, the chain's chat path decides
(with its own fallback rule and :class:`AllProvidersFailed`).

The bundled model takes ``/completions`` without ``suffix`` ("prefix" mode): llama-cpp-python
0.3.36 builds its infill prompt with token 0 in place of the FIM tokens (``# TODO: Fix`` in
``Llama._create_completion``), and SmolLM2 has no FIM tokens anyway. Tried, not assumed: with a
suffix it answered with unrelated text, without one it continued the code.

The chain's clients are private, so text completions use clients of their own (one per
provider, keep-alive, no retries); the chat path goes through the chain's public
``open_stream``. Streams are read raw (``json.loads`` per event, no SDK object per chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, cast

import openai

from polaris_jupyter.agent.chain import ChatStream, ProviderChain, StreamDelta
from polaris_jupyter.agent.completions_prompt import CompletionPrompt
from polaris_jupyter.agent.errors import ModelError, ModelStreamError
from polaris_jupyter.agent.providers import ProviderConfig, bundled_model_available, known_providers
from polaris_jupyter.errors import InvalidInput

__all__ = ["ChainSource", "CompletionMode", "CompletionModels", "ModelCall", "SuggestionStream"]

logger = logging.getLogger("polaris_jupyter.agent.completions")

ChainSource = ProviderChain | Callable[[], Awaitable[ProviderChain]]
_REFUSAL_STATUSES = frozenset({404, 405, 501})
_REFUSAL_WORDS = ("suffix", "insert", "infill", "fim", "not supported", "chat model", "completions endpoint")
_OVERRIDE_CHAINS = 4


class CompletionMode(str, enum.Enum):
    """How a suggestion was asked for."""

    FIM = "fim"  # /completions with prompt + suffix
    PREFIX = "prefix"  # /completions with the prompt only (no working infill on that server)
    CHAT = "chat"  # /chat/completions with an instruction prompt


@dataclass(frozen=True)
class ModelCall:
    """What one completion asks of the model."""

    prompt: CompletionPrompt
    max_tokens: int
    stop: list[str]
    provider: str | None = None
    model: str | None = None


class SuggestionStream:
    """An open model answer as raw text pieces; :meth:`aclose` drops the HTTP stream at once."""

    def __init__(self, provider: str, model: str, mode: CompletionMode,
                 pieces: AsyncGenerator[str, None], close: Callable[[], Awaitable[None]],
                 buffered: list[str]) -> None:
        self.provider = provider
        self.model = model
        self.mode = mode
        self._pieces = pieces
        self._close = close
        self._buffered = buffered
        self._closed = False

    async def next(self) -> str | None:
        """The next piece of text; None at the end. Raises :class:`ModelStreamError` if it breaks."""
        if self._buffered:
            return self._buffered.pop(0)
        if self._closed:
            return None
        try:
            return await self._pieces.__anext__()
        except StopAsyncIteration:
            return None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._close()
        finally:
            await self._pieces.aclose()


def _text_of(payload: str, provider: str, model: str) -> tuple[str, bool]:
    """(text, finished) of one ``text_completion`` event, or a chat chunk from a lenient server."""
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise ModelStreamError(f"the server sent an event that is not JSON: {payload[:200]!r}",
                               provider=provider, model=model) from None
    if not isinstance(chunk, dict) or chunk.get("error"):
        err = chunk.get("error") if isinstance(chunk, dict) else chunk
        message = err.get("message") if isinstance(err, dict) else err
        raise ModelStreamError(f"the server reported an error: {message}", provider=provider, model=model)
    choices = chunk.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    text = choice.get("text")
    if text is None:
        text = (choice.get("delta") or choice.get("message") or {}).get("content")
    return str(text or ""), bool(choice.get("finish_reason"))


async def _text_pieces(response: Any, provider: str, model: str) -> AsyncGenerator[str, None]:
    """Text pieces of a streamed ``/completions`` answer (or of a plain JSON answer)."""
    http = response.http_response
    try:
        if http.headers.get("content-type", "").startswith("application/json"):
            text, _ = _text_of((await http.aread()).decode(), provider, model)
            if text:
                yield text
            return
        data: list[str] = []
        async for line in response.iter_lines():
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
                continue
            if line or not data:
                continue
            payload, data = "\n".join(data), []
            if payload.startswith("[DONE]"):
                return
            text, finished = _text_of(payload, provider, model)
            if text:
                yield text
            if finished:
                return
    except ModelError:
        raise
    except Exception as exc:  # transport errors of whichever httpx the SDK uses
        raise ModelStreamError(f"the connection broke ({type(exc).__name__}: {exc})",
                               provider=provider, model=model) from exc


async def _chat_pieces(stream: ChatStream) -> AsyncGenerator[str, None]:
    deltas = cast(AsyncGenerator[StreamDelta, None], stream.__aiter__())
    async with contextlib.aclosing(deltas):
        async for delta in deltas:
            if delta.content:
                yield delta.content


def _refuses_fim(exc: BaseException) -> bool:
    """The server has no (working) ``/completions`` with ``suffix`` for this model."""
    if not isinstance(exc, openai.APIStatusError):
        return False
    if exc.status_code in _REFUSAL_STATUSES:
        return True
    text = f"{exc} {json.dumps(exc.body, default=str)}".lower()
    return exc.status_code in (400, 422, 500) and any(word in text for word in _REFUSAL_WORDS)


def _moves_on(exc: BaseException) -> bool:
    """A failure before the first token that lets the next provider try (else it propagates)."""
    return isinstance(exc, (openai.APIError, ModelError, OSError, ImportError, RuntimeError, TimeoutError))


class CompletionModels:
    """Opens suggestion streams on the chat's providers, remembering who has fill-in-the-middle.

    ``fim="off"`` always uses the chat prompt.
    """

    def __init__(self, chain: ChainSource, *, fim: str = "auto") -> None:
        if fim not in ("auto", "off"):
            raise ValueError("fim must be 'auto' or 'off'")
        self._chain_source = chain
        self.fim = fim
        self._fim_support: dict[tuple[str, str], bool] = {}
        self._clients: dict[tuple[str, str, str | None], openai.AsyncOpenAI] = {}
        self._override_chains: dict[tuple[str, str | None], ProviderChain] = {}
        self._lock = asyncio.Lock()

    async def chain(self) -> ProviderChain:
        source = self._chain_source
        return source if isinstance(source, ProviderChain) else await source()

    def fim_support(self) -> list[dict[str, Any]]:
        """What was learnt: ``[{"provider", "model", "fim"}]`` (for the metrics answer)."""
        return [{"provider": p, "model": m, "fim": ok} for (p, m), ok in sorted(self._fim_support.items())]

    async def open(self, call: ModelCall) -> SuggestionStream:
        """A stream that has produced its first piece (or finished), on the first provider that can."""
        chain, providers = await self._providers(call)
        if self.fim == "auto":
            for p in providers:
                mode = CompletionMode.PREFIX if p.bundled else CompletionMode.FIM
                if mode is CompletionMode.FIM and self._fim_support.get((p.name, p.model)) is False:
                    break  # the first provider known to lack infill answers through chat
                try:
                    return await self._open_text(p, call, mode)
                except Exception as exc:
                    if _refuses_fim(exc):
                        logger.info("provider %s (%s) has no fill-in-the-middle: %s; using chat", p.name,
                                    p.model, exc)
                        self._fim_support[(p.name, p.model)] = False
                        break
                    if not _moves_on(exc):
                        raise
                    logger.warning("completion on %s (%s) failed before its first token: %s", p.name, p.model, exc)
        return await self._open_chat(chain, call)

    async def _providers(self, call: ModelCall) -> tuple[ProviderChain, list[ProviderConfig]]:
        chain = await self.chain()
        if call.provider is None:
            providers = list(chain.providers)
            if call.model:
                providers[0] = replace(providers[0], model=call.model)
                return await self._override_chain(providers[0]), providers[:1]
            return chain, providers
        name = call.provider.strip().lower()
        found = next((p for p in chain.providers if p.name == name), None)
        if found is None:
            found = next((p for p in known_providers() if p.name == name and p.configured), None)
        if found is None and name == "bundled" and await asyncio.to_thread(bundled_model_available):
            found = ProviderConfig("bundled", "", "", bundled=True, read_timeout_s=300.0)
        if found is None:
            names = ", ".join(p.name for p in chain.providers)
            raise InvalidInput(f"provider {call.provider!r} is not configured (configured: {names})")
        if call.model:
            found = replace(found, model=call.model)
        return await self._override_chain(found), [found]

    async def _override_chain(self, p: ProviderConfig) -> ProviderChain:
        """A one-provider chain for a request that names its provider or model (kept for reuse)."""
        key = (p.name, p.model or None)
        async with self._lock:
            chain = self._override_chains.get(key)
            if chain is None:
                if len(self._override_chains) >= _OVERRIDE_CHAINS:
                    oldest = next(iter(self._override_chains))
                    await self._override_chains.pop(oldest).aclose()
                chain = self._override_chains[key] = ProviderChain([p])
            return chain

    async def _client(self, p: ProviderConfig) -> tuple[openai.AsyncOpenAI, str]:
        base_url, model = p.base_url, p.model
        if p.bundled:  # the process-wide bundled server, shared with the chat (restarted if it died)
            local_model = importlib.import_module("polaris_jupyter.agent.local_model")
            server = local_model.get_local_model_server()
            base_url = await server.ensure_started()
            model = model or server.model_name
        key = (p.name, base_url, p.api_key)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = openai.AsyncOpenAI(
                base_url=base_url, api_key=p.api_key or "no-key", max_retries=0,
                timeout=openai.Timeout(p.read_timeout_s, connect=p.connect_timeout_s),
                default_headers=p.headers or None,
            )
        return client, model

    async def _open_text(self, p: ProviderConfig, call: ModelCall, mode: CompletionMode) -> SuggestionStream:
        client, model = await self._client(p)
        extra: dict[str, Any] = {"suffix": call.prompt.suffix} if mode is CompletionMode.FIM else {}
        raw = client.completions.with_streaming_response
        response = await raw.create(model=model, prompt=call.prompt.fim_prompt, max_tokens=call.max_tokens,
                                    stop=call.stop, temperature=0, stream=True, **extra).__aenter__()
        pieces = _text_pieces(response, p.name, model)
        stream = SuggestionStream(p.name, model, mode, pieces, response.close, [])
        try:
            first = await stream.next()  # the fallback boundary: errors until here let others try
        except BaseException:
            await stream.aclose()
            raise
        if first is not None:
            stream._buffered.append(first)
        if mode is CompletionMode.FIM:
            self._fim_support[(p.name, model)] = True
        return stream

    async def _open_chat(self, chain: ProviderChain, call: ModelCall) -> SuggestionStream:
        chat = await chain.open_stream(messages=call.prompt.chat_messages(), temperature=0,
                                       extra_body={"max_tokens": call.max_tokens, "stop": call.stop})
        provider = chat.provider.name
        return SuggestionStream(provider, chat.model, CompletionMode.CHAT, _chat_pieces(chat), chat.aclose, [])

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        chains, self._override_chains = self._override_chains, {}
        for client in clients.values():
            await client.close()
        for chain in chains.values():
            await chain.aclose()
