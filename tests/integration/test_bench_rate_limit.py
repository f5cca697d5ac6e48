"""``python -m loadtests.bench rate_limit`` at a smoke size: it runs and prints its figures."""

from __future__ import annotations

import pytest

from loadtests.bench_rate_limit import BURST, RATE, bench_rate_limit, worst_window

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_the_worst_window_counts_calls_over_the_limit() -> None:
    spaced = [i / RATE for i in range(10)]
    assert worst_window(spaced) == pytest.approx(1 - BURST)  # one call a window of 0: 1 - 5
    assert worst_window([0.0] * (BURST + 2)) == pytest.approx(2)  # two over the burst at once


def test_the_rate_limit_bench_measures_span_and_window() -> None:
    figures = {figure.name: figure for figure in bench_rate_limit(runs=1, calls=25)}
    span = figures["25 calls at 20/s burst 5: first start to last done"]
    window = figures["worst window: calls over burst + rate * t"]
    attempts = figures["most attempts of one run (deferrals spend none)"]
    assert span.median >= (25 - BURST) / RATE  # 20 after the burst at 20 a second: 1 s at least
    assert span.target == "0.8 <= x <= 3.2"
    assert window.target == "<= 0" and window.runs == 1
    assert attempts.median == 1
    assert figures["runs deferred to their turn"].median >= 15
