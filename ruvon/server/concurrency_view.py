"""Concurrency slots as the control plane shows them: per key, who holds and who waits.

Read from the store's :class:`~ruvon.providers.flow_control.FlowControl` (``list_slots``),
which answers live holders first, then waiters in the order they will be served; a waiter's
position is its place in that order. Nothing here is stored for the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from ruvon.providers.flow_control import FlowControl, SlotRecord, SlotState
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import WorkflowRecord
from ruvon.server.models import ConcurrencyKey, ConcurrencyView, SlotItem, WorkflowSlot
from ruvon.server.problems import ApiProblem

#: The longest ``?key=`` filter accepted (a rendered key is short; this bounds the query).
MAX_KEY_TEXT = 512


def _item(slot: SlotRecord, position: int | None) -> SlotItem:
    return SlotItem(
        workflow_id=slot.workflow_id,
        step_name=slot.step_name,
        holder=slot.holder,
        priority=slot.priority,
        since=slot.since,
        position=position,
        run_id=slot.run_id,
        owner=slot.owner,
    )


def _key(key: str, slots: Sequence[SlotRecord]) -> ConcurrencyKey:
    holding = [s for s in slots if s.state is SlotState.HOLDING]
    waiting = [s for s in slots if s.state is SlotState.WAITING]
    # Each holder stored the limit it asked with; they differ only while a changed definition
    # rolls out. The first waiter's is the one that decides when the line moves, so show it.
    deciding = (waiting or holding)[0]
    return ConcurrencyKey(
        key=key,
        limit=deciding.limit,
        holding=[_item(s, None) for s in holding],
        waiting=[_item(s, n) for n, s in enumerate(waiting, start=1)],
    )


def flow_control_of(persistence: PersistenceProvider) -> FlowControl:
    """The store's slots, or a 501 saying this store keeps none (every built-in one does)."""
    if not isinstance(persistence, FlowControl):
        raise ApiProblem(
            501,
            "not_supported",
            f"{type(persistence).__name__} keeps no concurrency slots: it does not implement "
            "ruvon.providers.flow_control.FlowControl",
        )
    return persistence


async def concurrency_view(
    persistence: PersistenceProvider, key: str | None, *, workflow_id: str | None = None
) -> ConcurrencyView:
    """Every key with a live holder or waiter (or just ``key``; or the keys ``workflow_id``
    holds or waits for), keys sorted, each with its whole line."""
    slots = await flow_control_of(persistence).list_slots(key, workflow_id=workflow_id)
    # list_slots groups by key already (keys sorted); sorting again is stable and cheap, and
    # keeps the answer right for a store that only promises the order within a key.
    ordered = sorted(slots, key=lambda s: s.key)
    return ConcurrencyView(keys=[_key(k, list(g)) for k, g in groupby(ordered, lambda s: s.key)])


def slots_of(view: ConcurrencyView, workflow_id: str) -> list[WorkflowSlot]:
    """The slots ``workflow_id`` holds or waits for (its own and its steps'), by key."""
    found: list[WorkflowSlot] = []
    for line in view.keys:
        for state, items in (("HOLDING", line.holding), ("WAITING", line.waiting)):
            found += [
                WorkflowSlot(
                    key=line.key,
                    state=state,
                    step_name=item.step_name,
                    holder=item.holder,
                    limit=line.limit,
                    position=item.position,
                )
                for item in items
                if item.workflow_id == workflow_id
            ]
    return found


async def workflow_slots(
    persistence: PersistenceProvider, record: WorkflowRecord
) -> list[WorkflowSlot] | None:
    """What one workflow holds or waits for; None when the store keeps no slots.

    An ended workflow holds nothing (a slot lives only while its workflow is unfinished), so it
    costs no read. Only the lines of the keys it is in are read, whole (a waiter's position
    needs its line).
    """
    if not isinstance(persistence, FlowControl):
        return None
    if record.status.is_terminal:
        return []
    view = await concurrency_view(persistence, None, workflow_id=record.id)
    return slots_of(view, record.id)
