"""A step function past its timeout is stopped, not abandoned: interrupted inside (soft), and
if it will not stop, its process is killed (hard), so no retry can overlap it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from ruvon.implementations.execution.time_limit import (
    HARD_STOP_GRACE,
    AttemptInterrupted,
    call_with_time_limit,
)


def _sleeps(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def _swallows_exceptions() -> str:
    try:
        time.sleep(5)
    except Exception:  # user code that catches everything it thinks is an error
        return "swallowed"
    return "slept"


def test_a_call_within_its_limit_returns_and_leaves_no_alarm_behind() -> None:
    assert call_with_time_limit(_sleeps, (0.01,), {}, 0.2) == "woke"
    time.sleep(0.4)  # a timer left armed would interrupt this


def test_a_call_past_its_limit_is_interrupted_inside_the_function() -> None:
    started = time.monotonic()
    with pytest.raises(AttemptInterrupted):
        call_with_time_limit(_swallows_exceptions, (), {}, 0.2)
    assert time.monotonic() - started < 2.5  # not the 5 s it would have slept


def test_a_function_that_will_not_stop_takes_its_process_down() -> None:
    script = textwrap.dedent(
        """
        import time
        from ruvon.implementations.execution.time_limit import call_with_time_limit

        def stubborn():
            while True:
                try:
                    time.sleep(10)
                except BaseException:
                    pass

        call_with_time_limit(stubborn, (), {}, 0.2)
        print("returned")
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == -9, done.stderr  # SIGKILL: nothing of it runs on
    assert "returned" not in done.stdout
    assert "did not stop when interrupted" in done.stderr
    assert time.monotonic() - started >= HARD_STOP_GRACE
