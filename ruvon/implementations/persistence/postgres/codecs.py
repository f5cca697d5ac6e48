"""asyncpg type codecs for the PostgreSQL provider: JSONB through orjson, NUL-safe text.

PostgreSQL cannot store the NUL character: ``text`` rejects the byte 0x00 and ``jsonb`` rejects
the escape ``\\u0000``. SQLite and the in-memory provider store it, and the persistence contract
requires every string (state, audit details, error text, log lines) to come back exactly. So
this provider stores NUL reversibly, with U+001F (the ASCII "unit separator", which essentially
never occurs in real text) as an escape character:

* U+0000 is stored as U+001F ``0``;
* U+001F itself is stored as U+001F ``s``.

Strings with neither character, i.e. practically all of them, are stored unchanged, so SQL
reading the tables (``state->>'key'``, ``WHERE workflow_type = ...``) sees the real values. The
codecs below apply the escape to every ``text`` and ``jsonb`` value asyncpg sends or receives,
so the provider's code never deals with it; another client reading a string that contained NUL
sees the escaped form. (Arrays of ``text`` bypass a custom text codec in asyncpg, so the
provider's SQL passes lists as one ``jsonb`` value instead.)

JSONB uses the binary wire format, which is a version byte (1) followed by the JSON text: no
text decoding or re-encoding on either side.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from ruvon.serialization import dumps, loads

__all__ = [
    "decode_jsonb",
    "decode_text",
    "encode_jsonb",
    "encode_text",
    "register_codecs",
]

_ESCAPE = "\x1f"
_JSONB_VERSION = b"\x01"

# In JSON text a character is escaped as \\uXXXX; the backslash must not itself be escaped,
# i.e. be preceded by an even number of backslashes (the lookbehind anchors the run's start).
_JSON_TO_STORE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u00(00|1[fF])")
_JSON_FROM_STORE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u001[fF]([s0])")
_TEXT_FROM_STORE = re.compile("\x1f([s0])")


def _json_to_store(match: re.Match[bytes]) -> bytes:
    return match[1] + (b"\\u001f0" if match[2] == b"00" else b"\\u001fs")


def _json_from_store(match: re.Match[bytes]) -> bytes:
    return match[1] + (b"\\u0000" if match[2] == b"0" else b"\\u001f")


def _text_from_store(match: re.Match[str]) -> str:
    return "\x00" if match[1] == "0" else _ESCAPE


def encode_text(value: str) -> str:
    """A ``text`` parameter, with NUL and the escape character escaped."""
    if "\x00" in value or _ESCAPE in value:
        return value.replace(_ESCAPE, "\x1fs").replace("\x00", "\x1f0")
    return value


def decode_text(value: str) -> str:
    """A ``text`` result, escapes undone."""
    if _ESCAPE in value:
        return _TEXT_FROM_STORE.sub(_text_from_store, value)
    return value


def encode_json(value: Any) -> bytes:
    """A ``json`` parameter: the JSON text itself (the binary format of ``json`` is its text).

    ``bytes`` are taken as JSON already encoded by :func:`ruvon.serialization.dumps` (state is
    encoded up front to check its size); anything else is encoded here. The escapes are those of
    ``jsonb`` (which cannot hold ``\\u0000``), so a document reads back the same whichever of the
    two types stored it (migration 0004 cast stored states from one to the other).
    """
    data = value if type(value) is bytes else dumps(value)
    if b"\\u00" in data:
        data = _JSON_TO_STORE.sub(_json_to_store, data)
    return data


def decode_json(data: bytes) -> Any:
    """A ``json`` result, escapes undone."""
    if b"\\u001" in data:
        data = _JSON_FROM_STORE.sub(_json_from_store, data)
    return loads(data)


def encode_jsonb(value: Any) -> bytes:
    """A ``jsonb`` parameter in the binary format: a version byte, then :func:`encode_json`."""
    return _JSONB_VERSION + encode_json(value)


def decode_jsonb(data: bytes) -> Any:
    """A ``jsonb`` result in the binary format, escapes undone."""
    if data[:1] != _JSONB_VERSION:
        raise ValueError(f"unsupported jsonb wire format version {data[:1]!r}")
    return decode_json(data[1:])


async def register_codecs(conn: asyncpg.Connection) -> None:
    """Install the codecs on a new connection (the pool's ``init``)."""
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=encode_jsonb, decoder=decode_jsonb, format="binary"
    )
    await conn.set_type_codec(
        "json", schema="pg_catalog", encoder=encode_json, decoder=decode_json, format="binary"
    )
    await conn.set_type_codec(
        "text", schema="pg_catalog", encoder=encode_text, decoder=decode_text, format="text"
    )
