"""``python -m loadtests.bench priority`` at a smoke size: it runs, and prints what it measured."""

from __future__ import annotations

import pytest

from loadtests.bench_priority import bench_priority

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_the_priority_bench_measures_both_classes() -> None:
    figures = {figure.name: figure for figure in bench_priority(runs=1, backlog=60, urgent=3)}
    low = figures["priority 0 backlog of 60: completion p50"]
    high = figures["priority 9, 3 started behind it: completion p50"]
    ratio = figures["urgent p50 / backlog p50"]
    assert low.median > 0 and high.median > 0
    assert ratio.median == pytest.approx(high.median / low.median)
    assert ratio.target == "target <= 0.2" and ratio.runs == 1
