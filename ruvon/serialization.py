"""JSON encoding of workflow state and records (orjson), with the state size limit.

State is stored as JSON text everywhere, so whatever a step returns must be JSON-representable:
pydantic models are dumped in JSON mode, datetimes become ISO strings, and NaN/Infinity are
rejected (they are not JSON and would silently become ``null``).
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


def dumps(value: Any) -> bytes:
    """Encode ``value`` as compact JSON bytes; raise ``TypeError`` for what JSON cannot hold."""
    return orjson.dumps(value, default=_default, option=_OPTIONS)


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


def _find_unencodable(value: Any, path: str) -> str | None:
    """Dotted path of the first value :func:`dumps` refuses (None if it is not found)."""
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
        dumps(value)
    except TypeError:
        return path or "<root>"
    return None


def encode_state(state: dict[str, Any], *, workflow_id: str, limit: int | None) -> bytes:
    """Encode workflow state for storage, enforcing JSON-ness and the size ``limit`` (bytes)."""
    try:
        data = dumps(state)
    except TypeError as exc:
        bad = _find_unencodable(state, "")
        at = f" at '{bad}'" if bad else ""
        raise StateValidationError(
            f"state of workflow '{workflow_id}' is not JSON-serializable{at}: {exc}"
        ) from exc
    # orjson writes NaN/Infinity as null; catch it rather than lose the value silently.
    if b"null" in data:
        bad = _find_non_finite(state, "")
        if bad is not None:
            raise StateValidationError(
                f"state of workflow '{workflow_id}' holds a non-finite float at '{bad}' "
                "(NaN and Infinity are not JSON)"
            )
    if limit is not None and len(data) > limit:
        raise StateTooLargeError(workflow_id, len(data), limit)
    return data


def datetime_to_text(value: datetime | None) -> str | None:
    """ISO-8601 text for storage backends without a native timestamp type."""
    return value.isoformat() if value is not None else None


def text_to_datetime(value: str | None) -> datetime | None:
    """Inverse of :func:`datetime_to_text`."""
    return datetime.fromisoformat(value) if value else None
