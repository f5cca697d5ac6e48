"""The PersistenceProvider contract, run against every provider.

Each test takes the ``provider`` fixture (one instance per parametrized backend) or the
``make_provider`` factory when it needs constructor options. Backend-specific behaviour (files,
URLs, reopening) sits at the end, marked by the backend in its name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ruvon.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    PersistenceError,
    StateTooLargeError,
    StateValidationError,
    WorkflowNotFound,
)
from ruvon.implementations.persistence.memory import (
    InMemoryPersistenceProvider,
    MemoryPersistenceProvider,
)
from ruvon.implementations.persistence.sqlite import SQLitePersistenceProvider
from ruvon.implementations.persistence.sqlite.checkpoint import BackgroundCheckpointer
from ruvon.models import WorkflowStatus
from ruvon.providers.changes import ChangePosition, WorkflowChange, WorkflowChanges
from ruvon.providers.ledger import RunLedger
from ruvon.providers.persistence import PersistenceProvider
from ruvon.providers.runs import RunKind, RunRequest, RunStatus, WorkWrites
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    ListPosition,
    ScheduleRecord,
    SignalRecord,
    WorkflowRecord,
)
from ruvon.testing.postgres import new_test_postgres_provider
from ruvon.testing.redis import new_test_redis_provider

BACKENDS = ["memory", "sqlite", "postgres", "redis"]
T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
INJECTION = "x'); DROP TABLE workflow_executions;--"

MakeProvider = Callable[..., PersistenceProvider]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_provider(backend: str, tmp_path: Path) -> AsyncIterator[MakeProvider]:
    """Build initialized providers of the current backend; all are closed after the test."""
    made: list[PersistenceProvider] = []

    def make(**options: Any) -> PersistenceProvider:
        provider: PersistenceProvider
        if backend == "memory":
            provider = MemoryPersistenceProvider(**options)
        elif backend == "postgres":
            provider = new_test_postgres_provider(**options)
        elif backend == "redis":
            provider = new_test_redis_provider(**options)
        else:
            provider = SQLitePersistenceProvider(tmp_path / f"ruvon-{len(made)}.db", **options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.close()


@pytest.fixture
async def provider(make_provider: MakeProvider) -> PersistenceProvider:
    provider = make_provider()
    await provider.initialize()
    return provider


def make_record(workflow_id: str = "wf-1", **overrides: Any) -> WorkflowRecord:
    """A record with every field set to something other than its default."""
    fields: dict[str, Any] = {
        "id": workflow_id,
        "workflow_type": "OrderFlow",
        "status": WorkflowStatus.ACTIVE,
        "state": {"order": {"id": 7, "items": [1, [2, [3]]], "total": 12.5}, "ok": True},
        "definition_snapshot": {"workflow_type": "OrderFlow", "steps": [{"name": "a"}]},
        "current_step": 1,
        "workflow_version": "1.2",
        "parent_execution_id": "parent-1",
        "blocked_on_child_id": "child-1",
        "idempotency_key": None,
        "saga_mode": True,
        "completed_steps": ["a"],
        "run_at": T0 + timedelta(minutes=5),
        "error": "boom",
        "runtime": {"attempt": 2},
        "metadata": {"source": "test", "tags": ["x"]},
        "data_region": "eu-1",
        "priority": 3,
        "owner_id": "owner-1",
        "org_id": "org-1",
        "created_at": T0,
        "updated_at": T0 + timedelta(seconds=1),
        "completed_at": T0 + timedelta(seconds=2),
        "deadline_at": T0 + timedelta(minutes=30),
    }
    fields.update(overrides)
    return WorkflowRecord(**fields)


def audit(workflow_id: str, event: str, **details: Any) -> AuditEntry:
    return AuditEntry(workflow_id, event, step_name="a", old_status="ACTIVE",
                      new_status="ACTIVE", details=details, recorded_at=T0)  # fmt: skip


async def test_providers_satisfy_the_protocol(provider: PersistenceProvider) -> None:
    assert isinstance(provider, PersistenceProvider)
    assert InMemoryPersistenceProvider is MemoryPersistenceProvider


async def test_create_then_load_round_trips_every_field(provider: PersistenceProvider) -> None:
    record = make_record()
    stored, created = await provider.create_workflow(record)
    assert created and stored.version == 1 and record.version == 1
    loaded = await provider.load_workflow("wf-1")
    assert loaded == record
    for field in dataclasses.fields(WorkflowRecord):
        assert getattr(loaded, field.name) == getattr(record, field.name), field.name
    assert loaded.status is WorkflowStatus.ACTIVE
    for name in ("run_at", "created_at", "updated_at", "completed_at"):
        assert getattr(loaded, name).utcoffset() == timedelta(0), name


async def test_create_with_defaults_round_trips(provider: PersistenceProvider) -> None:
    record = WorkflowRecord("wf-min", "T", WorkflowStatus.ACTIVE, {}, {})
    await provider.create_workflow(record)
    assert await provider.load_workflow("wf-min") == record


async def test_duplicate_id_without_key_is_an_error(provider: PersistenceProvider) -> None:
    await provider.create_workflow(make_record())
    with pytest.raises(PersistenceError, match="wf-1"):
        await provider.create_workflow(make_record(state={"other": 1}))
    assert (await provider.load_workflow("wf-1")).state == make_record().state


async def test_create_is_idempotent_per_key(provider: PersistenceProvider) -> None:
    first, created = await provider.create_workflow(
        make_record("wf-1", idempotency_key="k1"), audit=[audit("wf-1", "CREATED")]
    )
    second, created_again = await provider.create_workflow(
        make_record("wf-2", idempotency_key="k1"), audit=[audit("wf-2", "CREATED")]
    )
    assert (created, created_again) == (True, False)
    assert second == first and second.id == "wf-1"
    assert await provider.find_by_idempotency_key("k1") == first
    assert await provider.find_by_idempotency_key("unknown") is None
    with pytest.raises(WorkflowNotFound):
        await provider.load_workflow("wf-2")
    assert len(await provider.get_audit_log("wf-1")) == 1


async def test_concurrent_creates_with_one_key_insert_once(provider: PersistenceProvider) -> None:
    results = await asyncio.gather(
        *(provider.create_workflow(make_record(f"wf-{i}", idempotency_key="k")) for i in range(8))
    )
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert len({record.id for record, _ in results}) == 1
    assert len(await provider.list_workflows()) == 1


async def test_save_bumps_the_version_and_writes(provider: PersistenceProvider) -> None:
    record, _ = await provider.create_workflow(make_record())
    record.state = {"step": 2}
    record.status = WorkflowStatus.COMPLETED
    assert await provider.save_workflow(record, expected_version=1) == 2
    assert record.version == 2
    assert await provider.save_workflow(record, expected_version=2) == 3
    loaded = await provider.load_workflow("wf-1")
    assert loaded == record and loaded.version == 3


async def test_save_leaves_the_fields_fixed_at_creation(provider: PersistenceProvider) -> None:
    record, _ = await provider.create_workflow(make_record())
    created = (record.workflow_type, record.definition_snapshot, record.created_at)
    record.workflow_type = "Renamed"
    record.definition_snapshot = {"edited": True}
    record.created_at = record.created_at.replace(year=2001)
    record.state = {"step": 2}
    await provider.save_workflow(record, expected_version=1)
    loaded = await provider.load_workflow("wf-1")
    assert (loaded.workflow_type, loaded.definition_snapshot, loaded.created_at) == created
    assert loaded.state == {"step": 2} and loaded.version == 2


async def test_save_can_change_keys_and_parent(provider: PersistenceProvider) -> None:
    record, _ = await provider.create_workflow(make_record(idempotency_key="old"))
    await provider.create_workflow(make_record("wf-2", idempotency_key="taken"))
    record.idempotency_key, record.parent_execution_id = "new", "parent-2"
    await provider.save_workflow(record, expected_version=1)
    assert await provider.find_by_idempotency_key("new") == record
    assert await provider.find_by_idempotency_key("old") is None
    assert [r.id for r in await provider.list_workflows(parent_execution_id="parent-2")] == ["wf-1"]
    record.idempotency_key = "taken"
    with pytest.raises(PersistenceError):
        await provider.save_workflow(record, expected_version=2)
    assert (await provider.load_workflow("wf-1")).idempotency_key == "new"


async def test_stale_save_conflicts_and_writes_nothing(provider: PersistenceProvider) -> None:
    await provider.create_workflow(make_record())
    winner = await provider.load_workflow("wf-1")
    loser = await provider.load_workflow("wf-1")
    winner.state = {"by": "winner"}
    await provider.save_workflow(winner, expected_version=1, audit=[audit("wf-1", "WIN")])
    loser.state = {"by": "loser"}
    with pytest.raises(ConcurrencyConflict) as caught:
        await provider.save_workflow(loser, expected_version=1, audit=[audit("wf-1", "LOSE")])
    assert caught.value.workflow_id == "wf-1" and caught.value.expected_version == 1
    assert loser.version == 1  # untouched by the failed save
    stored = await provider.load_workflow("wf-1")
    assert stored.state == {"by": "winner"} and stored.version == 2
    assert [entry.event_type for entry in await provider.get_audit_log("wf-1")] == ["WIN"]


async def test_unknown_ids_raise_workflow_not_found(provider: PersistenceProvider) -> None:
    with pytest.raises(WorkflowNotFound, match="nope"):
        await provider.load_workflow("nope")
    with pytest.raises(WorkflowNotFound):
        await provider.save_workflow(make_record("nope"), expected_version=1)
    with pytest.raises(WorkflowNotFound):
        await provider.append_execution_log(ExecutionLogEntry("nope", "INFO", "hi"))
    with pytest.raises(WorkflowNotFound):
        await provider.save_workflow(
            make_record("nope"),
            expected_version=1,
            compensations=[CompensationEntry("nope", "a", "m.f", True)],
        )
    assert await provider.get_audit_log("nope") == []
    assert await provider.get_execution_logs("nope") == []
    assert await provider.get_compensation_log("nope") == []


async def test_audit_for_an_unknown_workflow_writes_nothing(
    provider: PersistenceProvider,
) -> None:
    record, _ = await provider.create_workflow(make_record())
    record.state = {"changed": True}
    with pytest.raises(WorkflowNotFound, match="ghost"):
        await provider.save_workflow(record, expected_version=1, audit=[audit("ghost", "X")])
    assert (await provider.load_workflow("wf-1")).version == 1


async def test_a_failed_audit_insert_rolls_the_whole_save_back(
    provider: PersistenceProvider,
) -> None:
    created = [audit("wf-1", "CREATED")]
    record, _ = await provider.create_workflow(make_record(), audit=created)
    record.state, record.status = {"changed": True}, WorkflowStatus.COMPLETED
    # The fenced UPDATE and the first audit row succeed; the second row fails.
    entries = [audit("wf-1", "FIRST"), audit("ghost", "X")]
    with pytest.raises(WorkflowNotFound, match="ghost"):
        await provider.save_workflow(record, expected_version=1, audit=entries)
    stored = await provider.load_workflow("wf-1")
    assert stored == make_record(version=1)
    assert await provider.get_audit_log("wf-1") == created
    assert await provider.list_workflows(status=WorkflowStatus.COMPLETED) == []
    # Nothing was left half-open: the same save, with good audit rows, goes through.
    assert await provider.save_workflow(record, expected_version=1, audit=entries[:1]) == 2
    assert await provider.get_audit_log("wf-1") == [*created, entries[0]]


async def test_a_failed_create_writes_nothing(provider: PersistenceProvider) -> None:
    with pytest.raises(WorkflowNotFound, match="ghost"):
        await provider.create_workflow(
            make_record(), audit=[audit("wf-1", "CREATED"), audit("ghost", "X")]
        )
    with pytest.raises(WorkflowNotFound):
        await provider.load_workflow("wf-1")
    assert await provider.get_audit_log("wf-1") == []
    record, created = await provider.create_workflow(make_record())
    assert created and record.version == 1


async def test_concurrent_saves_of_one_version_let_exactly_one_win(
    provider: PersistenceProvider,
) -> None:
    await provider.create_workflow(make_record())
    copies = [await provider.load_workflow("wf-1") for _ in range(6)]
    for n, copy in enumerate(copies):
        copy.state = {"by": n}
    outcomes = await asyncio.gather(
        *(
            provider.save_workflow(copy, expected_version=1, audit=[audit("wf-1", f"BY_{n}")])
            for n, copy in enumerate(copies)
        ),
        return_exceptions=True,
    )
    winners = [n for n, outcome in enumerate(outcomes) if outcome == 2]
    assert len(winners) == 1, outcomes
    losers = [outcome for n, outcome in enumerate(outcomes) if n not in winners]
    assert all(isinstance(outcome, ConcurrencyConflict) for outcome in losers), outcomes
    stored = await provider.load_workflow("wf-1")
    assert stored.version == 2 and stored.state == {"by": winners[0]}
    assert [e.event_type for e in await provider.get_audit_log("wf-1")] == [f"BY_{winners[0]}"]


async def test_concurrent_fenced_increments_lose_no_update(provider: PersistenceProvider) -> None:
    await provider.create_workflow(make_record(state={"n": 0}))
    tasks, rounds = 4, 5

    async def increment(task: int) -> int:
        conflicts = 0
        for _ in range(rounds):
            while True:
                record = await provider.load_workflow("wf-1")
                record.state = {"n": record.state["n"] + 1}
                try:
                    await provider.save_workflow(
                        record, expected_version=record.version, audit=[audit("wf-1", f"T{task}")]
                    )
                    break
                except ConcurrencyConflict:
                    conflicts += 1
        return conflicts

    await asyncio.gather(*(increment(task) for task in range(tasks)))
    stored = await provider.load_workflow("wf-1")
    assert stored.state == {"n": tasks * rounds} and stored.version == 1 + tasks * rounds
    assert len(await provider.get_audit_log("wf-1")) == tasks * rounds


async def test_saves_move_a_workflow_between_status_and_timer_queries(
    provider: PersistenceProvider,
) -> None:
    now = T0 + timedelta(hours=1)
    record, _ = await provider.create_workflow(make_record(run_at=None))

    async def seen() -> tuple[list[str], list[str], list[str]]:
        waiting = await provider.list_workflows(status=WorkflowStatus.WAITING_TIMER)
        active = await provider.list_workflows(status=WorkflowStatus.ACTIVE)
        return [r.id for r in waiting], [r.id for r in active], await provider.list_due_timers(now)

    assert await seen() == ([], ["wf-1"], [])
    record.status = WorkflowStatus.WAITING_TIMER
    record.run_at = (now - timedelta(minutes=1)).astimezone(timezone(timedelta(hours=-5)))
    await provider.save_workflow(record, expected_version=1)
    assert await seen() == (["wf-1"], [], ["wf-1"])
    record.state = {"only": "the state changes"}
    await provider.save_workflow(record, expected_version=2)
    assert await seen() == (["wf-1"], [], ["wf-1"])
    record.run_at = now + timedelta(minutes=1)  # the timer moves, the status stays
    await provider.save_workflow(record, expected_version=3)
    assert await seen() == (["wf-1"], [], [])
    record.status, record.run_at = WorkflowStatus.ACTIVE, None
    await provider.save_workflow(record, expected_version=4)
    assert await seen() == ([], ["wf-1"], [])
    loaded = await provider.load_workflow("wf-1")
    assert loaded == record and loaded.version == 5


async def test_list_workflows_filters_and_orders_newest_first(
    provider: PersistenceProvider,
) -> None:
    specs = [  # id, type, status, parent, created_at offset (s)
        ("a", "T1", WorkflowStatus.ACTIVE, None, 0),
        ("b", "T1", WorkflowStatus.COMPLETED, "p", 2),
        ("c", "T2", WorkflowStatus.ACTIVE, "p", 1),
        ("d", "T2", WorkflowStatus.ACTIVE, None, 1),  # ties with c: the larger id first
        ("e", "T1", WorkflowStatus.ACTIVE, "p", 3),
    ]
    for wid, kind, status, parent, offset in specs:
        await provider.create_workflow(make_record(
            wid, workflow_type=kind, status=status, parent_execution_id=parent,
            created_at=T0 + timedelta(seconds=offset),
        ))  # fmt: skip

    async def ids(**filters: Any) -> list[str]:
        return [record.id for record in await provider.list_workflows(**filters)]

    assert await ids() == ["e", "b", "d", "c", "a"]
    assert await ids(status=WorkflowStatus.ACTIVE) == ["e", "d", "c", "a"]
    assert await ids(workflow_type="T2") == ["d", "c"]
    assert await ids(parent_execution_id="p") == ["e", "b", "c"]
    assert await ids(workflow_type="T1", status=WorkflowStatus.ACTIVE, parent_execution_id="p") == [
        "e"
    ]
    assert await ids(limit=2) == ["e", "b"]
    assert await ids(workflow_type="none") == []


async def test_list_workflows_bounds_created_at(provider: PersistenceProvider) -> None:
    for offset, wid in enumerate(["a", "b", "c", "d"]):
        await provider.create_workflow(make_record(wid, created_at=T0 + timedelta(seconds=offset)))

    async def ids(**bounds: Any) -> list[str]:
        return [record.id for record in await provider.list_workflows(**bounds)]

    assert await ids(created_since=T0 + timedelta(seconds=1)) == ["d", "c", "b"]  # inclusive
    assert await ids(created_until=T0 + timedelta(seconds=2)) == ["b", "a"]  # exclusive
    assert await ids(
        created_since=T0 + timedelta(seconds=1), created_until=T0 + timedelta(seconds=3)
    ) == ["c", "b"]
    # An aware bound in another zone means the same instant.
    plus_two = timezone(timedelta(hours=2))
    assert await ids(created_since=(T0 + timedelta(seconds=3)).astimezone(plus_two)) == ["d"]


async def test_list_workflows_filters_by_version_and_prefixes(
    provider: PersistenceProvider,
) -> None:
    specs = [  # id, version, idempotency key, created_at offset (s)
        ("order-1", "1.0", "shop:1", 0),
        ("order-2", "2.0", "shop:2", 1),
        ("Order-3", "2.0", "SHOP:3", 2),  # prefixes are case-sensitive
        ("orderX4", None, None, 3),  # '_' in a prefix must not match this 'X'
        ("order_5", "2.0", "shop%_5", 4),
        ("50%off", "1.0", "50%off", 5),
        (INJECTION, "2.0", INJECTION, 6),
        ("\\tmp", None, None, 7),
    ]
    for wid, version, key, offset in specs:
        await provider.create_workflow(make_record(
            wid, workflow_version=version, idempotency_key=key,
            created_at=T0 + timedelta(seconds=offset),
        ))  # fmt: skip

    async def ids(**filters: Any) -> list[str]:
        return [record.id for record in await provider.list_workflows(**filters)]

    assert await ids(workflow_version="2.0") == [INJECTION, "order_5", "Order-3", "order-2"]
    assert await ids(workflow_version="3.0") == []
    assert await ids(id_prefix="order") == ["order_5", "orderX4", "order-2", "order-1"]
    assert await ids(id_prefix="order_") == ["order_5"]  # '_' is a character, not a wildcard
    assert await ids(id_prefix="%") == []  # nor is '%'
    assert await ids(id_prefix="50%") == ["50%off"]
    assert await ids(id_prefix="\\") == ["\\tmp"]  # the escape character is escaped too
    assert await ids(id_prefix="order-1") == ["order-1"]
    assert await ids(id_prefix="x') OR 1=1 --") == []
    assert await ids(id_prefix="x'); DROP") == [INJECTION]
    assert await ids(idempotency_key_prefix="shop:") == ["order-2", "order-1"]
    assert await ids(idempotency_key_prefix="shop%") == ["order_5"]
    assert await ids(idempotency_key_prefix="_") == []
    with_keys = [INJECTION, "50%off", "order_5", "Order-3", "order-2", "order-1"]
    assert await ids(idempotency_key_prefix="") == with_keys  # none without a key
    assert await ids(id_prefix="", workflow_version="1.0") == ["50%off", "order-1"]
    combined = {"id_prefix": "order", "workflow_version": "2.0", "idempotency_key_prefix": "shop"}
    assert await ids(**combined) == ["order_5", "order-2"]
    # The filters combine with the keyset position.
    page = await provider.list_workflows(id_prefix="order", limit=2)
    assert [r.id for r in page] == ["order_5", "orderX4"]
    after = ListPosition.of(page[-1])
    assert await ids(id_prefix="order", after=after) == ["order-2", "order-1"]
    assert (await provider.list_workflows(idempotency_key_prefix=INJECTION))[0].id == INJECTION
    assert len(await provider.list_workflows()) == len(specs)  # nothing was dropped


async def test_list_workflows_prefixes_compare_code_points_not_the_collation(
    provider: PersistenceProvider,
) -> None:
    """Prefix filters are exact whatever the database's collation: around the range bounds
    (the next code point, a maximal one, across the surrogates) and in any case or accent."""
    specs = ["caf\u00e9-1", "cafe-2", "CAF\u00c9-3", "caf\u00ea-4", "a\U0010ffff-5", "b-6",
             "\ud7ff-7", "\ue000-8", "z\U0010ffff\U0010ffff-9"]  # fmt: skip
    for offset, wid in enumerate(specs):
        created = T0 + timedelta(seconds=offset)
        await provider.create_workflow(make_record(wid, idempotency_key=wid, created_at=created))

    async def ids(**filters: Any) -> list[str]:
        return sorted(record.id for record in await provider.list_workflows(**filters))

    for name in ("id_prefix", "idempotency_key_prefix"):
        assert await ids(**{name: "caf\u00e9"}) == [
            "caf\u00e9-1"
        ]  # not cafe, CAFÉ or café's neighbour
        assert await ids(**{name: "caf"}) == ["cafe-2", "caf\u00e9-1", "caf\u00ea-4"]
        assert await ids(**{name: "a\U0010ffff"}) == ["a\U0010ffff-5"]  # the bound is "b"
        assert await ids(**{name: "\ud7ff"}) == ["\ud7ff-7"]  # the bound skips the surrogates
        assert await ids(**{name: "z\U0010ffff\U0010ffff"}) == ["z\U0010ffff\U0010ffff-9"]
        assert await ids(**{name: "\U0010ffff"}) == []  # no upper bound at all


async def test_list_workflows_pages_by_keyset_stable_under_inserts(
    provider: PersistenceProvider,
) -> None:
    # Inserted in an order that is neither time nor id order; "m", "k" and "z" share a created_at.
    specs = [("m", 5), ("a", 1), ("z", 5), ("k", 5), ("q", 3), ("b", 0)]
    for wid, offset in specs:
        await provider.create_workflow(make_record(wid, created_at=T0 + timedelta(seconds=offset)))
    everything = [record.id for record in await provider.list_workflows()]
    assert everything == ["z", "m", "k", "q", "a", "b"]

    first = await provider.list_workflows(limit=2)
    assert [r.id for r in first] == ["z", "m"]
    # Newer workflows, and one as old as the page's last with a larger id, arrive meanwhile:
    # the next page neither repeats nor skips anything that was there.
    await provider.create_workflow(make_record("new", created_at=T0 + timedelta(seconds=9)))
    await provider.create_workflow(make_record("n", created_at=T0 + timedelta(seconds=5)))
    second = await provider.list_workflows(limit=2, after=ListPosition.of(first[-1]))
    assert [r.id for r in second] == ["k", "q"]
    rest = await provider.list_workflows(limit=10, after=ListPosition.of(second[-1]))
    assert [r.id for r in rest] == ["a", "b"]
    assert await provider.list_workflows(after=ListPosition.of(rest[-1])) == []
    # The position combines with the filters and the bounds.
    filtered = await provider.list_workflows(
        after=ListPosition(T0 + timedelta(seconds=5), "m"), created_since=T0 + timedelta(seconds=1)
    )
    assert [r.id for r in filtered] == ["k", "q", "a"]


async def test_audit_is_written_with_the_save_in_order(provider: PersistenceProvider) -> None:
    created = [audit("wf-1", "CREATED", n=0)]
    record, _ = await provider.create_workflow(make_record(), audit=created)
    steps = [audit("wf-1", f"STEP_{i}", n=i, nested={"l": [i, None, "\x00é"]}) for i in range(3)]
    await provider.save_workflow(record, expected_version=1, audit=steps)
    await provider.save_workflow(record, expected_version=2, audit=[audit("wf-1", "LAST")])
    log = await provider.get_audit_log("wf-1")
    assert log == [*created, *steps, audit("wf-1", "LAST")]


async def test_execution_logs_and_compensations_keep_order(
    provider: PersistenceProvider,
) -> None:
    await provider.create_workflow(make_record())
    logs = [ExecutionLogEntry("wf-1", "INFO", f"line {i}\x00ü", step_name="a",
                              details={"i": i}, logged_at=T0) for i in range(3)]  # fmt: skip
    for entry in logs:
        await provider.append_execution_log(entry)
    assert await provider.get_execution_logs("wf-1") == logs
    compensations = [
        CompensationEntry("wf-1", "b", "m.undo_b", True, state_before={"x": [1]}, executed_at=T0),
        CompensationEntry("wf-1", "a", "m.undo_a", False, error="failed", executed_at=T0),
    ]
    record = await provider.load_workflow("wf-1")
    await provider.save_workflow(record, expected_version=1, compensations=compensations[:1])
    await provider.save_workflow(record, expected_version=2, compensations=compensations[1:])
    assert await provider.get_compensation_log("wf-1") == compensations


async def test_compensations_of_a_refused_save_are_not_written(
    provider: PersistenceProvider,
) -> None:
    """A rollback whose save loses the version race (or its claim) leaves no rows: the winner's
    rollback, if any, writes them once."""
    record, _ = await provider.create_workflow(make_record())
    stale = dataclasses.replace(record)
    await provider.save_workflow(record, expected_version=1)
    with pytest.raises(ConcurrencyConflict):
        await provider.save_workflow(
            stale,
            expected_version=1,
            audit=[AuditEntry("wf-1", "ROLLED_BACK")],
            compensations=[CompensationEntry("wf-1", "a", "m.undo", True, executed_at=T0)],
        )
    assert await provider.get_compensation_log("wf-1") == []
    assert "ROLLED_BACK" not in {e.event_type for e in await provider.get_audit_log("wf-1")}


async def test_step_runs_are_listed_oldest_first_where_they_are_kept(
    provider: PersistenceProvider,
) -> None:
    await provider.create_workflow(make_record())
    assert await provider.list_step_runs("wf-1") == []
    assert await provider.list_step_runs("nope") == []
    work = WorkWrites(
        enqueue=[
            RunRequest("wf-2", RunKind.ADVANCE, "a", queue="q1"),
            RunRequest("wf-2", RunKind.STEP, "b", queue="q2", delay=60),
        ]
    )
    try:
        await provider.create_workflow(make_record("wf-2"), work=work)
    except ConfigurationError:
        # A store without step runs refuses distributed work, and lists none.
        assert await provider.list_step_runs("wf-2") == []
        return
    runs = await provider.list_step_runs("wf-2")
    assert [(r.kind, r.step_name, r.queue, r.status, r.attempt, r.worker) for r in runs] == [
        (RunKind.ADVANCE, "a", "q1", RunStatus.QUEUED, 0, None),
        (RunKind.STEP, "b", "q2", RunStatus.QUEUED, 0, None),
    ]
    assert runs[0].run_id < runs[1].run_id and runs[0].workflow_id == "wf-2"
    assert runs[1].run_at is not None and runs[1].run_at > runs[1].created_at
    assert runs[0].duration is None
    assert isinstance(provider, RunLedger)  # a store that keeps runs is the workers' ledger
    claimed = await provider.claim_run(runs[0].run_id, "worker-7", 30)
    assert claimed is not None
    assert await provider.finish_run(claimed[0], RunStatus.DONE)
    done = (await provider.list_step_runs("wf-2"))[0]
    assert (done.status, done.attempt, done.worker) == (RunStatus.DONE, 1, "worker-7")
    assert done.started_at is not None and done.finished_at is not None
    assert done.duration is not None and done.duration >= 0


async def test_schedules_are_upserted_by_name(provider: PersistenceProvider) -> None:
    nightly = ScheduleRecord("nightly", "Report", "0 2 * * *", {"full": True}, created_at=T0)
    hourly = ScheduleRecord("hourly", "Sync", "0 * * * *", source_workflow_id="wf-9",
                            next_run_at=T0, last_run_at=T0, created_at=T0)  # fmt: skip
    await provider.save_schedule(nightly)
    await provider.save_schedule(hourly)
    assert await provider.list_schedules() == [hourly, nightly]
    paused = dataclasses.replace(nightly, enabled=False, cron="0 3 * * *", initial_data={})
    await provider.save_schedule(paused)
    assert await provider.list_schedules() == [hourly, paused]


async def test_due_timers(provider: PersistenceProvider) -> None:
    now = T0 + timedelta(hours=1)
    specs = [  # id, status, run_at
        ("late", WorkflowStatus.WAITING_TIMER, now - timedelta(minutes=5)),
        ("exact", WorkflowStatus.WAITING_HUMAN, now),
        ("early", WorkflowStatus.WAITING_TIMER, now - timedelta(minutes=10)),
        ("future", WorkflowStatus.WAITING_TIMER, now + timedelta(seconds=1)),
        ("active", WorkflowStatus.ACTIVE, now - timedelta(minutes=5)),
        ("no-time", WorkflowStatus.WAITING_TIMER, None),
    ]
    for wid, status, run_at in specs:
        await provider.create_workflow(make_record(wid, status=status, run_at=run_at))
    assert await provider.list_due_timers(now) == ["early", "late", "exact"]
    assert await provider.list_due_timers(now, limit=1) == ["early"]
    assert await provider.list_due_timers(now - timedelta(hours=1)) == []
    # A non-UTC "now" is the same instant.
    plus_two = now.astimezone(timezone(timedelta(hours=2)))
    assert await provider.list_due_timers(plus_two) == ["early", "late", "exact"]


async def test_due_timers_of_a_higher_priority_come_first(provider: PersistenceProvider) -> None:
    """A runner fires at most a batch per pass: the most urgent due timers go first, then the
    earliest within a priority."""
    now = T0 + timedelta(hours=1)
    specs = [  # id, priority, minutes before now
        ("low-early", 0, 30),
        ("urgent-late", 9, 1),
        ("mid", 5, 20),
        ("urgent-early", 9, 10),
        ("low-late", 0, 2),
    ]
    for wid, priority, minutes in specs:
        run_at = now - timedelta(minutes=minutes)
        record = make_record(
            wid, status=WorkflowStatus.WAITING_TIMER, run_at=run_at, priority=priority
        )
        await provider.create_workflow(record)
    assert await provider.list_due_timers(now) == [
        "urgent-early",
        "urgent-late",
        "mid",
        "low-early",
        "low-late",
    ]
    assert await provider.list_due_timers(now, limit=2) == ["urgent-early", "urgent-late"]


async def test_past_deadline_lists_unfinished_workflows_earliest_first(
    provider: PersistenceProvider,
) -> None:
    now = T0 + timedelta(hours=1)
    specs = [  # id, status, deadline_at
        ("late", WorkflowStatus.WAITING_HUMAN, now - timedelta(minutes=5)),
        ("exact", WorkflowStatus.PENDING_ASYNC, now),
        ("early", WorkflowStatus.ACTIVE, now - timedelta(minutes=10)),
        ("future", WorkflowStatus.WAITING_TIMER, now + timedelta(microseconds=1)),
        ("done", WorkflowStatus.COMPLETED, now - timedelta(minutes=20)),
        ("none", WorkflowStatus.ACTIVE, None),
    ]
    for wid, status, deadline in specs:
        await provider.create_workflow(make_record(wid, status=status, deadline_at=deadline))
    assert await provider.list_past_deadline(now) == ["early", "late", "exact"]
    assert await provider.list_past_deadline(now, limit=1) == ["early"]
    assert await provider.list_past_deadline(now - timedelta(hours=1)) == []
    plus_two = now.astimezone(timezone(timedelta(hours=2)))  # the same instant
    assert await provider.list_past_deadline(plus_two) == ["early", "late", "exact"]

    # Ending a workflow takes it off the list; the deadline itself is fixed at creation.
    early = await provider.load_workflow("early")
    assert early.deadline_at == now - timedelta(minutes=10)
    early.status, early.deadline_at = WorkflowStatus.FAILED, now + timedelta(days=1)
    await provider.save_workflow(early, expected_version=1)
    assert await provider.list_past_deadline(now) == ["late", "exact"]
    assert (await provider.load_workflow("early")).deadline_at == now - timedelta(minutes=10)
    late = await provider.load_workflow("late")
    late.status = WorkflowStatus.WAITING_TIMER  # still unfinished: still listed
    await provider.save_workflow(late, expected_version=1)
    assert await provider.list_past_deadline(now) == ["late", "exact"]


async def test_due_timers_compare_to_the_microsecond(provider: PersistenceProvider) -> None:
    now = T0.replace(microsecond=0)  # ISO text without a fraction: the text-order edge case
    for wid, offset in (("before", -1), ("at", 0), ("after", 1)):
        run_at = now + timedelta(microseconds=offset)
        await provider.create_workflow(
            make_record(wid, status=WorkflowStatus.WAITING_TIMER, run_at=run_at)
        )
    assert await provider.list_due_timers(now) == ["before", "at"]


async def test_records_are_never_aliased(provider: PersistenceProvider) -> None:
    record = make_record()
    details = {"k": [1]}
    await provider.create_workflow(record, audit=[AuditEntry("wf-1", "CREATED", details=details)])
    record.state["order"]["id"] = 999  # the caller's object after create
    record.completed_steps.append("zzz")
    details["k"].append(2)
    loaded = await provider.load_workflow("wf-1")
    assert loaded.state["order"]["id"] == 7 and loaded.completed_steps == ["a"]
    for value in (loaded.state, loaded.definition_snapshot, loaded.runtime, loaded.metadata):
        value["mutated"] = True
    loaded.completed_steps.append("b")
    (await provider.get_audit_log("wf-1"))[0].details["k"].append(3)
    fresh = await provider.load_workflow("wf-1")
    assert fresh == make_record(version=1)
    assert (await provider.get_audit_log("wf-1"))[0].details == {"k": [1]}
    await provider.save_workflow(loaded, expected_version=1)
    loaded.state["after_save"] = True
    assert "after_save" not in (await provider.load_workflow("wf-1")).state


async def test_awkward_text_round_trips_exactly(provider: PersistenceProvider) -> None:
    state = {
        "nul": "a\x00b",
        "unicode": "héllo wörld ✓ 日本語 🎉",
        "nested": [[1, [2, [3, []]]], {"deep": [{"x": None}]}],
        "quote": 'it\'s "quoted" ; -- not a comment',
        INJECTION: INJECTION,
    }
    record = make_record(INJECTION, idempotency_key=INJECTION + "key", state=state,
                         error="line\x00two", workflow_type=INJECTION)  # fmt: skip
    await provider.create_workflow(record)
    assert await provider.load_workflow(INJECTION) == record
    assert await provider.find_by_idempotency_key(INJECTION + "key") == record
    assert [r.id for r in await provider.list_workflows(workflow_type=INJECTION)] == [INJECTION]
    await provider.append_execution_log(ExecutionLogEntry(INJECTION, "INFO", INJECTION))
    assert (await provider.get_execution_logs(INJECTION))[0].message == INJECTION


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
async def test_non_finite_state_is_rejected(provider: PersistenceProvider, bad: float) -> None:
    with pytest.raises(StateValidationError, match="non-finite"):
        await provider.create_workflow(make_record(state={"x": [1, {"y": bad}]}))
    record, _ = await provider.create_workflow(make_record())
    record.state = {"x": bad}
    with pytest.raises(StateValidationError, match="x"):
        await provider.save_workflow(record, expected_version=1)
    assert (await provider.load_workflow("wf-1")).state == make_record().state


@pytest.mark.parametrize("bad", [{"b", "a"}, frozenset({1})], ids=["set", "frozenset"])
async def test_a_set_in_state_is_rejected_naming_the_key(
    provider: PersistenceProvider, bad: Any
) -> None:
    """A set would read back as a list; it is refused like NaN, and nothing is written."""
    kind = type(bad).__name__
    with pytest.raises(StateValidationError, match=rf"holds a {kind} at 'x\[1\]\.y'"):
        await provider.create_workflow(make_record(state={"x": [1, {"y": bad}]}))
    assert await provider.list_workflows() == []
    record, _ = await provider.create_workflow(make_record())
    record.state = {"tags": bad}
    with pytest.raises(StateValidationError, match=f"holds a {kind} at 'tags'"):
        await provider.save_workflow(record, expected_version=1)
    stored = await provider.load_workflow("wf-1")
    assert stored.state == make_record().state
    assert stored.version == 1


async def test_oversized_state_is_rejected(make_provider: MakeProvider) -> None:
    provider = make_provider(max_state_bytes=100)
    await provider.initialize()
    with pytest.raises(StateTooLargeError) as caught:
        await provider.create_workflow(make_record(state={"blob": "x" * 200}))
    assert caught.value.limit == 100 and caught.value.size > 200
    assert str(caught.value.size) in str(caught.value) and "100" in str(caught.value)
    record, _ = await provider.create_workflow(make_record(state={"small": 1}))
    record.state = {"blob": "y" * 100}
    with pytest.raises(StateTooLargeError):
        await provider.save_workflow(record, expected_version=1)
    assert (await provider.load_workflow("wf-1")).state == {"small": 1}


async def test_initialize_and_close_are_idempotent(make_provider: MakeProvider) -> None:
    provider = make_provider()
    await provider.create_workflow(make_record())  # used before initialize(): opens lazily
    await provider.initialize()
    await provider.initialize()
    assert (await provider.load_workflow("wf-1")).id == "wf-1"
    await provider.close()
    await provider.close()


# -- SQLite only ---------------------------------------------------------------------------


async def test_sqlite_file_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    first = SQLitePersistenceProvider(str(path))
    record, _ = await first.create_workflow(make_record(), audit=[audit("wf-1", "CREATED")])
    record.state = {"saved": True}
    await first.save_workflow(record, expected_version=1, audit=[audit("wf-1", "SAVED")])
    await first.close()
    second = SQLitePersistenceProvider(f"sqlite:///{path}")
    try:
        assert await second.load_workflow("wf-1") == record
        assert [e.event_type for e in await second.get_audit_log("wf-1")] == ["CREATED", "SAVED"]
    finally:
        await second.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_sqlite_in_memory_database() -> None:
    provider = SQLitePersistenceProvider(":memory:")
    try:
        await provider.initialize()
        record, created = await provider.create_workflow(make_record())
        assert created and await provider.load_workflow("wf-1") == record
        assert await provider.save_workflow(record, expected_version=1) == 2
    finally:
        await provider.close()
    with pytest.raises(PersistenceError, match="closed"):
        await provider.load_workflow("wf-1")


async def test_sqlite_creates_are_atomic_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    providers = [SQLitePersistenceProvider(path) for _ in range(4)]
    try:
        for provider in providers:
            await provider.initialize()
        results = await asyncio.gather(*(
            p.create_workflow(make_record(f"wf-{i}", idempotency_key="shared"))
            for i, p in enumerate(providers)
        ))  # fmt: skip
        assert sorted(created for _, created in results) == [False, False, False, True]
        assert len({record.id for record, _ in results}) == 1
    finally:
        for provider in providers:
            await provider.close()


async def test_sqlite_missing_directory_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "ruvon.db"
    provider = SQLitePersistenceProvider(str(path))
    with pytest.raises(PersistenceError, match="does not exist") as caught:
        await provider.initialize()
    assert str(path) in str(caught.value)
    await provider.close()


async def test_sqlite_rejects_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, just text " * 100)
    provider = SQLitePersistenceProvider(str(path))
    with pytest.raises(PersistenceError, match="not a SQLite database") as caught:
        await provider.load_workflow("wf-1")
    assert str(path) in str(caught.value)
    await provider.close()


async def test_sqlite_background_checkpoints_keep_data_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BackgroundCheckpointer, "every_writes", 3)
    path = tmp_path / "busy.db"
    provider = SQLitePersistenceProvider(path)
    try:
        record, _ = await provider.create_workflow(make_record())
        for step in range(60):
            record.state = {"step": step}
            await provider.save_workflow(
                record, expected_version=record.version, audit=[audit("wf-1", f"S{step}")]
            )
            assert (await provider.load_workflow("wf-1")).state == {"step": step}
    finally:
        await provider.close()
    assert not Path(f"{path}-wal").exists()  # the last close checkpointed everything
    reopened = SQLitePersistenceProvider(path)
    try:
        assert (await reopened.load_workflow("wf-1")).version == 61
        assert len(await reopened.get_audit_log("wf-1")) == 60
    finally:
        await reopened.close()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///relative/ruvon.db", "relative/ruvon.db"),
        ("sqlite:////abs/ruvon.db", "/abs/ruvon.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://", ":memory:"),
        ("plain/path.db", "plain/path.db"),
    ],
)
def test_sqlite_accepts_urls(given: str, expected: str) -> None:
    assert SQLitePersistenceProvider(given).db_path == expected


# -- the change feed (WorkflowChanges: SQLite, PostgreSQL, memory; not Redis) ----------------


def _changes(provider: PersistenceProvider) -> WorkflowChanges:
    if not isinstance(provider, WorkflowChanges):
        pytest.skip(f"{type(provider).__name__} keeps no change order (no live streams)")
    return provider


async def test_changed_workflows_come_in_commit_order_after_a_position(
    provider: PersistenceProvider,
) -> None:
    changes = _changes(provider)
    moments = {"wf-a": 1, "wf-b": 3, "wf-c": 2, "wf-d": 2}  # c and d tie: by id
    for workflow_id, second in moments.items():
        await provider.create_workflow(
            make_record(workflow_id, updated_at=T0 + timedelta(seconds=second))
        )

    async def ids(after: ChangePosition, limit: int = 10) -> list[str]:
        return [record.id for record in await changes.list_changed_workflows(after, limit)]

    assert await ids(ChangePosition(T0)) == ["wf-a", "wf-c", "wf-d", "wf-b"]
    assert await ids(ChangePosition(T0), limit=2) == ["wf-a", "wf-c"]
    assert await ids(ChangePosition(T0 + timedelta(seconds=2), "wf-c")) == ["wf-d", "wf-b"]
    assert await ids(ChangePosition(T0 + timedelta(seconds=3), "wf-b")) == []

    stored = await provider.load_workflow("wf-a")
    moved = dataclasses.replace(stored, updated_at=T0 + timedelta(seconds=9))
    await provider.save_workflow(moved, expected_version=stored.version)
    (latest,) = await changes.list_changed_workflows(
        ChangePosition.of(await provider.load_workflow("wf-b"))
    )
    assert latest.id == "wf-a" and latest.version == stored.version + 1
    assert latest == WorkflowChange.of(await provider.load_workflow("wf-a"))  # a listing's fields
    assert latest.current_step_name is None  # step 1 of a one-step snapshot: past the end
    await provider.create_workflow(
        make_record("wf-e", current_step=0, updated_at=T0 + timedelta(seconds=10))
    )
    (at_step,) = await changes.list_changed_workflows(ChangePosition.of(latest))
    assert (at_step.id, at_step.current_step_name) == ("wf-e", "a")


# -- signals ------------------------------------------------------------------------------


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
