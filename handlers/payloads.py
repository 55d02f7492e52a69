"""Reading a webhook's JSON: the field at a path, of the type the handler needs, or BadPayload
(the server answers 400) naming what is missing or mistyped. A signed body is GitHub's, but its
shape is checked all the same: a handler never fails on a KeyError or a TypeError."""

from __future__ import annotations

from typing import Any, TypeVar

from bot.app.jobs import BadPayload

T = TypeVar("T")
_MISSING = object()


def at(data: Any, path: str, kind: type[T]) -> T:
    """The value at dotted `path`, which must be there and of type `kind`."""
    value = maybe(data, path, kind)
    if value is None:
        raise BadPayload(f"'{path}' is missing")
    return value


def maybe(data: Any, path: str, kind: type[T]) -> T | None:
    """The value at dotted `path`, None when it (or a mapping on the way) is absent or null."""
    value = data
    for part in path.split("."):
        if value is None:
            return None
        if not isinstance(value, dict):
            raise BadPayload(f"'{path}': the part before '{part}' must be an object")
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return None
    if value is None:
        return None
    # bool is an int to Python, never to a payload's schema.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadPayload(f"'{path}' must be {_name(kind)}, got {_name(type(value))}")
    return value


def _name(kind: type) -> str:
    return {str: "a string", int: "an integer", dict: "an object", list: "a list", bool: "true or false"}.get(
        kind, kind.__name__
    )
