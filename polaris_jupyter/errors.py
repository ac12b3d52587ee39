"""The one error family of Polaris: every error a caller can cause, with its HTTP status.

The hierarchy, and the status each maps to wherever it surfaces (REST answer, in-kernel call,
magic, widget)::

    PolarisError              400  base: a request Polaris refused or could not serve
    ├── InvalidInput          400  bad JSON, a wrong type, a path outside the workspace, …
    ├── NotFound              404  an unknown id (TaskNotFound, RunNotFound live in ``jobs``)
    ├── Conflict              409  busy conversation, a revert that would discard later work, …
    ├── PayloadTooLarge       413  a body or payload over its limit
    └── Unavailable           503  the engine is starting, a part is not running

The engine, the chat and generation services and the API layer raise these; the REST layer maps
``http_status`` to the answer in one place (``polaris_jupyter.server``), and the remote kernel
backend turns an error answer back into the same class with :func:`error_for_status`, so a
caller catches the same exception in either mode.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PolarisError",
    "Unavailable",
    "error_for_status",
]


class PolarisError(Exception):
    """A request Polaris refused or could not serve; ``status`` is its HTTP status.

    ``status`` defaults to the class's ``http_status``; pass it to keep a status that has no
    class of its own (a 502 from a proxy, say) when re-raising an answer."""

    http_status = 400

    def __init__(self, message: str = "", status: int | None = None, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.http_status = status
        #: For 503 answers: when the client should try again (the ``Retry-After`` header).
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return self.http_status

    def __str__(self) -> str:
        return self.message


class InvalidInput(PolarisError):
    http_status = 400


class NotFound(PolarisError):
    http_status = 404


class Conflict(PolarisError):
    http_status = 409


class PayloadTooLarge(PolarisError):
    http_status = 413


class Unavailable(PolarisError):
    http_status = 503


_BY_STATUS: dict[int, type[PolarisError]] = {400: InvalidInput, 404: NotFound, 409: Conflict, 413: PayloadTooLarge, 503: Unavailable}


def error_for_status(status: int, message: str, *, retry_after_s: float | None = None) -> PolarisError:
    """The exception a caller in this process would have got for an answer with ``status``."""
    cls = _BY_STATUS.get(status, PolarisError)
    return cls(message, None if cls is not PolarisError else status, retry_after_s=retry_after_s)
