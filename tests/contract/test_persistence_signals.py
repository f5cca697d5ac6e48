"""The signal part of the PersistenceProvider contract, against every provider."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from ruvon.errors import WorkflowNotFound
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import SignalRecord
from tests.contract.test_persistence import (  # noqa: F401 (fixtures)
    T0,
    backend,
    make_provider,
    make_record,
    provider,
)


def _signal(event_id: str, name: str = "paid", **data: object) -> SignalRecord:
    return SignalRecord("wf-1", name, event_id, dict(data), sent_by="ops", sent_at=T0)


async def test_signals_come_back_in_the_order_they_were_recorded(
    provider: PersistenceProvider,
) -> None:
    await provider.create_workflow(make_record())
    first = _signal("e-1", amount=5, nested={"a": [1, 2]})
    other = _signal("e-2", "shipped")
    later = SignalRecord("wf-1", "paid", "e-3", {}, None, T0 + timedelta(seconds=1))
    for signal in (first, other, later):
        assert await provider.record_signal(signal) is True
    assert await provider.list_signals("wf-1") == [first, other, later]
    assert await provider.list_signals("wf-1", "paid") == [first, later]
    assert await provider.list_signals("wf-1", "nothing") == []
    assert await provider.list_signals("no-such-workflow") == []


async def test_a_duplicate_event_id_is_kept_once(provider: PersistenceProvider) -> None:
    await provider.create_workflow(make_record())
    await provider.create_workflow(make_record("wf-2"))
    assert await provider.record_signal(_signal("e-1", amount=1)) is True
    assert await provider.record_signal(_signal("e-1", amount=2)) is False
    assert await provider.record_signal(_signal("e-1", "another-name")) is False
    # The same event id on another workflow is another event.
    assert await provider.record_signal(SignalRecord("wf-2", "paid", "e-1", sent_at=T0))
    assert [s.data for s in await provider.list_signals("wf-1")] == [{"amount": 1}]


async def test_racing_duplicates_insert_exactly_one(provider: PersistenceProvider) -> None:
    await provider.create_workflow(make_record())
    outcomes = await asyncio.gather(*(provider.record_signal(_signal("e-1")) for _ in range(8)))
    assert sorted(outcomes) == [False] * 7 + [True]
    assert len(await provider.list_signals("wf-1")) == 1


async def test_a_signal_to_an_unknown_workflow_is_refused(provider: PersistenceProvider) -> None:
    with pytest.raises(WorkflowNotFound):
        await provider.record_signal(_signal("e-1"))
    assert await provider.list_signals("wf-1") == []
