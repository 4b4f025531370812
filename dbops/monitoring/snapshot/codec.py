"""The JSON codec of the snapshot's dataclasses (standard library only)."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from typing import Any, TypeVar

__all__ = ["decode_as", "encode"]

T = TypeVar("T")


def encode(value: Any) -> Any:
    """``value`` (a dataclass, tuple, date ...) as JSON-ready lists, dicts and strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _decode(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _decode(value, args[0])
    if origin is tuple:
        (item,) = (a for a in typing.get_args(tp) if a is not Ellipsis)
        return tuple(_decode(v, item) for v in value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        # Unknown keys come from a newer writer: ignore them rather than fail.
        return tp(**{k: _decode(v, hints[k]) for k, v in value.items() if k in known})
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp is date:
        return date.fromisoformat(value)
    if tp is float:
        return float(value)
    return value


def decode_as(value: Any, tp: type[T]) -> T:
    """``value`` (from :func:`encode` and ``json.loads``) as a ``tp``; unknown keys are ignored."""
    result: T = _decode(value, tp)
    return result
