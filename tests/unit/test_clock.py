"""A worker's clock is aligned with the database's, so its deadlines mean the same to the beat."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ruvon import clock
from ruvon.clock import align_clock, utc_now


@pytest.fixture(autouse=True)
def _restore_clock() -> Iterator[None]:
    saved = clock._clock_offset
    yield
    clock._clock_offset = saved


def test_a_clock_an_hour_behind_the_database_is_moved_forward() -> None:
    database_now = datetime.now(UTC) + timedelta(hours=1)
    align_clock(database_now)
    drift = (utc_now() - database_now).total_seconds()
    assert 0 <= drift < 1  # now reads the database's time, not the host's


def test_small_differences_are_left_alone() -> None:
    clock._clock_offset = timedelta()
    align_clock(datetime.now(UTC) + timedelta(milliseconds=200))
    assert clock._clock_offset == timedelta()
    align_clock(datetime.now(UTC) - timedelta(seconds=3))
    assert -3.1 < clock._clock_offset.total_seconds() < -2.9
