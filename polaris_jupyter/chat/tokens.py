"""Token estimates for budgets (history, attached context): one rule, used everywhere."""

from __future__ import annotations

__all__ = ["approx_tokens"]


def approx_tokens(text: str) -> int:
    """About four characters a token: good enough to keep a request under a budget."""
    return len(text) // 4 + 1
