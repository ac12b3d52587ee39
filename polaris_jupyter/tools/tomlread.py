"""TOML reading on every Python the package supports: ``tomllib`` from 3.11, ``tomli`` before.

One home for the choice, so the code tools (source roots from ``pyproject.toml``) and project
generation (does the generated ``pyproject.toml`` parse?) read TOML the same way.
"""

from __future__ import annotations

import sys
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - Python 3.10 only
    import tomli as _toml

__all__ = ["TOMLDecodeError", "loads"]

TOMLDecodeError = _toml.TOMLDecodeError


def loads(text: str) -> dict[str, Any]:
    """Parse TOML text; raises :class:`TOMLDecodeError` with the line and column of the problem."""
    return _toml.loads(text)
