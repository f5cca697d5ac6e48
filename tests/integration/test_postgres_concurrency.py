"""32 threads race to advance one workflow on PostgreSQL through the event-loop bridge.

Every thread loads its own ``Workflow`` object of the same workflow (all at the same version)
and calls ``next_step`` through ``bridge.run`` at the same moment. The version fence must let
exactly one transition per version commit; every other thread gets ``ConcurrencyConflict``, and
the audit log holds exactly the rows of the committed transitions: the same rows, in the same
order, as an uncontended run of the same workflow.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ruvon.bridge import EventLoopBridge
from ruvon.builder import WorkflowBuilder
from ruvon.errors import ConcurrencyConflict
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.models import WorkflowStatus
from ruvon.testing.postgres import TestPostgresProvider, make_test_postgres_provider

THREADS = 32
STEPS = 4
TIMEOUT = 30.0


def bump(state: dict[str, Any], context: Any) -> dict[str, Any]:
    """Each committed step adds one: a lost update or a double commit shows in the counter."""
    return {"counter": state.get("counter", 0) + 1, "history": [*state.get("history", []), 1]}


@pytest.fixture
def bridge() -> Iterator[EventLoopBridge]:
    bridge = EventLoopBridge(name="ruvon-test-concurrency")
    yield bridge
    bridge.close()


@pytest.fixture
def provider(bridge: EventLoopBridge, tmp_path: Path) -> Iterator[TestPostgresProvider]:
    # Created on the bridge loop: the pool belongs to that loop. One connection per thread, so
    # the race happens in the database, not in the pool's queue.
    provider = bridge.run(make_test_postgres_provider(tmp_path, pool_max_size=THREADS), TIMEOUT)
    assert isinstance(provider, TestPostgresProvider)
    yield provider
    bridge.run(provider.close(), TIMEOUT)


def make_builder(provider: TestPostgresProvider) -> WorkflowBuilder:
    builder = WorkflowBuilder(
        persistence_provider=provider, execution_provider=SyncExecutionProvider()
    )
    builder.register_workflow_inline(
        "Race", steps=[{"name": f"step_{i}", "function": bump} for i in range(STEPS)]
    )
    return builder


def audit_rows(
    bridge: EventLoopBridge, provider: TestPostgresProvider, workflow_id: str
) -> list[tuple[str | None, ...]]:
    entries = bridge.run(provider.get_audit_log(workflow_id), TIMEOUT)
    return [(e.event_type, e.step_name, e.old_status, e.new_status) for e in entries]


def test_one_transition_per_version_commits(
    bridge: EventLoopBridge, provider: TestPostgresProvider
) -> None:
    builder = make_builder(provider)
    workflow_id = bridge.run(builder.create_workflow("Race", {"counter": 0}), TIMEOUT).id
    start = threading.Barrier(THREADS, timeout=TIMEOUT)

    def contender(expected_version: int) -> str:
        workflow = bridge.run(builder.load_workflow(workflow_id), TIMEOUT)
        assert workflow.record.version == expected_version
        start.wait()  # everyone holds a copy at the same version before anyone writes
        try:
            bridge.run(workflow.next_step(), TIMEOUT)
        except ConcurrencyConflict as exc:
            assert exc.workflow_id == workflow_id
            assert exc.expected_version == expected_version
            return "conflict"
        assert workflow.record.version == expected_version + 1
        return "committed"

    with ThreadPoolExecutor(THREADS) as threads:
        for round_number in range(STEPS):
            version = 1 + round_number
            outcomes = list(threads.map(contender, [version] * THREADS))
            assert outcomes.count("committed") == 1, outcomes
            assert outcomes.count("conflict") == THREADS - 1
            stored = bridge.run(provider.load_workflow(workflow_id), TIMEOUT)
            assert stored.version == version + 1
            assert stored.state["counter"] == round_number + 1

    final = bridge.run(provider.load_workflow(workflow_id), TIMEOUT)
    assert final.status is WorkflowStatus.COMPLETED
    assert final.state == {"counter": STEPS, "history": [1] * STEPS}

    # The same workflow advanced by one caller writes the reference audit log.
    reference = bridge.run(builder.create_workflow("Race", {"counter": 0}), TIMEOUT)
    for _ in range(STEPS):
        bridge.run(reference.next_step(), TIMEOUT)
    expected = audit_rows(bridge, provider, reference.id)
    assert len(expected) > STEPS
    assert audit_rows(bridge, provider, workflow_id) == expected
