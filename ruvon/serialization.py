"""JSON encoding of workflow state and records (orjson), with the state size limit.

State is stored as JSON text everywhere, so whatever a step returns must be JSON-representable:
pydantic models are dumped in JSON mode, datetimes become ISO strings, and NaN/Infinity are
rejected (they are not JSON and would silently become ``null``). Sets in state are rejected too:
JSON has none, so a set would come back as a list in an order nobody chose, and code relying on
it being a set (``|``, ``add``, uniqueness) would break only after a reload. A pydantic state
model that declares a ``set`` field keeps it (the model dumps it to a list and validates it
back); records only people read (audit details, logs) write a set as a sorted list. Tuples are
kept as lists: orjson writes them natively, spotting them would cost a walk of every state on
every save, and a tuple loses nothing but its immutability (a ``tuple[...]`` field restores it).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel

from ruvon.errors import StateTooLargeError, StateValidationError

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _state_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        raise TypeError(f"{type(value).__name__} is not JSON (it would come back as a list)")
    return _default(value)


def dumps(value: Any) -> bytes:
    """Encode ``value`` as compact JSON bytes; raise ``TypeError`` for what JSON cannot hold.

    For records (audit details, results, logs): a set is written as a sorted list. State is
    encoded by :func:`encode_state`, which refuses sets instead.
    """
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def _dumps_state(value: Any) -> bytes:
    return orjson.dumps(value, default=_state_default, option=_OPTIONS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON produced by :func:`dumps`."""
    return orjson.loads(data)


def _find_non_finite(value: Any, path: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path or "<root>"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_non_finite(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _find_non_finite(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _find_unencodable(value: Any, path: str) -> tuple[str, Any] | None:
    """Dotted path and value of the first value :func:`dumps` refuses (None if not found)."""
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_unencodable(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _find_unencodable(item, f"{path}[{index}]")
            if found:
                return found
        return None
    try:
        _dumps_state(value)
    except TypeError:
        return path or "<root>", value
    return None


def _unstorable(value: dict[str, Any], what: str) -> tuple[str, bytes | None]:
    """Encode ``value`` as state; on failure, say why naming ``what`` and the offending key."""
    try:
        data = _dumps_state(value)
    except TypeError as exc:
        found = _find_unencodable(value, "")
        if found is not None and isinstance(found[1], set | frozenset):
            kind = type(found[1]).__name__
            return (
                f"{what} holds a {kind} at '{found[0]}': JSON has no sets, so it would come back "
                "as a list; store a list (e.g. sorted(...)), or declare the field as a set on "
                "a pydantic state model",
                None,
            )
        at = f" at '{found[0]}'" if found else ""
        return f"{what} is not JSON-serializable{at}: {exc}", None
    # orjson writes NaN/Infinity as null; catch it rather than lose the value silently.
    if b"null" in data:
        bad = _find_non_finite(value, "")
        if bad is not None:
            return (
                f"{what} holds a non-finite float at '{bad}' (NaN and Infinity are not JSON)",
                None,
            )
    return "", data


def check_storable(value: dict[str, Any], *, what: str) -> None:
    """Raise StateValidationError unless ``value`` is state JSON reads back as written."""
    problem, _ = _unstorable(value, what)
    if problem:
        raise StateValidationError(problem)


def encode_state(state: dict[str, Any], *, workflow_id: str, limit: int | None) -> bytes:
    """Encode workflow state for storage, enforcing JSON-ness and the size ``limit`` (bytes)."""
    problem, data = _unstorable(state, f"state of workflow '{workflow_id}'")
    if data is None:
        raise StateValidationError(problem)
    if limit is not None and len(data) > limit:
        raise StateTooLargeError(workflow_id, len(data), limit)
    return data


def datetime_to_text(value: datetime | None) -> str | None:
    """ISO-8601 text for storage backends without a native timestamp type."""
    return value.isoformat() if value is not None else None


def text_to_datetime(value: str | None) -> datetime | None:
    """Inverse of :func:`datetime_to_text`."""
    return datetime.fromisoformat(value) if value else None
