"""The OpenAPI 3.1 document, generated from the route table (served at ``/polaris/api/openapi.json``).

``python -m polaris_jupyter.api labextension/openapi.json`` writes it for the lab
extension's build, which generates the TypeScript types from it with ``openapi-typescript``; a
test checks the committed file equals this output.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

from polaris_jupyter._version import __version__
from polaris_jupyter.api.routes import ROUTES, Route
from polaris_jupyter.api.schemas import COMPONENTS, ref

__all__ = ["openapi_document"]

_ERROR_TEXT = {400: "Bad input", 403: "Not authenticated", 404: "Unknown id", 409: "Conflict",
               413: "Body too large", 503: "The engine is starting (see Retry-After)"}


def _json(schema: Any) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.op, "summary": route.summary, "tags": [route.tag]}
    if route.description:
        op["description"] = route.description
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in route.path_params
    ]
    params += [
        {"name": p.name, "in": "query", "required": False, "schema": p.schema, **({"description": p.description} if p.description else {})}
        for p in route.query
    ]
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": route.body_required, **_json(route.body)}
    if route.websocket:
        responses: dict[str, Any] = {"101": {"description": "Switching protocols: a WebSocket of JSON frames"}}
    elif route.stream:
        responses = {str(route.status): {"description": "NDJSON: one JSON object a line, flushed as it is made",
                                         "content": {"application/x-ndjson": {"schema": route.response or {}}}}}
    elif route.status == 204:
        responses = {"204": {"description": "Done"}}
    else:
        responses = {str(route.status): {"description": "OK", **_json(route.response or {})}}
    for code in (403, 503, *route.errors):
        responses[str(code)] = {"description": _ERROR_TEXT[code], **_json(ref("Error"))}
    op["responses"] = responses
    return op


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "polaris-jupyter",
            "version": __version__,
            "description": "Durable background jobs, chat and project generation for Jupyter. "
            "Events stream over the WebSocket /polaris/api/v1/events?run=&conversation=&since=.",
        },
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(COMPONENTS),
            "securitySchemes": {
                "jupyterToken": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "internalKey": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"jupyterToken": []}, {"internalKey": []}],
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(openapi_document(), indent=1, sort_keys=True) + "\n"
    if args:
        with open(args[0], "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
