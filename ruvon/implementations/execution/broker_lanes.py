"""Where a run's message waits on a Redis broker: one list per queue and priority.

kombu's Redis transport emulates message priority with one list per "priority step": a message
goes to the list of its step, and a worker's ``BRPOP`` names a queue's lists in step order, so it
takes the first non-empty one. kombu's step 0 is served first and its list is the queue's plain
name; step ``n`` is ``<queue>\\x06\\x16<n>``. Ruvon's priorities run the other way round (0 is the
default and lowest, 9 is served first, :mod:`ruvon.priority`), so a run of priority ``p`` is
sent with kombu priority ``9 - p``. Ruvon's Celery app declares all ten steps
(:data:`PRIORITY_STEPS`), one lane per priority; kombu's default has four, which would fold
priorities 7-9, 4-6 and 1-3 together.
"""

from __future__ import annotations

from ruvon.priority import MAX_PRIORITY, MIN_PRIORITY

__all__ = ["PRIORITY_SEP", "PRIORITY_STEPS", "broker_priority", "lane_key", "queue_keys"]

#: kombu priority steps of Ruvon's app (``broker_transport_options["priority_steps"]``).
PRIORITY_STEPS = tuple(range(MIN_PRIORITY, MAX_PRIORITY + 1))
#: kombu's separator between a queue's name and its priority step (its default ``sep``).
PRIORITY_SEP = "\x06\x16"


def broker_priority(priority: int) -> int:
    """The kombu message priority of a run of Ruvon ``priority`` (lower is served first)."""
    return MAX_PRIORITY - min(max(priority, MIN_PRIORITY), MAX_PRIORITY)


def lane_key(prefix: str, queue: str, priority: int) -> str:
    """The Redis list holding ``queue``'s messages of Ruvon ``priority``."""
    step = broker_priority(priority)
    return f"{prefix}{queue}{PRIORITY_SEP}{step}" if step else f"{prefix}{queue}"


def queue_keys(prefix: str, queue: str) -> list[str]:
    """Every list of ``queue``, one per priority, most urgent first."""
    return [lane_key(prefix, queue, priority) for priority in reversed(PRIORITY_STEPS)]
