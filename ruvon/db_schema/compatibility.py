"""The schema compatibility window: which database revisions a release of Ruvon may run against.

A rolling upgrade migrates the database first and replaces the pods after, so for a while the
old code runs against the new schema: every old pod or pool process that (re)starts in that
window checks the schema again. A release therefore runs against its own revision **and** any
later revision that declares itself compatible with it (expand/contract: a migration that only
adds stays compatible with the code before it; one that drops or renames what older code uses
does not). Everything else is refused with :class:`~ruvon.errors.SchemaOutOfDate`, naming both
revisions and what to do.

**The rule lives in the database.** Old code cannot read migration files written after it, so
each revision declares, as the module attribute ``min_compatible_revision``, the oldest code
revision that still runs against the schema it leaves, and the migration environment
(``migrations/env.py``, through :func:`record_compatibility`) writes that declaration into the
table ``ruvon_schema_compat`` (revision, min_compatible_revision) in the same transaction as the
migration. Code at revision C facing a database at an unknown (newer) revision D reads D's row:
when its ``min_compatible_revision`` is C or one of C's ancestors, C is at least that old
revision, so C runs; a missing row, or a revision C does not know, is refused. A revision that
declares nothing is compatible only with itself (the safe default). See migrations/README.md for
how to write one.

The table is bookkeeping of the migrations, like Alembic's ``alembic_version``: it is not part
of ``ruvon.db_schema``'s metadata, drift checks ignore it, and the SQL here is all a provider
needs to read it (importing this module imports neither SQLAlchemy nor Alembic).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from types import ModuleType
from typing import Any

from ruvon.errors import ConfigurationError

__all__ = [
    "COMPAT_QUERY",
    "COMPAT_TABLE",
    "MARKER",
    "declared_compatibility",
    "include_in_comparisons",
    "record_compatibility",
    "schema_problem",
]

#: The table where each applied revision records the oldest code revision it stays compatible with.
COMPAT_TABLE = "ruvon_schema_compat"

#: The module attribute of a migration script that declares it.
MARKER = "min_compatible_revision"

#: How a provider reads the declarations (a handful of rows; no parameters, so any driver).
COMPAT_QUERY = f"SELECT revision, {MARKER} FROM {COMPAT_TABLE}"

_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {COMPAT_TABLE} (revision VARCHAR(64) NOT NULL PRIMARY KEY, "
    f"{MARKER} VARCHAR(64) NOT NULL)"
)
_FORGET = f"DELETE FROM {COMPAT_TABLE} WHERE revision = :revision"
_RECORD = f"INSERT INTO {COMPAT_TABLE} (revision, {MARKER}) VALUES (:revision, :compatible)"
_REVISION_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def schema_problem(
    found: str | None,
    declared: Mapping[str, str],
    *,
    code_revision: str,
    code_lineage: Collection[str],
    database: str = "the database",
) -> str | None:
    """Why code at ``code_revision`` cannot run against a database at ``found``; None if it can.

    ``declared`` is the database's ``ruvon_schema_compat`` (revision -> min_compatible_revision;
    empty without the table), ``code_lineage`` every revision up to and including the code's,
    ``database`` names the database in the message.
    """
    if found == code_revision:
        return None
    if found is None:
        return (
            f"{database} has no Ruvon schema (this Ruvon's code is at revision {code_revision}): "
            "run `ruvon db upgrade`"
        )
    if found in code_lineage:
        return (
            f"{database} schema is at revision {found}, older than this Ruvon's code (revision "
            f"{code_revision}): run `ruvon db upgrade`"
        )
    oldest = declared.get(found)
    if oldest is not None and oldest in code_lineage:
        return None  # a newer revision that stays compatible with this code
    downgrade = f"`ruvon db downgrade {code_revision}` with the newer Ruvon"
    if oldest is None:
        return (
            f"{database} schema is at revision {found}, which this Ruvon (code at revision "
            f"{code_revision}) does not know and which declares no compatibility with older "
            f"code; a newer Ruvon migrated it: upgrade Ruvon, or downgrade the database "
            f"({downgrade})"
        )
    return (
        f"{database} schema is at revision {found}, which a newer Ruvon migrated and which runs "
        f"only with code at revision {oldest} or later; this Ruvon's code is at revision "
        f"{code_revision}: upgrade Ruvon, or downgrade the database ({downgrade})"
    )


def declared_compatibility(module: ModuleType | None, revision: str) -> str:
    """The ``min_compatible_revision`` a migration script declares; its own revision if none."""
    value: Any = getattr(module, MARKER, None) if module is not None else None
    if value is None:
        return revision
    if not isinstance(value, str) or not _REVISION_ID.match(value):
        where = getattr(module, "__file__", revision)
        raise ConfigurationError(
            f"{where}: {MARKER} must be a revision id (letters, digits, _), not {value!r}: set "
            "it to the oldest revision whose code still runs against this revision's schema"
        )
    return value


def record_compatibility(*, ctx: Any, step: Any, **_: Any) -> None:
    """Alembic ``on_version_apply`` hook: keep ``ruvon_schema_compat`` in step with each step.

    An upgrade (or stamp up) records its revision's declaration; a downgrade removes the row
    of the revision it undid. Runs inside the migration's transaction, online or ``--sql``.
    """
    from sqlalchemy import text

    ctx.execute(text(_CREATE))
    if not step.is_upgrade:
        for revision in step.up_revision_ids:
            ctx.execute(text(_FORGET).bindparams(revision=revision))
        return
    for script in step.up_revisions:
        if script is None:
            continue
        compatible = declared_compatibility(getattr(script, "module", None), script.revision)
        ctx.execute(text(_FORGET).bindparams(revision=script.revision))
        ctx.execute(text(_RECORD).bindparams(revision=script.revision, compatible=compatible))


def include_in_comparisons(name: str | None, type_: str, _parents: Mapping[str, Any]) -> bool:
    """Alembic ``include_name``: drift checks and autogenerate leave the bookkeeping table out."""
    return not (type_ == "table" and name == COMPAT_TABLE)
