"""A small typed JSON codec for the kernel-worker frames (``worker_frames``): each dataclass's
fields are checked against their annotations, with wire names in camelCase, and a value that does
not fit raises :class:`FrameError` naming the field, what it must be and what it was."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union

from polaris_jupyter.jobs._models import InvalidInput

__all__ = ["FrameError", "Wire", "type_name"]

_W = TypeVar("_W", bound="Wire")
_UNIONS = (Union, types.UnionType)


class FrameError(InvalidInput):
    """A frame that is not JSON, not an object, of an unknown type, or with a missing or mistyped
    field. ``request_id`` is the frame's ``id`` when it had one (so the sender's request can be
    answered), ``frame_type`` its ``type``."""

    def __init__(self, message: str, *, request_id: str | None = None, frame_type: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.frame_type = frame_type


def _wire_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# -- a small typed codec: one checker per annotation, built once per class ---------------------------

_Check = Callable[[Any], Any]


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNIONS:
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}
    if tp in names:
        return names[tp]
    if origin is list:
        return "a list"
    if origin is dict or (isinstance(tp, type) and issubclass(tp, Wire)):
        return "an object"
    return "a JSON value"


def _checker(tp: Any) -> _Check:
    """A function returning the decoded value, or raising TypeError when it does not fit ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return lambda v: v
    if origin in _UNIONS:
        inner = [_checker(a) for a in args if a is not type(None)]
        optional = type(None) in args

        def union(v: Any) -> Any:
            if v is None and optional:
                return None
            for check in inner:
                try:
                    return check(v)
                except TypeError:
                    continue
            raise TypeError

        return union
    if origin is Literal:
        return lambda v: v if isinstance(v, str) and v in args else _fail()
    if tp is bool:
        return lambda v: v if isinstance(v, bool) else _fail()
    if tp is int:
        return lambda v: v if isinstance(v, int) and not isinstance(v, bool) else _fail()
    if tp is float:
        return lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else _fail()
    if tp is str:
        return lambda v: v if isinstance(v, str) else _fail()
    if origin is list:
        item = _checker(args[0]) if args else _checker(Any)
        return lambda v: [item(x) for x in v] if isinstance(v, list) else _fail()
    if origin is dict:
        value = _checker(args[1]) if args else _checker(Any)
        return lambda v: {k: value(x) for k, x in v.items()} if isinstance(v, dict) and all(isinstance(k, str) for k in v) else _fail()
    if isinstance(tp, type) and issubclass(tp, Wire):
        return lambda v: tp._decode(v) if isinstance(v, dict) else _fail()
    raise AssertionError(f"no wire checker for {tp!r}")


def _fail() -> Any:
    raise TypeError


@dataclass(frozen=True)
class _Field:
    name: str
    wire: str
    check: _Check
    expected: str
    required: bool


_FIELDS: dict[type, list[_Field]] = {}


class Wire:
    """Shared codec of the frames and the objects inside them (a dataclass subclass each)."""

    LABEL: ClassVar[str] = "object"

    @classmethod
    def _fields(cls) -> list[_Field]:
        fields = _FIELDS.get(cls)
        if fields is None:
            hints = typing.get_type_hints(cls)
            fields = _FIELDS[cls] = [
                _Field(
                    f.name,
                    _wire_name(f.name),
                    _checker(hints[f.name]),
                    _describe(hints[f.name]),
                    f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
                )
                for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            ]
        return fields

    @classmethod
    def _decode(cls: type[_W], data: Mapping[str, Any]) -> _W:
        values: dict[str, Any] = {}
        for f in cls._fields():
            if f.wire not in data:
                if f.required:
                    raise FrameError(f"bad {cls.LABEL}: {f.wire!r} is missing")
                continue
            try:
                values[f.name] = f.check(data[f.wire])
            except TypeError:
                got = data[f.wire]
                raise FrameError(f"bad {cls.LABEL}: {f.wire!r} must be {f.expected}, got {type_name(got)}") from None
        made = cls(**values)
        made._validate()
        return made

    def _validate(self) -> None:
        """Rules across fields; raise FrameError."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self._fields():
            value = getattr(self, f.name)
            out[f.wire] = value.to_json() if isinstance(value, Wire) else value
        return out


def type_name(value: Any) -> str:
    """``'zap'`` / ``3`` for a short scalar, else its JSON kind (``a list``)."""
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 40):
        return repr(value)
    return {dict: "an object", list: "a list", str: "a long string", type(None): "null"}.get(type(value), type(value).__name__)
