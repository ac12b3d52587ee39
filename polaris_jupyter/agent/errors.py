"""Errors of the model side of the agent, each with a message a user can act on.

Hierarchy (``str(exc)`` is the text the chat bubble shows: which provider, what the server
said, what to do; it never holds an API key)::

    ModelError              .retryable, .retry_after_s, .provider, .model, .status
    ├── NoProviderError     nothing is configured (or the pinned provider is not): never retryable
    ├── ProviderError       one provider failed before its first token (HTTP status, refused
    │                       connection, a bundled model that would not start)
    ├── AllProvidersFailed  every provider of the chain failed; retryable when one of them is
    └── ModelStreamError    the stream broke (after its first token: no fallback, text was shown)

Retry rules (the job engine reads ``retryable`` and ``retry_after_s``, see
:func:`polaris_jupyter.jobs.is_retryable`): 401/403/404 and other 4xx cannot succeed on a second
try and fail the run at once; connection errors, timeouts, 408/409/429 and 5xx are retried with
the task's policy, never sooner than a ``Retry-After`` (or ``retry-after-ms``) the server sent.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import openai

from polaris_jupyter.tools.terminal import mask, secret_values

if TYPE_CHECKING:
    from polaris_jupyter.agent.providers import ProviderConfig

__all__ = [
    "MAX_RETRY_AFTER_S",
    "AllProvidersFailed",
    "ModelError",
    "ModelStreamError",
    "NoProviderError",
    "ProviderError",
    "provider_error",
    "refuses_tools",
    "retry_after_s",
]

#: A ``Retry-After`` longer than this is clamped: a bad header must not park a run for days.
MAX_RETRY_AFTER_S = 3600.0
_RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
_MESSAGE_CHARS = 300


class ModelError(Exception):
    """Base class: something went wrong talking to a model (not a tool error).

    ``retryable`` says whether another attempt can succeed; ``retry_after_s`` is the least wait
    the server asked for (None: the task's retry policy decides alone).
    """

    retryable: bool = True

    def __init__(self, message: str, *, provider: str | None = None, model: str | None = None,
                 status: int | None = None, retryable: bool | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status = status
        if retryable is not None:
            self.retryable = retryable
        self.retry_after_s = retry_after_s

    @property
    def message(self) -> str:
        """The user-facing text (same as ``str(exc)``)."""
        return str(self)


class NoProviderError(ModelError):
    """No model provider is configured (or the pinned one is missing its settings)."""

    retryable = False


class ProviderError(ModelError):
    """One provider failed before its first token; built by :func:`provider_error`."""


class ModelStreamError(ModelError):
    """The model stream broke (after the first token there is no fallback: text was shown)."""


class AllProvidersFailed(ModelError):
    """Every provider of the chain failed before sending a first token.

    ``errors`` holds one :class:`ProviderError` per provider tried, in chain order. The run is
    retried when any of them is retryable, after the shortest ``Retry-After`` among those (a
    retryable failure without one lets the policy decide).
    """

    def __init__(self, errors: list[ProviderError]) -> None:
        if len(errors) == 1:
            text = str(errors[0])
        else:
            text = "No model provider could answer: " + "; ".join(f"[{e.provider}] {e}" for e in errors)
        retryable = [e for e in errors if e.retryable]
        waits = [e.retry_after_s for e in retryable]
        after = min(w for w in waits if w is not None) if waits and None not in waits else None
        first = errors[0] if errors else None
        super().__init__(text or "No model provider could answer",
                         provider=first.provider if first else None, model=first.model if first else None,
                         status=first.status if first else None, retryable=bool(retryable),
                         retry_after_s=after)
        self.errors = errors


# -- building a ProviderError from whatever the SDK raised ----------------------------------------

_KEY_ENV = {"cerebras": "CEREBRAS_API_KEY", "openai": "OPENAI_API_KEY", "openrouter": "OPENROUTER_API_KEY",
            "local": "POLARIS_LOCAL_API_KEY"}
_URL_ENV = {"cerebras": "CEREBRAS_BASE_URL", "openai": "OPENAI_BASE_URL", "openrouter": "OPENROUTER_BASE_URL",
            "local": "POLARIS_LOCAL_BASE_URL"}
_MODEL_ENV = {"cerebras": "CEREBRAS_MODEL", "openai": "OPENAI_MODEL", "openrouter": "OPENROUTER_MODEL",
              "local": "POLARIS_LOCAL_MODEL"}
_TOKEN_LIKE = re.compile(r"\b(?:sk|rk|pk|csk|key)-[A-Za-z0-9_\-]{16,}")


def provider_error(exc: BaseException, provider: ProviderConfig, model: str) -> ProviderError:
    """What ``exc`` (an ``openai`` error, a broken stream, a bundled model that would not start)
    means for the user of ``provider``: the status, the server's own words and the fix."""
    if isinstance(exc, ProviderError):
        return exc
    name = provider.name
    where = _where(provider)
    key_env = _KEY_ENV.get(name, "the API key")
    status: int | None = None
    retryable = True
    after: float | None = None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        said = _server_message(exc)
        detail = f"{status} {said}".strip()
        after = retry_after_s(exc.response.headers) if status in _RETRYABLE_STATUSES or status >= 500 else None
        retryable = status in _RETRYABLE_STATUSES or status >= 500
        if status == 401:
            text = (f"{key_env} was rejected by {where} ({detail}): set a valid key (env or settings)"
                    if provider.api_key else
                    f"{where} wants an API key ({detail}): set {key_env} (env or settings)")
        elif status == 403:
            text = (f"{where} refused access with the key in {key_env} ({detail}): check that the key may "
                    f"use model {model!r}, or set another model")
        elif status == 404:
            text = (f"{where} does not know model {model!r} or this route ({detail}): set a model it has "
                    f"({_MODEL_ENV.get(name, 'POLARIS_MODEL')} or POLARIS_MODEL) and check the base URL "
                    f"({_URL_ENV.get(name, 'base_url')}, usually ending in /v1)")
        elif status == 429:
            wait = f"retrying in {after:g} s" if after is not None else "retrying with backoff"
            text = f"{where} is rate limiting requests ({detail}): {wait}, or configure another provider"
        elif status >= 500:
            text = (f"{where} failed with {detail}: the server or a proxy in front of it is in trouble; "
                    "retrying with backoff")
        elif status in _RETRYABLE_STATUSES:
            text = f"{where} answered {detail}: retrying"
        else:
            text = f"{where} refused the request ({detail}): the request cannot succeed as sent"
    elif isinstance(exc, openai.APITimeoutError):
        text = (f"{where} did not answer within {provider.read_timeout_s:g} s: the server is busy or "
                "unreachable; retrying")
    elif isinstance(exc, openai.APIConnectionError):
        text = f"could not connect to {_origin(provider.base_url)}: {_connect_hint(provider)}"
    elif isinstance(exc, ModelStreamError):
        text = f"{where} ({model}): {exc}"
    elif provider.bundled:
        retryable = not isinstance(exc, ImportError)
        text = f"the bundled local model could not start: {exc}"
        if isinstance(exc, ImportError):
            text += " (install it with pip install 'polaris-jupyter[local]')"
    else:
        text = f"{where} ({model}) failed: {type(exc).__name__}: {exc}"
    secrets = [provider.api_key] if provider.api_key and len(provider.api_key) >= 4 else []
    return ProviderError(_redact(text, secrets), provider=name, model=model, status=status,
                         retryable=retryable, retry_after_s=after)


def retry_after_s(headers: Any) -> float | None:
    """The wait a server asked for: ``retry-after-ms`` (OpenAI), else ``Retry-After`` in seconds
    or as an HTTP date; clamped to [0, :data:`MAX_RETRY_AFTER_S`]; None when absent or unreadable."""
    if headers is None:
        return None
    wait = _number(headers.get("retry-after-ms"))
    wait = wait / 1000 if wait is not None else _number(headers.get("retry-after"))
    if wait is None:
        raw = str(headers.get("retry-after") or "").strip()
        try:
            wait = email.utils.parsedate_to_datetime(raw).timestamp() - time.time() if raw else None
        except (TypeError, ValueError):
            wait = None
    if wait is None:
        return None
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


# Phrases with which servers say they cannot take tools or stream them (llama.cpp, Ollama, vLLM,
# llama-cpp-python, LM Studio). Deliberately narrow: "stream" or "tool" alone proves nothing.
_TOOLS_REFUSED = re.compile(
    r"cannot use tools with stream"
    r"|tools? param(?:eter)? requires"
    r"|does(?: not|n't) support (?:tools|tool[ _]?calls?|tool[ _]choice|function[ _]calling|functions"
    r"|streaming)"
    r"|(?:tools|tool[ _]?calls?|tool[ _]choice|function[ _]calling|functions|streaming)"
    r"(?: with streaming| in streaming mode| when streaming)? (?:is|are) not (?:yet )?supported"
    r"|unsupported (?:param(?:eter)?:? *)?['\"`]?(?:tools|tool_choice|functions)\b"
    r"|\"auto\" tool choice requires"
    r"|streaming (?:is )?not supported (?:with|for) (?:tools|tool calls|function calling)",
    re.IGNORECASE,
)


def refuses_tools(exc: BaseException) -> bool:
    """True only for a 4xx whose text says tools (or streaming them) are unsupported. Never a
    5xx, never auth/rate/not-found, never a text that mentions an upstream (a proxy's trouble)."""
    if not isinstance(exc, openai.APIStatusError):
        return False
    if not 400 <= exc.status_code < 500 or exc.status_code in (401, 403, 404, 408, 409, 429):
        return False
    text = f"{_server_message(exc)} {exc.message}"
    return "upstream" not in text.lower() and bool(_TOOLS_REFUSED.search(text))


def _server_message(exc: openai.APIStatusError) -> str:
    """The server's own words: the JSON error's message, else its text body (a proxy's page)."""
    body: Any = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        text = inner.get("message") if isinstance(inner, dict) else inner
        if not text:
            text = body.get("message") or body.get("detail") or json.dumps(body, default=str)
    elif body is not None:
        text = body
    else:
        text = ""
    text = " ".join(str(text).split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"


def _where(provider: ProviderConfig) -> str:
    if provider.bundled:
        return "the bundled local model"
    parts = urlsplit(provider.base_url)
    return f"{parts.netloc}{parts.path.rstrip('/')}" or provider.name


def _origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else base_url


def _connect_hint(provider: ProviderConfig) -> str:
    from polaris_jupyter.agent import providers  # imports this module: read at call time

    if provider.bundled:
        return "the bundled model server is not answering; it is restarted on the next message"
    if urlsplit(provider.base_url).port == 11434 or provider.base_url == providers.DEFAULT_LOCAL_BASE_URL:
        return "is Ollama running? (ollama serve)"
    if provider.name == "local":
        return "is the local model server running? (POLARIS_LOCAL_BASE_URL)"
    return f"check the network and the base URL ({_URL_ENV.get(provider.name, 'base_url')})"


def _redact(text: str, secrets: list[str]) -> str:
    """No key in a message: the provider's own, any secret-looking env value, any sk-... token."""
    return _TOKEN_LIKE.sub("[masked]", mask(text, sorted({*secrets, *secret_values()}, key=len, reverse=True)))
