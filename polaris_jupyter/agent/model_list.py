"""Which models each configured provider offers (its OpenAI-compatible ``GET /models``).

The model picker asks every configured provider at once, each with a short time limit, and
keeps each answer for a while (``ttl_s``): opening the picker again costs no request. A
provider that fails is listed with its error (which provider, what it said, what to do, never a
key) and no models; the others are listed as usual. The cache is keyed by provider, base URL
and a fingerprint of the key, so a new key or URL asks again at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from polaris_jupyter.agent.errors import provider_error
from polaris_jupyter.agent.providers import ProviderConfig

__all__ = ["DEFAULT_MODELS_TIMEOUT_S", "DEFAULT_MODELS_TTL_S", "FAILURE_TTL_S", "MAX_MODELS", "ModelCatalog", "ProviderModels"]

DEFAULT_MODELS_TTL_S = 300.0
DEFAULT_MODELS_TIMEOUT_S = 5.0
#: A failed answer is kept this long at most (a provider that was down is asked again soon).
FAILURE_TTL_S = 30.0
#: A provider listing more models than this (OpenRouter lists hundreds) is cut, with ``truncated``.
MAX_MODELS = 1000


@dataclass
class ProviderModels:
    """One provider's answer: its models, or the error that kept it from answering."""

    name: str
    base_url: str
    default_model: str
    models: list[str] = field(default_factory=list)
    error: str | None = None
    fetched_at: float | None = None  # epoch seconds
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "baseUrl": self.base_url, "defaultModel": self.default_model or None,
                "models": [{"id": m} for m in self.models], "error": self.error, "fetchedAt": self.fetched_at,
                "truncated": self.truncated}


def _fingerprint(p: ProviderConfig) -> tuple[str, str, str]:
    key = hashlib.sha256((p.api_key or "").encode()).hexdigest()[:16]
    return p.name, p.base_url, key


def _list_error(exc: BaseException, p: ProviderConfig, timeout_s: float) -> str:
    url = f"{p.base_url.rstrip('/')}/models"
    if isinstance(exc, openai.APIStatusError) and exc.status_code in (404, 405):
        return f"{p.name} has no model list (GET {url} answered {exc.status_code}); its default model is still used"
    if isinstance(exc, (asyncio.TimeoutError, openai.APITimeoutError)):
        return f"{p.name} did not list its models within {timeout_s:g} s (GET {url}); try again later"
    return str(provider_error(exc, p, p.model))  # names the provider and the fix; the key is masked


class ModelCatalog:
    """Cached, concurrent ``GET /models`` over providers. ``clock`` (monotonic seconds) is
    injectable so tests need not wait for the cache to expire."""

    def __init__(self, *, ttl_s: float = DEFAULT_MODELS_TTL_S, timeout_s: float = DEFAULT_MODELS_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._cache: dict[tuple[str, str, str], tuple[float, ProviderModels]] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    def forget(self) -> None:
        """Drop every cached answer (the next listing asks every provider again)."""
        self._cache.clear()

    async def list(self, providers: Sequence[ProviderConfig], *, refresh: bool = False) -> list[ProviderModels]:
        """The models of each provider, in the order given (concurrently; failures included)."""
        return list(await asyncio.gather(*(self._one(p, refresh) for p in providers)))

    async def _one(self, p: ProviderConfig, refresh: bool) -> ProviderModels:
        key = _fingerprint(p)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # two panels opening at once share one request
            cached = self._cache.get(key)
            if cached is not None and not refresh:
                ttl_s = self.ttl_s if cached[1].error is None else min(self.ttl_s, FAILURE_TTL_S)
                if self._clock() - cached[0] < ttl_s:
                    return cached[1]
            answer = await self._fetch(p)
            self._cache[key] = (self._clock(), answer)
            return answer

    async def _fetch(self, p: ProviderConfig) -> ProviderModels:
        out = ProviderModels(p.name, p.base_url, p.model)
        client = openai.AsyncOpenAI(base_url=p.base_url, api_key=p.api_key or "no-key", max_retries=0,
                                    timeout=openai.Timeout(self.timeout_s, connect=min(self.timeout_s, p.connect_timeout_s)),
                                    default_headers=p.headers or None)
        try:
            async with asyncio.timeout(self.timeout_s):
                page = await client.models.list()
            ids = sorted({str(m.id) for m in page.data if getattr(m, "id", None)})
        except Exception as exc:
            out.error = _list_error(exc, p, self.timeout_s)
            return out
        finally:
            await client.close()
        out.models, out.truncated = ids[:MAX_MODELS], len(ids) > MAX_MODELS
        out.fetched_at = round(time.time(), 3)
        return out
