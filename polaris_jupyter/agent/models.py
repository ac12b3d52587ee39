"""The model part of a runtime: the provider chains, the keys entered in the UI, the model
lists and the price table, shared by chat, generation and completions.

- :meth:`ModelService.chain` is the default chain (``PolarisConfig.provider``/``model``, or what
  ``PUT /config`` / ``%polaris model`` picked); :meth:`ModelService.chain_for` the chain of one
  conversation's provider+model choice. Chains are built on first use and cached.
- Keys and base URLs entered in the UI (:class:`~polaris_jupyter.agent.keys.KeyStore`) join the
  chain as overrides that environment variables beat. When they change (here or in the file by
  another process), every cached chain is retired: the next request builds a new one with the
  new key, no restart. A retired chain is closed only once no turn can still be streaming from
  it (``RETIRED_CHAIN_GRACE_S``, longer than a chat turn may run), so a change never cuts an
  answer in progress.
- :meth:`ModelService.list_models` lists every configured provider's models (``GET /models``,
  concurrent, cached: :mod:`polaris_jupyter.agent.model_list`).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from polaris_jupyter.agent.keys import KeyStore
from polaris_jupyter.agent.model_list import ModelCatalog
from polaris_jupyter.agent.pricing import PriceTable
from polaris_jupyter.errors import InvalidInput

if TYPE_CHECKING:
    from polaris_jupyter.agent.chain import ProviderChain
    from polaris_jupyter.agent.providers import ProviderConfig
    from polaris_jupyter.config import PolarisConfig

__all__ = ["MAX_CACHED_CHAINS", "RETIRED_CHAIN_GRACE_S", "ModelService"]

#: Chains kept for conversations' choices (least recently used ones are retired beyond this).
MAX_CACHED_CHAINS = 16
#: A retired chain is closed after this long (a chat turn runs at most 30 minutes).
RETIRED_CHAIN_GRACE_S = 3600.0
#: The keys file is looked at (one stat, in a thread) at most this often for changes by others.
KEYS_RECHECK_S = 1.0
#: How long the quick probe of a local server (Ollama) may take when listing models.
LOCAL_PROBE_S = 0.3

Choice = tuple[str | None, str | None]


class ModelService:
    """Owns the provider chains, the user's provider/model override, keys, model lists and prices."""

    def __init__(self, config: PolarisConfig, *, keys: KeyStore | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.override: dict[str, str] = {}
        self.keys = keys or KeyStore(config.keys_path, storage=config.key_storage)
        self.catalog = ModelCatalog(ttl_s=config.models_cache_ttl_s, timeout_s=config.models_timeout_s, clock=clock)
        self.prices = PriceTable(config.prices)
        self._clock = clock
        self._chains: OrderedDict[Choice, ProviderChain] = OrderedDict()
        self._retired: list[tuple[float, ProviderChain]] = []
        self._keys_version = -1
        self._keys_checked_at = -1e18
        self._build_lock = asyncio.Lock()

    # -- chains -----------------------------------------------------------------------------------
    async def chain(self) -> ProviderChain:
        """The default provider chain, built on first use (rebuilt after a model or key change)."""
        return await self.chain_for(None, None)

    async def chain_for(self, provider: str | None, model: str | None) -> ProviderChain:
        """The chain for a conversation's choice: ``provider`` pinned (with ``model``, or that
        provider's own default model), or only ``model`` on the default chain's first provider;
        both None is the default chain. A choice that is not configured (any more) raises
        :class:`~polaris_jupyter.agent.errors.NoProviderError` saying how to fix it."""
        await self._sync_keys()
        key: Choice = (provider or None, model or None)
        chain = self._chains.get(key)
        if chain is None:
            async with self._build_lock:  # concurrent first turns share one chain (and its clients)
                chain = self._chains.get(key)
                if chain is None:
                    chain = await self._build(*key)
                    self._chains[key] = chain
                    self._evict()
        self._chains.move_to_end(key)
        return chain

    async def _build(self, provider: str | None, model: str | None) -> ProviderChain:
        from polaris_jupyter.agent.chain import ProviderChain
        from polaris_jupyter.agent.errors import NoProviderError

        cfg = self.config
        asked = (provider, model)
        if provider is None:
            provider = self.override.get("provider") or cfg.provider or None
            if model is None:
                model = self.override.get("model") or cfg.model or None
        elif model is None:
            model = ""  # the pinned provider's own default, not the model picked for another one
        try:
            return await ProviderChain.from_env(
                provider=provider, model=model, overrides=self.keys.overrides(),
                bundled_fallback=cfg.bundled_fallback, degrade_ttl_s=cfg.degrade_ttl_s,
            )
        except NoProviderError as exc:
            if asked == (None, None):
                raise
            choice = " · ".join(part for part in asked if part)
            raise NoProviderError(
                f"This conversation is set to {choice}, which cannot answer now: {exc}. Set its key in the "
                "Polaris settings (the gear button) or choose another model in the chat header."
            ) from None

    def _evict(self) -> None:
        while len(self._chains) > MAX_CACHED_CHAINS:
            _choice, chain = self._chains.popitem(last=False)
            self._retire(chain)

    def _retire(self, chain: ProviderChain) -> None:
        self._retired.append((self._clock(), chain))

    async def _close_expired(self, *, all_of_them: bool = False) -> None:
        now = self._clock()
        keep: list[tuple[float, ProviderChain]] = []
        for retired_at, chain in self._retired:
            if all_of_them or now - retired_at >= RETIRED_CHAIN_GRACE_S:
                await chain.aclose()
            else:
                keep.append((retired_at, chain))
        self._retired = keep

    async def _sync_keys(self, *, force: bool = False) -> None:
        """Notice key changes (ours at once, another process's within ``KEYS_RECHECK_S``)."""
        now = self._clock()
        if force or now - self._keys_checked_at >= KEYS_RECHECK_S:
            self._keys_checked_at = now
            await self.keys.refresh()
        if self.keys.version != self._keys_version:
            if self._keys_version >= 0:
                self._retire_all()
            self._keys_version = self.keys.version
        if self._retired:
            await self._close_expired()

    def _retire_all(self) -> None:
        for chain in self._chains.values():
            self._retire(chain)
        self._chains.clear()

    async def set_model(self, provider: str | None, model: str | None) -> None:
        """Pick the default provider and/or model; refused (nothing changed) when no chain can be built."""
        previous = dict(self.override)
        if provider is not None:
            self.override["provider"] = provider
        if model is not None:
            self.override["model"] = model
        old = self._chains.pop((None, None), None)
        try:
            await self.chain()
        except Exception as exc:
            self.override = previous
            if old is not None:
                self._chains[(None, None)] = old
            raise InvalidInput(str(exc)) from exc
        if old is not None:
            self._retire(old)

    async def check_choice(self, provider: str | None, model: str | None) -> None:
        """Refuse (InvalidInput, with the reason) a conversation choice no chain can answer with."""
        if provider is None and model is None:
            return
        try:
            await self.chain_for(provider, model)
        except Exception as exc:
            raise InvalidInput(str(exc)) from exc

    # -- views ------------------------------------------------------------------------------------
    async def snapshot(self) -> dict[str, Any]:
        """Every known provider, the one answering now, and any override (GET /config)."""
        from polaris_jupyter.agent.providers import known_providers

        active: dict[str, Any] = {"provider": None, "model": None}
        error = None
        try:
            chain = await self.chain()
            first = chain.providers[0]
            active = {"provider": first.name, "model": first.model}
            if chain.last_provider is not None:
                active = {"provider": chain.last_provider.name, "model": chain.last_model}
        except Exception as exc:  # no provider configured is a state to show, not a failure
            error = str(exc)
        providers = [
            {"name": p.name, "baseUrl": p.base_url, "model": p.model, "configured": bool(getattr(p, "configured", True))}
            for p in known_providers(overrides=self.keys.overrides())
        ]
        return {"providers": providers, "active": active, "error": error, "override": dict(self.override)}

    async def list_models(self, *, refresh: bool = False) -> dict[str, Any]:
        """Every configured provider's models (``GET /models``; a failing provider shows its
        error), and the default choice a conversation without its own gets."""
        from polaris_jupyter.agent.providers import known_providers, probe_tcp

        await self._sync_keys(force=refresh)
        providers: list[ProviderConfig] = []
        for p in known_providers(overrides=self.keys.overrides()):
            if p.bundled:
                continue
            if not p.configured and p.name == "local" and await probe_tcp(p.base_url, LOCAL_PROBE_S):
                p.configured = True
            if p.configured:
                providers.append(p)
        answers = await self.catalog.list(providers, refresh=refresh)
        default: dict[str, Any] = {"provider": None, "model": None, "error": None}
        try:
            first = (await self.chain()).providers[0]
            default.update(provider=first.name, model=first.model or None)
        except Exception as exc:
            default["error"] = str(exc)
        return {"providers": [a.to_json() for a in answers], "default": default}

    async def keys_view(self) -> dict[str, Any]:
        """Which provider keys are set and where from (``GET /keys``); never a key."""
        await self._sync_keys(force=True)
        return self.keys.view()

    async def put_key(self, provider: str, **fields: Any) -> dict[str, Any]:
        """Store a provider's key and/or base URL; the next request of every chain uses it."""
        await self.keys.put(provider, **fields)
        await self._sync_keys(force=True)
        return self.keys.view()

    async def delete_key(self, provider: str) -> dict[str, Any]:
        await self.keys.delete(provider)
        await self._sync_keys(force=True)
        return self.keys.view()

    async def stop(self) -> None:
        self._retire_all()
        await self._close_expired(all_of_them=True)
