"""Stored provider keys masked in every log record of this process.

The key store (:mod:`polaris_jupyter.agent.keys`) registers each key it holds here;
:func:`install_log_scrubber` installs a log-record factory that replaces them with
``[masked]`` in the message, its arguments and the formatted traceback, whoever logs: our
code, tornado, httpx, the SDK. A factory rather than a handler filter, so handlers added later
(Jupyter's own) are covered too; it costs nothing while no key is stored.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["install_log_scrubber", "mask_stored", "register_source", "secrets_changed", "stored_secrets"]

#: Objects holding keys, each with a function listing them (a weak reference: tests make many).
_SOURCES: weakref.WeakKeyDictionary[Any, Callable[[Any], Iterable[str]]] = weakref.WeakKeyDictionary()
_SECRETS: tuple[str, ...] = ()
_installed = False


def register_source(owner: Any, keys_of: Callable[[Any], Iterable[str]]) -> None:
    """Mask the keys ``keys_of(owner)`` lists while ``owner`` lives (call :func:`secrets_changed` after a change)."""
    _SOURCES[owner] = keys_of
    secrets_changed()


def secrets_changed() -> None:
    global _SECRETS
    values = {v for owner, keys_of in list(_SOURCES.items()) for v in keys_of(owner) if v}
    _SECRETS = tuple(sorted(values, key=len, reverse=True))


def stored_secrets() -> tuple[str, ...]:
    """Every registered key, longest first."""
    return _SECRETS


def mask_stored(text: str) -> str:
    for value in _SECRETS:
        if value in text:
            text = text.replace(value, "[masked]")
    return text


def install_log_scrubber() -> None:
    """Install the masking log-record factory (once per process)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not _SECRETS:
            return record
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is the logging module's business, not ours
            return record
        masked = mask_stored(text)
        if masked != text:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_stored(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
