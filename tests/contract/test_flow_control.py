"""The FlowControl contract (concurrency slots, rate-limit cells), run against every provider."""

# The persistence contract's fixtures are imported, and pytest passes them by name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time

import pytest

from ruvon.models import WorkflowStatus
from ruvon.providers.flow_control import (
    HOST,
    RATE_GUARD,
    FlowControl,
    SlotRecord,
    SlotRequest,
    SlotState,
    owner_here,
)
from ruvon.providers.persistence import PersistenceProvider
from tests.contract.test_persistence import (  # noqa: F401
    backend,
    make_provider,
    make_record,
    provider,
)


def _store(provider: PersistenceProvider) -> FlowControl:
    assert isinstance(provider, FlowControl)
    return provider


async def _workflows(provider: PersistenceProvider, *ids: str) -> None:
    for workflow_id in ids:
        record = make_record(workflow_id, parent_execution_id=None, blocked_on_child_id=None,
                             completed_at=None)  # fmt: skip
        await provider.create_workflow(record)


def _request(
    holder: str, *, key: str = "customer-7", limit: int = 2, **extra: object
) -> SlotRequest:
    # A step's slot (a workflow's own, step_name None, lives as long as its workflow).
    fields: dict[str, object] = {"workflow_id": holder.split("/")[0], "step_name": "Call",
                                 "owner": owner_here(), "lease_seconds": 60.0}  # fmt: skip
    fields.update(extra)
    return SlotRequest(key=key, limit=limit, holder=holder, **fields)  # type: ignore[arg-type]


def _line(records: list[SlotRecord]) -> list[tuple[str, SlotState]]:
    return [(r.holder, r.state) for r in records]


async def test_slots_go_to_holders_up_to_the_limit_then_to_waiters_in_order(
    provider: PersistenceProvider,
) -> None:
    store = _store(provider)
    await _workflows(provider, "a", "b", "c", "d")
    assert (await store.acquire_slot(_request("a"))).granted
    assert (await store.acquire_slot(_request("b"))).granted
    third = await store.acquire_slot(_request("c"))
    assert (third.granted, third.held, third.ahead) == (False, 2, 0)
    fourth = await store.acquire_slot(_request("d"))
    assert (fourth.granted, fourth.ahead) == (False, 1)
    # Asking again keeps one's place (and a holder asking again still holds).
    assert (await store.acquire_slot(_request("d"))).ahead == 1
    assert (await store.acquire_slot(_request("a"))).granted
    assert _line(await store.list_slots("customer-7")) == [
        ("a", SlotState.HOLDING), ("b", SlotState.HOLDING),
        ("c", SlotState.WAITING), ("d", SlotState.WAITING),
    ]  # fmt: skip
    # d cannot jump the line while c waits, even with a slot free.
    woken = await store.release_slot("customer-7", "a")
    assert [w.holder for w in woken] == ["c"]
    assert not (await store.acquire_slot(_request("d"))).granted
    assert (await store.acquire_slot(_request("c"))).granted
    assert not (await store.acquire_slot(_request("d"))).granted
    assert [w.holder for w in await store.release_slot("customer-7", "b")] == ["d"]
    assert (await store.acquire_slot(_request("d"))).granted
    # Another key is another line.
    assert (await store.acquire_slot(_request("a", key="customer-8", limit=1))).granted
    keys = {r.key for r in await store.list_slots()}
    assert keys == {"customer-7", "customer-8"}
    # One workflow's keys, each with its whole line (so its place in it is known).
    assert {r.key for r in await store.list_slots(workflow_id="a")} == {"customer-8"}
    assert _line(await store.list_slots(workflow_id="d")) == [
        ("c", SlotState.HOLDING), ("d", SlotState.HOLDING)
    ]  # fmt: skip
    assert await store.list_slots("customer-8", workflow_id="d") == []


async def test_a_more_urgent_waiter_is_served_first(provider: PersistenceProvider) -> None:
    store = _store(provider)
    await _workflows(provider, "a", "low", "high")
    assert (await store.acquire_slot(_request("a", limit=1))).granted
    assert not (await store.acquire_slot(_request("low", limit=1, priority=1))).granted
    assert not (await store.acquire_slot(_request("high", limit=1, priority=8))).granted
    woken = await store.release_slot("customer-7", "a")
    assert [w.holder for w in woken] == ["high"]
    assert not (await store.acquire_slot(_request("low", limit=1, priority=1))).granted
    assert (await store.acquire_slot(_request("high", limit=1, priority=8))).granted


async def test_a_finished_workflow_holds_and_waits_for_nothing(
    provider: PersistenceProvider,
) -> None:
    store = _store(provider)
    await _workflows(provider, "a", "b", "c")
    assert (await store.acquire_slot(_request("a", limit=1))).granted
    assert not (await store.acquire_slot(_request("b", limit=1))).granted
    assert not (await store.acquire_slot(_request("c", limit=1))).granted
    for workflow_id in ("a", "b"):  # a ends holding its slot, b ends waiting
        record = await provider.load_workflow(workflow_id)
        record.status = WorkflowStatus.CANCELLED
        await provider.save_workflow(record, expected_version=record.version)
    assert (await store.acquire_slot(_request("c", limit=1))).granted
    assert _line(await store.list_slots()) == [("c", SlotState.HOLDING)]


