"""Named SQL queries kept in ``.sql`` files, one file per dialect.

A file is a sequence of blocks, each opened by a ``-- name: <identifier>`` line. Comment lines
right after the name describe the query and are dropped; the rest, up to the next name, is the
query text::

    -- name: load_workflow
    -- One workflow by id.
    SELECT ... FROM workflow_executions WHERE id = :id;

Keeping SQL as data makes it reviewable in one place and lets each dialect
(``sqlite/sql/workflows.sql``, ``postgres/sql/workflows.sql``) share the Python that runs it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["load_queries", "parse_queries", "prefix_upper_bound"]

_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>\S*)\s*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_queries(text: str, *, source: str = "<string>") -> dict[str, str]:
    """Split ``text`` into ``{name: sql}``; a ``ValueError`` names the source line at fault."""
    queries: dict[str, str] = {}
    name: str | None = None
    name_line = 0
    body: list[str] = []

    def finish() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip()
        if not sql:
            raise ValueError(f"{source}:{name_line}: query '{name}' has no SQL")
        queries[name] = sql

    for number, line in enumerate(text.splitlines(), start=1):
        match = _NAME_LINE.match(line.strip())
        if match:
            finish()
            name, name_line, body = match["name"], number, []
            if not _IDENTIFIER.match(name):
                raise ValueError(f"{source}:{number}: '{name}' is not a valid query name")
            if name in queries:
                raise ValueError(f"{source}:{number}: query '{name}' is defined twice")
        elif name is None:
            if line.strip() and not line.lstrip().startswith("--"):
                raise ValueError(f"{source}:{number}: SQL before the first '-- name:' line")
        elif line.lstrip().startswith("--") and not any(part.strip() for part in body):
            continue  # the query's description
        else:
            body.append(line)
    finish()
    return queries


def load_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read and parse a ``.sql`` file of named queries (call once, at import)."""
    file = Path(path)
    return parse_queries(file.read_text(encoding="utf-8"), source=str(file))


_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)  # not encodable in UTF-8: the next character is U+E000


def prefix_upper_bound(prefix: str) -> str | None:
    """The least text above every text that starts with ``prefix``, in code-point order.

    Code-point order is UTF-8 byte order, the order of PostgreSQL's ``~<~`` operators and of
    SQLite's BINARY collation, so ``prefix <= x < bound`` holds exactly for the texts that start
    with ``prefix``, and an index can serve it. ``None`` when there is no such bound (an empty
    prefix, or one made only of U+10FFFF).
    """
    text = prefix
    while text:
        last = ord(text[-1])
        if last < _MAX_CODE_POINT:
            following = last + 1
            if following in _SURROGATES:
                following = _SURROGATES.stop
            return text[:-1] + chr(following)
        text = text[:-1]
    return None
