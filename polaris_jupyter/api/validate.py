"""Request validation from the route table's schemas, with messages a person can act on.

jsonschema finds what is wrong; this module says it in the words of the API
("options.tags[0] must be a string", "limit must be an integer between 1 and 500").
Validation is the same for REST requests and in-kernel calls: both go through
:meth:`PolarisAPI.dispatch`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from polaris_jupyter.api.routes import Route
from polaris_jupyter.api.schemas import COMPONENTS
from polaris_jupyter.errors import InvalidInput

__all__ = ["check_body", "check_query", "describe"]

Schema = dict[str, Any]
_ROOT: Schema = {"components": {"schemas": COMPONENTS}}


def _resolve(schema: Schema) -> Schema:
    while "$ref" in schema:
        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def describe(schema: Schema) -> str:
    """What a value of ``schema`` looks like, in words ("a non-empty string")."""
    schema = _resolve(schema)
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kind = schema.get("type")
    kinds = [k for k in kind if k != "null"] if isinstance(kind, list) else [kind]
    if len(kinds) > 1:
        return " or ".join(describe({**schema, "type": k}) for k in kinds)
    kind = kinds[0] if kinds else None
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        text = "a non-empty string" if low >= 1 else "a string"
        return f"{text} of at most {high:,} characters" if high else text
    if kind == "boolean":
        return "true or false"
    if kind in ("integer", "number"):
        noun = "an integer" if kind == "integer" else "a number"
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"{noun} between {low} and {high}"
        if low is not None:
            return f"{noun} ≥ {low}"
        return noun
    if kind == "array":
        return "a non-empty list" if schema.get("minItems", 0) >= 1 else "a list"
    if kind == "object":
        return "an object"
    return "a JSON value"


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: ValidationError, what: str) -> str:
    where = _where(error.absolute_path)
    subject = where or what
    if error.validator == "required":
        name = str(error.message).split("'")[1]
        props = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        full = f"{where}.{name}" if where else name
        return f"{full} must be {describe(props.get(name, {}))}; it is missing"
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known)) if isinstance(error.instance, dict) else []
        noun = "option" if where.endswith("options") else "field"
        return f"unknown {noun} {', '.join(repr(e) for e in extra)} in {subject}; known: {', '.join(known)}"
    if error.validator == "maxItems":
        return f"{subject} holds at most {error.validator_value} items, got {len(error.instance)}"
    if error.validator == "maxLength":
        return f"{subject} is {len(error.instance):,} characters; the limit is {error.validator_value:,}"
    if error.validator == "minProperties":
        names = ", ".join(sorted(error.schema.get("properties", {})))
        return f"{subject} must name at least one of: {names}"
    value = error.instance
    if isinstance(value, list):
        shown = f"a list of {len(value)} items"
    elif isinstance(value, dict):
        shown = "an object"
    else:
        shown = json.dumps(value)[:80]
    return f"{subject} must be {describe(error.schema)}, got {shown}"


@cache
def _validator(schema_json: str) -> Draft202012Validator:
    schema = {**json.loads(schema_json), **_ROOT}
    return Draft202012Validator(schema)


def _check(value: Any, schema: Schema, what: str) -> None:
    validator = _validator(json.dumps(schema, sort_keys=True))
    error = best_match(validator.iter_errors(value), key=lambda e: (-len(e.absolute_path), e.validator != "required"))
    if error is not None:
        raise InvalidInput(_message(error, what))


def check_body(route: Route, body: Any) -> Any:
    """The validated body, ``{}`` for an optional body left out; raises :class:`InvalidInput`."""
    if route.body is None:
        return None
    if body is None:
        if route.body_required:
            raise InvalidInput("request body must be a JSON object")
        return {}
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    _check(body, route.body, "request body")
    return body


def _coerce(text: str, schema: Schema, name: str) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise InvalidInput(f"{name} must be {describe(schema)}, got {text!r}") from None
    if kind == "boolean":
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise InvalidInput(f"{name} must be true or false, got {text!r}")
    return text


def check_query(route: Route, query: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the API method from the query (strings from a URL, or Python values
    from an in-kernel call): coerced, checked, defaults filled; empty values count as absent."""
    out: dict[str, Any] = {}
    for param in route.query:
        value = query.get(param.name)
        if value is None or value == "":
            if "default" in param.schema:
                out[param.arg] = param.schema["default"]
            continue
        if isinstance(value, str):
            value = _coerce(value, param.schema, param.name)
        _check(value, param.schema, param.name)
        out[param.arg] = value
    return out
