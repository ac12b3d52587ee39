"""The few builders every wire schema is written with (JSON Schema 2020-12, as OpenAPI 3.1 uses it).

Apart from the schemas themselves so that each family of components (``schemas.py``,
``schemas_steering.py``, ``schemas_notebook.py``) is written with the same words.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ANY", "BOOL", "DURATION", "INT", "NON_EMPTY", "NULL_NUM", "NULL_STR", "NUM", "STR", "Schema",
           "array_of", "nullable", "obj", "ref"]

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema, **extra: Any) -> Schema:
    """``schema`` or JSON null (``extra``: e.g. a description)."""
    if set(schema) == {"type"} and isinstance(schema["type"], str):
        return {"type": [schema["type"], "null"], **extra}
    return {"anyOf": [schema, {"type": "null"}], **extra}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), *, closed: bool = False, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def array_of(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


STR: Schema = {"type": "string"}
NON_EMPTY: Schema = {"type": "string", "minLength": 1}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
ANY: Schema = {}
NULL_STR = nullable(STR)
NULL_NUM = nullable(NUM)
#: A duration: seconds as a number, or a text such as "10s", "5m", "2h".
DURATION: Schema = {"type": ["number", "string"], "minimum": 0}
