"""The model side of inline completions: fill-in-the-middle where it works, a chat prompt otherwise.

Providers come from the chain the chat would use for the same provider+model choice
(``ModelService.chain_for``), in its order. For each provider, ``/completions`` with ``prompt`` + ``suffix`` is tried unless that
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
from polaris_jupyter.agent.errors import ModelError, ModelStreamError, NoProviderError
from polaris_jupyter.agent.providers import ProviderConfig
from polaris_jupyter.errors import InvalidInput

__all__ = ["ChainSource", "CompletionMode", "CompletionModels", "ModelCall", "SuggestionStream"]

logger = logging.getLogger("polaris_jupyter.agent.completions")

#: Where providers come from: ``ModelService.chain_for`` (provider, model -> the chain the chat
#: would use for that choice, keys and overrides included), or one fixed chain (tests, benches).
ChainSource = ProviderChain | Callable[[str | None, str | None], Awaitable[ProviderChain]]
_REFUSAL_STATUSES = frozenset({404, 405, 501})
_REFUSAL_WORDS = ("suffix", "insert", "infill", "fim", "not supported", "chat model", "completions endpoint")
_FIXED_OVERRIDES = 4  # model-override chains kept for a fixed chain


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
        done = False  # after [DONE] the body is still read to its end: the connection then stays alive
        async for line in response.iter_lines():
            if done:
                continue
            if line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
                continue
            if line or not data:
                continue
            payload, data = "\n".join(data), []
            if payload.startswith("[DONE]"):
                done = True
                continue
            text, _finished = _text_of(payload, provider, model)
            if text:
                yield text
        if data and not done and not data[0].startswith("[DONE]"):  # a last event without its blank line
            text, _finished = _text_of("\n".join(data), provider, model)
            if text:
                yield text
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
        self._override_chains: dict[tuple[str, str], ProviderChain] = {}
        self._lock = asyncio.Lock()

    async def chain(self, provider: str | None = None, model: str | None = None) -> ProviderChain:
        """The chain for a provider+model choice (None, None: the default one)."""
        source = self._chain_source
        if not isinstance(source, ProviderChain):
            try:
                return await source(provider, model)
            except NoProviderError as exc:
                raise InvalidInput(str(exc)) from None
        if provider is None and model is None:
            return source
        return await self._fixed_override(source, provider, model)

    def fim_support(self) -> list[dict[str, Any]]:
        """What was learnt: ``[{"provider", "model", "fim"}]`` (for the metrics answer)."""
        return [{"provider": p, "model": m, "fim": ok} for (p, m), ok in sorted(self._fim_support.items())]

    async def open(self, call: ModelCall) -> SuggestionStream:
        """A stream that has produced its first piece (or finished), on the first provider that can."""
        chain = await self.chain(call.provider, call.model)
        if self.fim == "auto":
            for p in chain.providers:
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

    async def _fixed_override(self, chain: ProviderChain, provider: str | None, model: str | None) -> ProviderChain:
        """With a fixed chain: one of its providers (by name), optionally with another model."""
        name = (provider or chain.providers[0].name).strip().lower()
        found = next((p for p in chain.providers if p.name == name), None)
        if found is None:
            names = ", ".join(p.name for p in chain.providers)
            raise InvalidInput(f"provider {provider!r} is not configured (configured: {names})")
        found = replace(found, model=model) if model else found
        key = (found.name, found.model)
        async with self._lock:
            if key not in self._override_chains:
                if len(self._override_chains) >= _FIXED_OVERRIDES:
                    await self._override_chains.pop(next(iter(self._override_chains))).aclose()
                self._override_chains[key] = ProviderChain([found])
            return self._override_chains[key]

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
