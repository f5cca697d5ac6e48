"""The slot rules every Python-deciding store shares (memory, SQLite, Redis, PostgreSQL)."""

from __future__ import annotations

from ruvon.implementations.persistence.slot_book import SlotBook, SlotEntry
from ruvon.providers.flow_control import SlotRequest, SlotState


def _entry(holder: str, state: SlotState, limit: int, since: float) -> SlotEntry:
    return SlotEntry(holder, holder, "Call", state, limit, 0, since, int(since * 1e6))


def _book(*entries: SlotEntry) -> SlotBook:
    return SlotBook(entries, now=100.0, workflow_unfinished=lambda e: True)


def test_a_waiter_goes_by_its_own_limit_not_the_newest_one() -> None:
    """While a changed definition rolls out, a waiter asking with limit 1 must not be told a
    slot is free because a newer request said 2: it would be woken, refused and parked again
    for ever (a busy loop)."""
    book = _book(
        _entry("a", SlotState.HOLDING, 2, 1.0),
        _entry("b", SlotState.WAITING, 1, 2.0),
    )
    assert not book.can_go("b")
    request = SlotRequest(key="k", limit=1, holder="b", workflow_id="b", step_name="Call")
    assert not book.acquire(request, 3).granted  # what its acquire decides, too
    wider = _book(_entry("a", SlotState.HOLDING, 2, 1.0), _entry("b", SlotState.WAITING, 2, 2.0))
    assert wider.can_go("b")


def test_only_the_first_waiter_can_go() -> None:
    book = _book(
        _entry("a", SlotState.WAITING, 3, 1.0),
        _entry("b", SlotState.WAITING, 3, 2.0),
    )
    assert book.can_go("a") and not book.can_go("b") and not book.can_go("nobody")
    assert [e.holder for e in book.first_in_line()] == ["a", "b"]
