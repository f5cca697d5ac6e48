"""A workflow's deadline (``timeout`` in its file): when it passes, and what it costs a step.

The deadline (``WorkflowRecord.deadline_at``: start + timeout) is fixed when the workflow is
created and stored with it. The engine checks it at every transition (before it runs or
resumes a step, so at each step boundary) and caps a step attempt's timeout by the time left,
so an attempt running at the deadline is stopped as at its own timeout. Waiting workflows
(timers, people, events, queued runs) are failed by the beat's deadline sweep on a cluster and
by ``ruvon worker --embedded`` embedded, both through the same engine check.
"""

from __future__ import annotations

from ruvon.clock import utc_now
from ruvon.errors import WorkflowTimeoutError
from ruvon.records import WorkflowRecord

__all__ = ["past_deadline", "seconds_left", "step_timeout_within", "timeout_error"]


def past_deadline(record: WorkflowRecord) -> bool:
    """Whether ``record`` has a deadline and it has passed (terminal or not)."""
    return record.deadline_at is not None and record.deadline_at <= utc_now()


def seconds_left(record: WorkflowRecord) -> float | None:
    """Seconds until the deadline (0 or less: passed); None without one."""
    if record.deadline_at is None:
        return None
    return (record.deadline_at - utc_now()).total_seconds()


def step_timeout_within(record: WorkflowRecord, timeout: float | None) -> tuple[float | None, bool]:
    """An attempt's timeout capped by the deadline, and whether the deadline is the cap."""
    left = seconds_left(record)
    if left is None or (timeout is not None and timeout <= left):
        return timeout, False
    return max(left, 0.0), True


def timeout_error(record: WorkflowRecord, step: str | None) -> WorkflowTimeoutError:
    """The error that fails ``record`` at its deadline."""
    assert record.deadline_at is not None
    timeout = round((record.deadline_at - record.created_at).total_seconds(), 6)
    return WorkflowTimeoutError(record.id, timeout, step=step)
