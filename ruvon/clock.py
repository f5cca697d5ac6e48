"""The engine's one clock: timezone-aware UTC, optionally aligned with the database's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["align_clock", "utc_now"]

_clock_offset = timedelta()


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the only clock the engine uses).

    A cluster worker aligns it with the database's clock (:func:`align_clock`), so the deadlines
    it computes (WAIT timers, approval timeouts) mean the same to the beat, which compares them
    with the database's ``now()``, even when the worker's own clock is off.
    """
    return datetime.now(UTC) + _clock_offset


def align_clock(reference: datetime, *, tolerance: float = 0.5) -> None:
    """Offset :func:`utc_now` so it reads ``reference`` (a time just read from the database).

    Differences within ``tolerance`` seconds (round trips, ordinary drift) are left alone.
    """
    global _clock_offset
    measured = reference - datetime.now(UTC)
    if abs((measured - _clock_offset).total_seconds()) > tolerance:
        _clock_offset = measured
