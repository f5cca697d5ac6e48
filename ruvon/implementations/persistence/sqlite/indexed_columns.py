"""What a workflow's indexed columns hold at a version, so a save can skip rewriting them.

SQLite rewrites an index entry whenever its column is SET, even to the value it holds, so the
fenced save writes the indexed columns (``status``, ``run_at``, ``parent_execution_id``,
``idempotency_key``) in a second, conditional ``UPDATE`` (``update_workflow_indexed``). Most
saves change none of them (a step's save keeps the status), and that statement then matches
no row, but executing it still costs as much as a small write (~8 µs here, twice that between
the engine's own work).

Only a save writes these columns, and every save moves the version on, so a row at version
``v`` holds exactly what the create or save that produced ``v`` wrote. :class:`KnownIndexed`
remembers that, per workflow id, from the writes and reads this provider made. When a save's
``expected_version`` is the version remembered and its indexed values are the ones
remembered, and its fenced ``UPDATE`` matches (the row is still at that version), the second
statement has nothing to do and is skipped. Anything else (nothing remembered, another version,
a value that changed) runs it as before, so a stale entry can cost a statement, never a write.
"""

from __future__ import annotations

from typing import Any

__all__ = ["INDEXED_COLUMNS", "IndexedValues", "KnownIndexed", "indexed_values"]

INDEXED_COLUMNS = ("status", "run_at", "parent_execution_id", "idempotency_key")
# The columns' stored values (TEXT or NULL), in INDEXED_COLUMNS order.
IndexedValues = tuple[Any, ...]


def indexed_values(params: dict[str, Any]) -> IndexedValues:
    """The indexed columns of a row, or of a save's parameters (both hold the stored text)."""
    return (
        params["status"],
        params["run_at"],
        params["parent_execution_id"],
        params["idempotency_key"],
    )


class KnownIndexed:
    """Per workflow id, a version and the indexed values its row holds at that version.

    Bounded: past ``limit`` workflows the oldest entry is forgotten (its next save just runs the
    conditional statement). Not thread-safe; the provider touches it from its event loop only.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._known: dict[str, tuple[int, IndexedValues]] = {}

    def __len__(self) -> int:
        return len(self._known)

    def unchanged(self, workflow_id: str, version: int, values: IndexedValues) -> bool:
        """Whether the row of ``workflow_id`` at ``version`` is known to hold ``values``."""
        return self._known.get(workflow_id) == (version, values)

    def remember(self, workflow_id: str, version: int, values: IndexedValues) -> None:
        """The row of ``workflow_id`` holds ``values`` at ``version`` (just written or read)."""
        known = self._known
        known.pop(workflow_id, None)  # re-inserted last: the dict's order is the age order
        known[workflow_id] = (version, values)
        if len(known) > self._limit:
            del known[next(iter(known))]

    def forget(self, workflow_id: str) -> None:
        """Nothing is known of ``workflow_id`` any more (a save of it failed)."""
        self._known.pop(workflow_id, None)
