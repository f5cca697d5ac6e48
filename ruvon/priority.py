"""Workflow priority: 0 (the default, lowest) to 9 (served first).

A workflow's priority comes from its start (``create_workflow(priority=)``, ``Client.start``,
``ruvon start --priority``, the API), else its workflow file's ``priority``, else 0; a child
workflow inherits its parent's. Every run of a workflow carries it: on a cluster it picks the
run's broker lane (kombu's Redis transport keeps one list per priority and a worker pops the
most urgent non-empty one first) and the order in which the beat's sweeps take runs; embedded,
the order in which a runner fires due timers.
"""

from __future__ import annotations

from typing import Any

from ruvon.errors import InputValidationError

__all__ = ["DEFAULT_PRIORITY", "MAX_PRIORITY", "MIN_PRIORITY", "checked_priority"]

MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = MIN_PRIORITY


def checked_priority(value: Any, workflow_type: str) -> int:
    """``value`` as a priority, or ``InputValidationError`` naming the field and the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputValidationError(
            f"start of '{workflow_type}': priority must be a whole number from {MIN_PRIORITY} "
            f"to {MAX_PRIORITY} (higher runs first), got {value!r}"
        )
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InputValidationError(
            f"start of '{workflow_type}': priority {value} is out of range: use "
            f"{MIN_PRIORITY} (the default, lowest) to {MAX_PRIORITY} (served first)"
        )
    return value
