"""Concurrency keys and rate limits, embedded: every store x executor.

Embedded, a gated step's process waits for its slot or its rate-limit turn (the store keeps
the line, so slots still go in order); the workers' deferral is tested in
tests/integration/test_distributed_flow_control.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ruvon.errors import StepFunctionError
from ruvon.models import WorkflowStatus
from ruvon.providers.flow_control import FlowControl, SlotState
from ruvon.testing.providers import EngineUnderTest
from tests.contract.flow_control import steps

STEPS = "tests.contract.flow_control.steps"


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    steps.reset()
    yield


def _registry(directory: Path) -> Path:
    files = {
        "per_customer.yaml": (
            "workflow_type: PerCustomer\nsteps:\n"
            f"  - name: Call\n    function: {STEPS}.call_customer_api\n"
            "    concurrency: {key: 'customer-{{ state.customer }}', limit: 2}\n"
            f"  - {{name: After, function: {STEPS}.noop}}\n"
        ),
        "one_at_a_time.yaml": (
            "workflow_type: OneAtATime\nconcurrency: {key: 'tenant-{{ state.customer }}', "
            "limit: 1}\nsteps:\n"
            f"  - {{name: Call, function: {STEPS}.call_customer_api}}\n"
            "  - {name: Approve, type: HUMAN_IN_LOOP, function: "
            f"{STEPS}.noop}}\n"
        ),
        "impatient.yaml": (
            "workflow_type: Impatient\ntimeout: 0.4\n"
            "concurrency: {key: 'tenant-{{ state.customer }}', limit: 1}\nsteps:\n"
            f"  - {{name: Call, function: {STEPS}.call_customer_api}}\n"
        ),
        "rated.yaml": (
            "workflow_type: Rated\nsteps:\n"
            f"  - name: Stamp\n    function: {STEPS}.stamp\n"
            "    rate_limit: {key: partner-api, per_second: 20, burst: 2}\n"
        ),
        "queued_a.yaml": (
            "workflow_type: QueuedA\nsteps:\n"
            f"  - {{name: Call, function: {STEPS}.call_customer_api, queue: partner}}\n"
        ),
        "queued_b.yaml": (
            "workflow_type: QueuedB\nsteps:\n"
            f"  - {{name: Other, function: {STEPS}.call_customer_api, queue: partner}}\n"
        ),
        "queued_rate.yaml": (
            "workflow_type: QueuedRate\nsteps:\n"
            f"  - {{name: Stamp, function: {STEPS}.stamp, queue: throttled}}\n"
        ),
        "bad_key.yaml": (
            "workflow_type: BadKey\nsteps:\n"
            f"  - name: Call\n    function: {STEPS}.call_customer_api\n"
            "    concurrency: {key: '{{ state.nobody }}', limit: 2}\n"
        ),
    }
    lines = ["workflows:"]
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
        kind = text.split("\n", 1)[0].removeprefix("workflow_type: ")
        lines.append(f"  - {{type: {kind}, config_file: {name}}}")
    lines += [
        "queues:",
        "  partner: {max_concurrency: 1, rate_limit: {per_second: 50, burst: 1}}",
        "  throttled: {rate_limit: {per_second: 20}}",
    ]
    path = directory / "flow_registry.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_a_step_key_caps_its_holders_and_the_rest_wait_their_turn(
    engine: EngineUnderTest,
) -> None:
    builder = engine.new_builder(_registry(engine.scratch_dir))
    seven = [await builder.create_workflow("PerCustomer", {"customer": 7, "hold": 0.1})
             for _ in range(5)]  # fmt: skip
    other = await builder.create_workflow("PerCustomer", {"customer": 8, "hold": 0.1})
    finals = await asyncio.gather(*(wf.run() for wf in [*seven, other]))
    assert set(finals) == {WorkflowStatus.COMPLETED}
    assert steps.PEAK == {"7": 2, "8": 1}  # never more than the limit; another key unaffected
    # Nothing is left held or waiting once all ran.
    store = engine.persistence
    assert isinstance(store, FlowControl)
    assert await store.list_slots() == []


async def test_a_workflow_key_admits_one_workflow_until_it_ends(engine: EngineUnderTest) -> None:
    builder = engine.new_builder(_registry(engine.scratch_dir))
    first = await builder.create_workflow("OneAtATime", {"customer": 1})
    assert await first.run() is WorkflowStatus.WAITING_HUMAN  # in flight: it holds the slot
    second = await builder.create_workflow("OneAtATime", {"customer": 1})
    elsewhere = await builder.create_workflow("OneAtATime", {"customer": 2})
    assert await elsewhere.run() is WorkflowStatus.WAITING_HUMAN  # its own key
    waiting = asyncio.ensure_future(second.run())
    await asyncio.sleep(0.3)
    assert not waiting.done()
    store = engine.persistence
    assert isinstance(store, FlowControl)
    line = [(s.workflow_id, s.state) for s in await store.list_slots("tenant-1")]
    assert line == [(first.id, SlotState.HOLDING), (second.id, SlotState.WAITING)]
    assert steps.STARTED and all(w != second.id for w, _ in steps.STARTED)
    await first.cancel("make room")
    assert await asyncio.wait_for(waiting, 10) is WorkflowStatus.WAITING_HUMAN
    audit = [e.event_type for e in await engine.persistence.get_audit_log(second.id)]
    assert "WORKFLOW_ADMITTED" in audit


async def test_a_workflow_waiting_for_a_slot_fails_at_its_deadline(
    engine: EngineUnderTest,
) -> None:
    builder = engine.new_builder(_registry(engine.scratch_dir))
    first = await builder.create_workflow("OneAtATime", {"customer": 4})
    assert await first.run() is WorkflowStatus.WAITING_HUMAN
    late = await builder.create_workflow("Impatient", {"customer": 4})
    started = time.monotonic()
    assert await asyncio.wait_for(late.run(), 10) is WorkflowStatus.FAILED
    assert 0.3 <= time.monotonic() - started < 5
    stored = await engine.persistence.load_workflow(late.id)
    assert "WorkflowTimeoutError" in (stored.error or "")
    events = [e.event_type for e in await engine.persistence.get_audit_log(late.id)]
    assert "WORKFLOW_TIMED_OUT" in events
    store = engine.persistence
    assert isinstance(store, FlowControl)
    assert [s.workflow_id for s in await store.list_slots("tenant-4")] == [first.id]
    assert all(w != late.id for w, _ in steps.STARTED)
    await first.cancel("done")


async def test_a_rate_limit_spaces_calls_to_its_rate_after_the_burst(
    engine: EngineUnderTest,
) -> None:
    """The store lets 2 calls at once, then one per 50 ms: the k-th call (from 0) starts no
    sooner than k - 1 intervals after the calls were asked for. (That they start no later is
    up to the executor and the machine: the bench measures the window on an idle one.)"""
    builder = engine.new_builder(_registry(engine.scratch_dir))
    flows = [await builder.create_workflow("Rated", {}) for _ in range(8)]
    asked = time.monotonic()
    finals = await asyncio.gather(*(wf.run() for wf in flows))
    assert set(finals) == {WorkflowStatus.COMPLETED}
    times = sorted(t for _, t in steps.STARTED)
    assert len(times) == 8
    for k, at in enumerate(times):
        assert at - asked >= max(k - 1, 0) * 0.05 - 0.002, (k, at - asked)


async def test_a_queues_limits_gate_every_step_on_it_whatever_its_workflow(
    engine: EngineUnderTest,
) -> None:
    builder = engine.new_builder(_registry(engine.scratch_dir))
    flows = [await builder.create_workflow(kind, {"customer": "same", "hold": 0.05})
             for kind in ("QueuedA", "QueuedB", "QueuedA", "QueuedB")]  # fmt: skip
    finals = await asyncio.gather(*(wf.run() for wf in flows))
    assert set(finals) == {WorkflowStatus.COMPLETED}
    assert steps.PEAK == {"same": 1}  # max_concurrency 1 across both workflow types
    times = sorted(t for _, t in steps.STARTED)
    assert all(b - a >= 0.02 - 0.005 for a, b in itertools.pairwise(times))


async def test_a_queues_rate_limit_spaces_its_steps(engine: EngineUnderTest) -> None:
    builder = engine.new_builder(_registry(engine.scratch_dir))
    flows = [await builder.create_workflow("QueuedRate", {}) for _ in range(5)]
    assert set(await asyncio.gather(*(wf.run() for wf in flows))) == {WorkflowStatus.COMPLETED}
    times = sorted(t for _, t in steps.STARTED)
    assert times[-1] - times[0] >= 4 * 0.05 - 0.01  # burst 1: one per 50 ms


async def test_a_key_that_cannot_render_fails_the_workflow_naming_step_and_field(
    engine: EngineUnderTest,
) -> None:
    builder = engine.new_builder(_registry(engine.scratch_dir))
    wf = await builder.create_workflow("BadKey", {"customer": 1})
    with pytest.raises(StepFunctionError, match=r"step 'Call'.*concurrency\.key .*nobody"):
        await wf.next_step()
    stored = await engine.persistence.load_workflow(wf.id)
    assert stored.status is WorkflowStatus.FAILED
    assert "concurrency.key" in (stored.error or "") and "Call" in (stored.error or "")
    assert steps.STARTED == []  # the function never ran
