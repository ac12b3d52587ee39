"""Base handler: Jupyter auth or the per-server internal key, JSON in and out, clear 4xx errors."""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.identity import User
from jupyter_server.base.call_context import CallContext
from jupyter_server.base.handlers import APIHandler
from tornado import web

from polaris_jupyter.errors import PolarisError, Unavailable

if TYPE_CHECKING:
    from polaris_jupyter.runtime import PolarisRuntime

__all__ = ["ApiError", "BearerWebSocketMixin", "PolarisHandler", "bearer_matches"]

#: Request bodies above this are refused before parsing (payloads are capped at 3 MiB anyway).
MAX_BODY_BYTES = 8 * 1024 * 1024
INTERNAL_USER = User(username="polaris-internal", name="Polaris internal key")


class ApiError(web.HTTPError):
    """An HTTP error whose message goes to the client verbatim (no %-formatting)."""

    def __init__(self, status_code: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(status_code, reason=None)
        self.polaris_message = message
        self.retry_after_s = retry_after_s


def bearer_matches(handler: web.RequestHandler, internal_key: str | None) -> bool:
    """True when the request carries ``Authorization: Bearer <internal key>``."""
    if not internal_key:
        return False
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        return False
    return hmac.compare_digest(value.strip().encode(), internal_key.encode())


class PolarisHandler(APIHandler):
    """Every Polaris route: authenticated, JSON, EngineError → 4xx."""

    _polaris_bearer = False
    auth_resource = "polaris"

    @property
    def runtime(self) -> PolarisRuntime:
        runtime = self.settings.get("polaris_runtime")
        if runtime is None or not runtime.started:
            raise Unavailable("the Polaris engine is starting; try again in a moment", retry_after_s=1)
        return runtime  # type: ignore[no-any-return]

    async def prepare(self) -> None:  # type: ignore[override]
        if bearer_matches(self, self.settings.get("polaris_internal_key")):
            CallContext.set(CallContext.JUPYTER_HANDLER, self)
            self._polaris_bearer = True
            self.current_user = self._jupyter_current_user = INTERNAL_USER
            return
        await super().prepare()
        if self.current_user is None:
            raise ApiError(403, "authentication required: log in to Jupyter or send the internal key")
        action = "read" if self.request.method in ("GET", "HEAD") else "write"
        if not self.authorizer.is_authorized(self, self.current_user, action, self.auth_resource):
            raise ApiError(403, f"user is not allowed to {action} {self.auth_resource}")

    def check_xsrf_cookie(self) -> None:
        if self._polaris_bearer:
            return
        super().check_xsrf_cookie()

    def json_body(self, *, required: bool = True, parse_only: bool = False) -> Any:
        """The request body as JSON, or a 400 that says what is wrong with it.

        ``parse_only``: any JSON value, None for an empty body (the route's schema judges it)."""
        raw = self.request.body or b""
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
        if not raw.strip():
            if required and not parse_only:
                raise ApiError(400, "request body must be a JSON object")
            return None if parse_only else {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
        if not parse_only and not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        text = self.get_query_argument(name, None)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError as exc:
            raise ApiError(400, f"{name} must be an integer, got {text!r}") from exc
        if not low <= value <= high:
            raise ApiError(400, f"{name} must be between {low} and {high}")
        return value

    def send_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            if exc.retry_after_s is not None:
                self.set_header("Retry-After", str(max(1, round(exc.retry_after_s))))
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": exc.polaris_message, "reason": self._reason}))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError) and value.status_code < 500:
            self.log.info("%s %s -> %d: %s", self.request.method, self.request.path, value.status_code, value.polaris_message)
            return
        super().log_exception(typ, value, tb)

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, PolarisError) and not self._finished:
            error = ApiError(e.http_status, str(e), e.retry_after_s)
            self.log.info("%s %s -> %d: %s", self.request.method, self.request.path, error.status_code, e)
            self.send_error(error.status_code, exc_info=(ApiError, error, None))
            return
        super()._handle_request_exception(e)


class BearerWebSocketMixin:
    """For WebSocket handlers: accept ``Authorization: Bearer <internal key>`` (kernels) as well
    as Jupyter auth. Put it first in the bases, before ``WebSocketMixin``."""

    _polaris_bearer = False

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        handler: Any = self
        if bearer_matches(handler, handler.settings.get("polaris_internal_key")):
            CallContext.set(CallContext.JUPYTER_HANDLER, handler)
            self._polaris_bearer = True
            handler.current_user = handler._jupyter_current_user = INTERNAL_USER
            return
        await super().prepare(*args, **kwargs)  # type: ignore[misc]

    def check_origin(self, origin: str | None = None) -> bool:
        return True if self._polaris_bearer else bool(super().check_origin(origin))  # type: ignore[misc]
