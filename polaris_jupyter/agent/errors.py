"""Errors of the model side of the agent, each with a message a user can act on."""

from __future__ import annotations

__all__ = ["AllProvidersFailed", "ModelError", "ModelStreamError", "NoProviderError"]


class ModelError(Exception):
    """Base class: something went wrong talking to a model (not a tool error)."""

    def __init__(self, message: str, *, provider: str | None = None, model: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model


class NoProviderError(ModelError):
    """No model provider is configured (or the pinned one is missing its settings)."""


class AllProvidersFailed(ModelError):
    """Every provider of the chain failed before sending a first token.

    ``errors`` holds ``(provider name, model, exception)`` per attempt, in chain order.
    """

    def __init__(self, errors: list[tuple[str, str, BaseException]]) -> None:
        lines = "; ".join(f"{name} ({model}): {_short(exc)}" for name, model, exc in errors)
        last = errors[-1] if errors else ("", "", None)
        super().__init__(f"No model provider could answer: {lines}", provider=last[0], model=last[1])
        self.errors = errors


class ModelStreamError(ModelError):
    """The model stream broke after the first token (no fallback at that point: text was shown)."""


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
