"""Estimated cost of model calls, from a price table in USD per million tokens.

The table maps ``"provider/model"`` (or ``"provider/*"`` for every model of a provider) to
``{"inputPerMTok": .., "outputPerMTok": ..}``. ``PolarisConfig.prices`` is merged over a few
built-in estimates (:data:`BUILTIN_PRICES`, list prices when they were written down; providers
change them, so every figure is an estimate). A model found in neither has an unknown cost:
``None``, never 0, so a sum never pretends to know what it does not.

Example::

    table = PriceTable({"openai/my-model": {"inputPerMTok": 1, "outputPerMTok": 2}})
    table.cost_usd("openai", "my-model", prompt_tokens=1000, completion_tokens=500)  # 0.002
    table.cost_usd("openai", "unknown-model", 1000, 500)                             # None
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BUILTIN_PRICES", "Price", "PriceTable", "check_price_table"]

_TOKENS_PER_M = 1_000_000
_FIELDS = ("inputPerMTok", "outputPerMTok")


@dataclass(frozen=True)
class Price:
    """What a million prompt (input) and completion (output) tokens cost, in USD."""

    input_per_mtok: float
    output_per_mtok: float
    #: "built-in estimate" or "config" (PolarisConfig.prices): shown to the user next to a cost.
    source: str = "config"

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        total = (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / _TOKENS_PER_M
        return round(total, 8)

    def to_json(self) -> dict[str, Any]:
        return {"inputPerMTok": self.input_per_mtok, "outputPerMTok": self.output_per_mtok, "source": self.source}


def _builtin(input_per_mtok: float, output_per_mtok: float) -> Price:
    return Price(input_per_mtok, output_per_mtok, "built-in estimate")


#: Estimates (USD per million tokens, providers' list prices of 2025). Models on this machine
#: (the bundled model, a local server) cost nothing per token.
BUILTIN_PRICES: dict[str, Price] = {
    "openai/gpt-4o-mini": _builtin(0.15, 0.60),
    "openai/gpt-4o": _builtin(2.50, 10.00),
    "openai/gpt-4.1": _builtin(2.00, 8.00),
    "openai/gpt-4.1-mini": _builtin(0.40, 1.60),
    "openai/gpt-4.1-nano": _builtin(0.10, 0.40),
    "openrouter/openai/gpt-4o-mini": _builtin(0.15, 0.60),
    "openrouter/openai/gpt-4o": _builtin(2.50, 10.00),
    "cerebras/gpt-oss-120b": _builtin(0.25, 0.69),
    "cerebras/llama3.1-8b": _builtin(0.10, 0.10),
    "local/*": _builtin(0.0, 0.0),
    "bundled/*": _builtin(0.0, 0.0),
}


def check_price_table(value: Any) -> dict[str, dict[str, float]]:
    """``value`` as a clean price table, or ValueError saying which entry is wrong and why."""
    if not isinstance(value, Mapping):
        raise ValueError('prices must be an object such as {"openai/gpt-4o-mini": {"inputPerMTok": 0.15, "outputPerMTok": 0.6}}')
    clean: dict[str, dict[str, float]] = {}
    for key, entry in value.items():
        if not isinstance(key, str) or "/" not in key or key.startswith("/") or key.endswith("/"):
            raise ValueError(f"prices: {key!r} must be 'provider/model' or 'provider/*'")
        if not isinstance(entry, Mapping):
            raise ValueError(f"prices[{key!r}] must be an object with inputPerMTok and outputPerMTok")
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            raise ValueError(f"prices[{key!r}]: unknown field(s) {', '.join(unknown)}; use inputPerMTok and outputPerMTok")
        row: dict[str, float] = {}
        for name in _FIELDS:
            number = entry.get(name)
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) or number < 0:
                raise ValueError(f"prices[{key!r}].{name} must be a number of USD per million tokens, 0 or more (got {number!r})")
            row[name] = float(number)
        clean[key] = row
    return clean


class PriceTable:
    """Built-in estimates overlaid by configured prices; looks up ``provider/model``, then ``provider/*``."""

    def __init__(self, configured: Mapping[str, Any] | None = None, *, builtin: Mapping[str, Price] | None = None) -> None:
        self._prices: dict[str, Price] = dict(BUILTIN_PRICES if builtin is None else builtin)
        for key, row in check_price_table(configured or {}).items():
            self._prices[key] = Price(row["inputPerMTok"], row["outputPerMTok"], "config")

    def price(self, provider: str | None, model: str | None) -> Price | None:
        if not provider:
            return None
        exact = self._prices.get(f"{provider}/{model}") if model else None
        return exact if exact is not None else self._prices.get(f"{provider}/*")

    def cost_usd(self, provider: str | None, model: str | None, prompt_tokens: int | None,
                 completion_tokens: int | None) -> float | None:
        """The estimated cost, or None when the price or a token count is unknown."""
        price = self.price(provider, model)
        if price is None or prompt_tokens is None or completion_tokens is None:
            return None
        return price.cost_usd(prompt_tokens, completion_tokens)

    def with_cost(self, usage: Mapping[str, Any] | None, provider: str | None, model: str | None) -> dict[str, Any] | None:
        """``usage`` (``{promptTokens, completionTokens, totalTokens}``) plus ``costUsd`` (None when
        unknown); None stays None (the server reported no usage)."""
        if usage is None:
            return None
        prompt, completion = usage.get("promptTokens"), usage.get("completionTokens")
        cost = self.cost_usd(provider, model, prompt if isinstance(prompt, int) else None,
                             completion if isinstance(completion, int) else None)
        return {**usage, "costUsd": cost}

    def to_json(self) -> dict[str, Any]:
        return {key: price.to_json() for key, price in sorted(self._prices.items())}