async def test_a_dead_process_holds_no_slot(provider: PersistenceProvider) -> None:
    """A holder on this host lives as long as its process; one elsewhere, its lease."""
    store = _store(provider)
    await _workflows(provider, "gone", "far", "next")
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead = f"{HOST}:{child.stdout.strip()}"
    assert (await store.acquire_slot(_request("gone", limit=2, owner=dead))).granted
    far = _request("far", limit=2, owner="another-host:1", lease_seconds=0.3)
    assert (await store.acquire_slot(far)).granted
    assert [r.holder for r in await store.list_slots()] == ["far"]
    assert (await store.acquire_slot(_request("next", limit=2))).granted
    assert not (await store.acquire_slot(_request("next/x", limit=2, workflow_id="next"))).granted
    await asyncio.sleep(0.4)  # far's lease lapses
    assert (await store.acquire_slot(_request("next/x", limit=2, workflow_id="next"))).granted


async def test_a_workflows_own_slot_lives_until_the_workflow_ends(
    provider: PersistenceProvider,
) -> None:
    store = _store(provider)
    await _workflows(provider, "a", "b")
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    # Its process is gone and the run it was taken under never existed: the workflow is not.
    gone = _request("a", limit=1, step_name=None, owner=f"{HOST}:{child.stdout.strip()}",
                    run_id=424242)  # fmt: skip
    assert (await store.acquire_slot(gone)).granted
    assert not (await store.acquire_slot(_request("b", limit=1, step_name=None))).granted
    record = await provider.load_workflow("a")
    record.status = WorkflowStatus.COMPLETED
    await provider.save_workflow(record, expected_version=record.version)
    assert (await store.acquire_slot(_request("b", limit=1, step_name=None))).granted


async def test_a_waiter_whose_process_died_leaves_the_line(provider: PersistenceProvider) -> None:
    store = _store(provider)
    await _workflows(provider, "a", "b", "c")
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert (await store.acquire_slot(_request("a", limit=1))).granted
    dead = _request("b", limit=1, owner=f"{HOST}:{child.stdout.strip()}")
    assert not (await store.acquire_slot(dead)).granted
    assert (await store.acquire_slot(_request("c", limit=1))).ahead == 0  # b is gone
    assert [w.holder for w in await store.release_slot("customer-7", "a")] == ["c"]


async def test_a_live_process_keeps_its_slot_past_its_lease(provider: PersistenceProvider) -> None:
    store = _store(provider)
    await _workflows(provider, "a", "b")
    mine = _request("a", limit=1, lease_seconds=0.05)
    assert mine.owner == f"{HOST}:{os.getpid()}"
    assert (await store.acquire_slot(mine)).granted
    await asyncio.sleep(0.1)
    assert not (await store.acquire_slot(_request("b", limit=1))).granted


async def test_rate_cells_reserve_turns_of_burst_then_one_per_interval(
    provider: PersistenceProvider,
) -> None:
    store = _store(provider)
    first = time.monotonic()
    waits = []
    for _ in range(10):
        asked = time.monotonic() - first
        waits.append((asked, await store.reserve_rate("api", 20.0, 5)))
    assert [wait for _, wait in waits[:5]] == [0.0] * 5
    for k, (asked, wait) in enumerate(waits[5:], start=1):
        # the k-th past the burst is due k intervals after the first call, however slow the
        # calls themselves were
        assert asked + wait == pytest.approx(0.05 * k, abs=0.02)
    # Another key has its own cell; a cell drains with time.
    assert await store.reserve_rate("other", 1.0, 1) == 0.0
    assert await store.reserve_rate("other", 1.0, 1) == pytest.approx(1.0, abs=0.05)


async def test_records_name_their_workflow_step_and_since(provider: PersistenceProvider) -> None:
    store = _store(provider)
    await _workflows(provider, "a")
    request = dataclasses.replace(_request("a/Charge", workflow_id="a"), step_name="Charge",
                                  priority=4)  # fmt: skip
    assert (await store.acquire_slot(request)).granted
    (record,) = await store.list_slots("customer-7")
    assert (record.workflow_id, record.step_name, record.priority, record.limit) == (
        "a",
        "Charge",
        4,
        2,
    )
    assert record.owner == owner_here() and record.since.tzinfo is not None


async def test_taking_a_turn_counts_calls_as_they_start_and_never_queues(
    provider: PersistenceProvider,
) -> None:
    store = _store(provider)
    first = time.monotonic()

    async def take_now() -> None:
        """Take a turn, waiting as told (at most the guard, within the burst)."""
        while (wait := await store.take_rate("api", 10.0, 3)) > 0:
            assert wait <= RATE_GUARD + 0.001
            await asyncio.sleep(wait)

    for _ in range(3):  # the burst: at once, but for the guard the cell keeps in hand
        await take_now()
    # Past the burst the next turn opens one interval (+ the guard) after the first call;
    # asking twice takes nothing and names the same instant (no reservation piles up).
    opens = []
    for _ in range(2):
        asked = time.monotonic() - first
        wait = await store.take_rate("api", 10.0, 3)
        if wait == 0:  # this machine was slower than the interval: the turn was free
            return
        opens.append(asked + wait)
    assert opens[0] == pytest.approx(0.1 + RATE_GUARD, abs=0.03)
    assert opens[1] == pytest.approx(opens[0], abs=0.01)
    await asyncio.sleep(max(opens[1] - (time.monotonic() - first), 0) + 0.005)
    assert await store.take_rate("api", 10.0, 3) == 0.0
    # The reservations of the same key are another cell.
    assert await store.reserve_rate("api", 10.0, 3) == 0.0
