"""A failed attempt's stored traceback: complete when short, its ends kept when long."""

from __future__ import annotations

import pytest

from ruvon.engine.tracebacks import MAX_TRACEBACK_CHARS, bounded_traceback, failure_details


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def charge_card(amount: int) -> None:
    raise ValueError(f"card declined for {amount}")


def test_a_short_traceback_is_kept_whole_with_its_cause() -> None:
    try:
        try:
            charge_card(12)
        except ValueError as exc:
            raise RuntimeError("payment step failed") from exc
    except RuntimeError as outer:
        text = bounded_traceback(outer)
    assert text is not None and text.startswith("Traceback (most recent call last):")
    assert ", in charge_card" in text and "card declined for 12" in text  # the cause
    assert text.rstrip().endswith("RuntimeError: payment step failed")


def test_a_long_traceback_keeps_its_first_line_and_its_innermost_frames() -> None:
    exc = _raised(ValueError("x" * 50_000 + " END"))
    text = bounded_traceback(exc)
    assert text is not None and len(text) <= MAX_TRACEBACK_CHARS
    assert text.startswith("Traceback (most recent call last):")
    assert text.rstrip().endswith(" END")  # the error line, where it ends
    assert "characters left out" in text


def test_an_exception_never_raised_has_no_traceback_to_store() -> None:
    assert bounded_traceback(ValueError("made, not raised")) is None
    assert failure_details("ValueError: made", ValueError("made")) == {"error": "ValueError: made"}


@pytest.mark.parametrize("limit", [200, 1_000])
def test_the_limit_is_the_bound(limit: int) -> None:
    text = bounded_traceback(_raised(KeyError("k" * 5_000)), limit=limit)
    assert text is not None and len(text) <= limit
    details = failure_details("KeyError: k", _raised(KeyError("k")))
    assert details["error"] == "KeyError: k" and "KeyError" in details["traceback"]
