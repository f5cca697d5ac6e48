"""The audited writes of the PostgreSQL provider: a row write and its audit rows, one statement.

``save_workflow`` and ``create_workflow`` each run one statement: the workflow ``UPDATE`` (or
``INSERT``) in a CTE ``RETURNING id``, and the audit ``INSERT ... SELECT ... FROM`` that CTE as the
main statement, so the audit rows exist only if the workflow row was written, in the same
implicit transaction. The command status (``INSERT 0 <n>``) says whether it was: no result row,
no ``count(*)``. A write without audit rows is the bare ``UPDATE``/``INSERT`` (``UPDATE <n>``).

Up to :data:`INLINE_ROWS` audit rows (a durable step writes one or two) travel as plain typed
parameters in a ``VALUES`` list, one prepared statement per row count: measured on a local
server this is ~30-45 µs cheaper per save than unpacking a ``jsonb`` array on the server with
``jsonb_array_elements``, which remains the form for larger batches (one parameter, any count).
Rows are inserted in list order, so their ``id`` order is the audit order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ruvon.implementations.persistence.postgres.rows import audit_json, utc
from ruvon.records import AuditEntry
from ruvon.serialization import dumps

__all__ = [
    "AUDIT_COLUMNS",
    "INLINE_ROWS",
    "AuditedWrite",
    "audit_params",
    "audit_select",
    "rows_written",
]

INLINE_ROWS = 4
AUDIT_COLUMNS = "workflow_id, event_type, step_name, old_status, new_status, details, recorded_at"
_CASTS = ("text", "text", "text", "text", "text", "jsonb", "timestamptz")
_JSON_ROWS = """SELECT a.e ->> 0, a.e ->> 1, a.e ->> 2, a.e ->> 3, a.e ->> 4, a.e -> 5,
       (a.e ->> 6)::timestamptz
FROM written, jsonb_array_elements(${first}::jsonb) WITH ORDINALITY AS a(e, n)
ORDER BY a.n"""


class AuditedWrite:
    """The statements of one write (taking ``params`` parameters) plus 0..n audit rows."""

    __slots__ = ("_json", "_statements")

    def __init__(self, write: str, params: int) -> None:
        head = (
            f"WITH written AS (\n{write}\nRETURNING id\n)\n"
            f"INSERT INTO workflow_audit_log ({AUDIT_COLUMNS})\n"
        )
        first = params + 1
        self._statements = [write] + [
            head + audit_select(first, count)[0] for count in range(1, INLINE_ROWS + 1)
        ]
        self._json = head + audit_select(first, -1)[0]

    def statement(self, audit: Sequence[AuditEntry]) -> tuple[str, tuple[Any, ...]]:
        """The SQL for this many audit rows and the parameters that follow the write's own."""
        sql = self._json if len(audit) > INLINE_ROWS else self._statements[len(audit)]
        return sql, audit_params(audit)


def audit_params(audit: Sequence[AuditEntry]) -> tuple[Any, ...]:
    """The parameters of :func:`audit_select` for these rows (typed values, or one array)."""
    if len(audit) > INLINE_ROWS:
        return (audit_json(audit),)
    params: list[Any] = []
    for e in audit:
        # details as encoded JSON, like the jsonb array form (None stays jsonb null).
        params += (e.workflow_id, e.event_type, e.step_name, e.old_status, e.new_status,
                   dumps(e.details), utc(e.recorded_at))  # fmt: skip
    return tuple(params)


def audit_select(first: int, count: int) -> tuple[str, int]:
    """The ``SELECT ... FROM written`` of ``count`` audit rows (-1: a jsonb array) whose
    parameters start at ``$first``; returns it with the next free parameter number."""
    if count < 0:
        return _JSON_ROWS.replace("{first}", str(first)), first + 1
    return _values(first, count), first + count * len(_CASTS)


def rows_written(status: str) -> int:
    """The row count of a command status (``UPDATE 1``, ``INSERT 0 2``)."""
    return int(status.rpartition(" ")[2])


def _values(first: int, count: int) -> str:
    width = len(_CASTS)
    rows = ",\n       ".join(
        "("
        + ", ".join(f"${first + row * width + i}::{cast}" for i, cast in enumerate(_CASTS))
        + (f", {row}" if count > 1 else "")
        + ")"
        for row in range(count)
    )
    names = "v1, v2, v3, v4, v5, v6, v7" + (", n" if count > 1 else "")
    order = "\nORDER BY a.n" if count > 1 else ""
    return (
        "SELECT a.v1, a.v2, a.v3, a.v4, a.v5, a.v6, a.v7\n"
        f"FROM written, (VALUES {rows}) AS a({names}){order}"
    )
