"""The model part of a runtime: one provider chain shared by chat, generation and completions.

Built on first use from the environment and ``PolarisConfig`` and rebuilt when the user picks
another provider or model (``PUT /config``), so every part answers with the same model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polaris_jupyter.errors import InvalidInput

if TYPE_CHECKING:
    from polaris_jupyter.agent.chain import ProviderChain
    from polaris_jupyter.config import PolarisConfig

__all__ = ["ModelService"]


class ModelService:
    """Owns the provider chain and the user's provider/model override."""

    def __init__(self, config: PolarisConfig) -> None:
        self.config = config
        self.override: dict[str, str] = {}
        self._chain: ProviderChain | None = None

    async def chain(self) -> ProviderChain:
        """The provider chain, built on first use (rebuilt after a model change)."""
        if self._chain is None:
            from polaris_jupyter.agent.chain import ProviderChain

            cfg = self.config
            self._chain = await ProviderChain.from_env(
                provider=self.override.get("provider") or cfg.provider or None,
                model=self.override.get("model") or cfg.model or None,
                bundled_fallback=cfg.bundled_fallback,
                degrade_ttl_s=cfg.degrade_ttl_s,
            )
        return self._chain

    async def set_model(self, provider: str | None, model: str | None) -> None:
        """Pick a provider and/or model; refused (nothing changed) when no chain can be built."""
        previous = dict(self.override)
        if provider is not None:
            self.override["provider"] = provider
        if model is not None:
            self.override["model"] = model
        old, self._chain = self._chain, None
        try:
            await self.chain()
        except Exception as exc:
            self._chain, self.override = old, previous
            raise InvalidInput(str(exc)) from exc
        if old is not None:
            await old.aclose()

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
            for p in known_providers()
        ]
        return {"providers": providers, "active": active, "error": error, "override": dict(self.override)}

    async def stop(self) -> None:
        if self._chain is not None:
            chain, self._chain = self._chain, None
            await chain.aclose()
