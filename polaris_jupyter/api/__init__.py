"""The Polaris API, described once: the route table, the service layer, the OpenAPI document.

- ``routes.ROUTES``: every route (method, path, operation, query, body and answer schemas).
- ``PolarisAPI``: validates a call against its route and serves it; REST handlers and the
  in-kernel backend both call :meth:`PolarisAPI.dispatch`.
- ``openapi_document()``: the OpenAPI 3.1 document derived from the table.
"""

from __future__ import annotations

from polaris_jupyter.api.openapi import openapi_document
from polaris_jupyter.api.routes import API_PREFIX, ROUTES, Param, Route, route_for
from polaris_jupyter.api.schemas import MAX_MESSAGE_CHARS
from polaris_jupyter.api.service import Answer, PolarisAPI

__all__ = [
    "API_PREFIX",
    "MAX_MESSAGE_CHARS",
    "ROUTES",
    "Answer",
    "Param",
    "PolarisAPI",
    "Route",
    "openapi_document",
    "route_for",
]
