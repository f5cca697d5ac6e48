"""The Redis provider against the real server: atomicity, exact round trips, key isolation.

The contract suite (``tests/contract``) already runs against Redis; these tests cover what only
a real server shows: many clients racing one version, the raw key layout, prefix isolation and
cleanup, script caching, and the errors for a server that is down or a key of the wrong type.
Every provider here uses a private ``ruvon:test:<uuid>:`` prefix and deletes its keys on close.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from ruvon.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    DatabaseUnavailable,
    PersistenceError,
    WorkflowNotFound,
)
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.implementations.persistence.redis import RedisPersistenceProvider
from ruvon.implementations.persistence.redis.codec import micros
from ruvon.implementations.persistence.redis.keys import RedisKeys
from ruvon.models import WorkflowStatus
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    ScheduleRecord,
    WorkflowRecord,
)
from ruvon.testing.redis import (
    TestRedisPersistenceProvider,
    make_test_redis_provider,
    new_test_redis_provider,
    redis_url_for_tests,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
AWKWARD_IDS = [
    "plain",
    "with space",
    'it\'s "quoted"',
    "a:b:c",
    "wf:plain",  # looks like the start of another key
    "audit:plain",
    "x'); DROP TABLE workflow_executions;--",
    "glob*?[chars]\\",
    "nul\x00inside",
    "line\nbreak",
    "ünï©ødé ✓ 日本語 🎉",
]

Opener = Callable[..., Awaitable[TestRedisPersistenceProvider]]


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    """A raw client on the test server, for looking at keys behind the provider's back."""
    raw = Redis.from_url(redis_url_for_tests())
    yield raw
    await raw.aclose()


@pytest.fixture
async def open_provider() -> AsyncIterator[Opener]:
    """Open initialized test providers (own prefix each unless given); all closed afterwards."""
    opened: list[TestRedisPersistenceProvider] = []

    async def open_one(**options: Any) -> TestRedisPersistenceProvider:
        prefix = options.pop("key_prefix", None)
        provider = (
            TestRedisPersistenceProvider(redis_url_for_tests(), key_prefix=prefix, **options)
            if prefix is not None
            else new_test_redis_provider(**options)
        )
        opened.append(provider)
        await provider.initialize()
        return provider

    yield open_one
    for provider in opened:
        await provider.close()


@pytest.fixture
async def provider(open_provider: Opener) -> TestRedisPersistenceProvider:
    return await open_provider()


async def keys_under(client: Redis, prefix: str) -> set[bytes]:
    pattern = RedisKeys(prefix).scan_pattern()
    return {key async for key in client.scan_iter(match=pattern, count=1000)}


def record(workflow_id: str = "wf-1", **overrides: Any) -> WorkflowRecord:
    fields: dict[str, Any] = {"created_at": T0, "updated_at": T0}
    fields.update(overrides)
    return WorkflowRecord(workflow_id, fields.pop("workflow_type", "T"),
                          fields.pop("status", WorkflowStatus.ACTIVE),
                          fields.pop("state", {"n": 0}), {"steps": [{"name": "a"}]},
                          **fields)  # fmt: skip


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- atomicity -----------------------------------------------------------------------------


async def test_concurrent_saves_of_one_version_have_one_winner(
    provider: TestRedisPersistenceProvider,
) -> None:
    await provider.create_workflow(record(), audit=[AuditEntry("wf-1", "CREATED")])
    copies = [await provider.load_workflow("wf-1") for _ in range(20)]
    for index, copy in enumerate(copies):
        copy.state = {"writer": index}
    results = await asyncio.gather(
        *(provider.save_workflow(copy, expected_version=1,
                                 audit=[AuditEntry("wf-1", f"SAVE_{i}"), AuditEntry("wf-1", "X")])
          for i, copy in enumerate(copies)),
        return_exceptions=True,
    )  # fmt: skip
    winners = [i for i, result in enumerate(results) if result == 2]
    assert len(winners) == 1, results
    losers = [result for result in results if isinstance(result, ConcurrencyConflict)]
    assert len(losers) == 19
    stored = await provider.load_workflow("wf-1")
    assert stored.version == 2 and stored.state == {"writer": winners[0]}
    events = [entry.event_type for entry in await provider.get_audit_log("wf-1")]
    assert events == ["CREATED", f"SAVE_{winners[0]}", "X"]


async def test_racing_read_modify_write_loses_no_update(open_provider: Opener) -> None:
    """Workers on separate connections increment one counter with reload-and-retry on conflict."""
    first = await open_provider()
    # Same prefix, separate connection pools: what several worker processes would do.
    others = [await open_provider(key_prefix=first.key_prefix) for _ in range(3)]
    await first.create_workflow(record(state={"n": 0}))
    workers, increments = [first, *others], 15

    async def increment(worker: PersistenceProvider, name: str) -> int:
        conflicts = 0
        for _ in range(increments):
            while True:
                current = await worker.load_workflow("wf-1")
                current.state = {"n": current.state["n"] + 1}
                try:
                    await worker.save_workflow(current, expected_version=current.version,
                                               audit=[AuditEntry("wf-1", name)])  # fmt: skip
                    break
                except ConcurrencyConflict:
                    conflicts += 1
        return conflicts

    await asyncio.gather(*(increment(worker, f"W{i}") for i, worker in enumerate(workers)))
    stored = await first.load_workflow("wf-1")
    total = len(workers) * increments
    assert stored.state == {"n": total} and stored.version == total + 1
    assert len(await first.get_audit_log("wf-1")) == total


async def test_concurrent_creates_across_connections_insert_once(open_provider: Opener) -> None:
    first = await open_provider()
    others = [await open_provider(key_prefix=first.key_prefix) for _ in range(3)]
    results = await asyncio.gather(*(
        p.create_workflow(record(f"wf-{i}-{j}", idempotency_key="once"))
        for i, p in enumerate([first, *others]) for j in range(5)
    ))  # fmt: skip
    assert sorted(created for _, created in results) == [False] * 19 + [True]
    assert len({stored.id for stored, _ in results}) == 1
    assert len(await first.list_workflows()) == 1


# -- round trips and the layout -------------------------------------------------------------


async def test_awkward_ids_and_text_round_trip_without_collisions(
    provider: TestRedisPersistenceProvider,
) -> None:
    state = {"nul": "a\x00b", "unicode": "héllo ✓ 日本語 🎉", "\x00key": ["\x00", {"é": None}]}
    for wid in AWKWARD_IDS:
        made = record(wid, state={**state, "id": wid}, workflow_type=wid, parent_execution_id=wid,
                      idempotency_key=wid, error=wid)  # fmt: skip
        await provider.create_workflow(made, audit=[AuditEntry(wid, "CREATED", details={wid: wid})])
        await provider.append_execution_log(ExecutionLogEntry(wid, "INFO", wid, details=state))
    for wid in AWKWARD_IDS:
        loaded = await provider.load_workflow(wid)
        assert loaded.id == wid and loaded.state == {**state, "id": wid} and loaded.error == wid
        assert await provider.find_by_idempotency_key(wid) == loaded
        assert [r.id for r in await provider.list_workflows(workflow_type=wid)] == [wid]
        assert [r.id for r in await provider.list_workflows(parent_execution_id=wid)] == [wid]
        [entry] = await provider.get_audit_log(wid)
        assert entry.details == {wid: wid}
        [line] = await provider.get_execution_logs(wid)
        assert line.message == wid and line.details == state
    assert len(await provider.list_workflows()) == len(AWKWARD_IDS)


async def test_hash_fields_are_readable_json(
    provider: TestRedisPersistenceProvider, client: Redis
) -> None:
    await provider.create_workflow(record(state={"total": 12.5, "items": [1, 2]}, run_at=None))
    raw = await client.hgetall(provider.keys.workflow("wf-1"))
    assert orjson.loads(raw[b"state"]) == {"total": 12.5, "items": [1, 2]}
    assert raw[b"status"] == b"ACTIVE" and raw[b"version"] == b"1" and raw[b"id"] == b"wf-1"
    assert raw[b"created_at"] == str(micros(T0)).encode()  # also the index score
    assert orjson.loads(raw[b"attributes"])["run_at"] is None
    assert b"idempotency_key" not in raw and b"parent_execution_id" not in raw  # None: absent


async def test_saves_move_index_and_timer_memberships(
    provider: TestRedisPersistenceProvider, client: Redis
) -> None:
    prefix = provider.key_prefix
    made, _ = await provider.create_workflow(
        record(status=WorkflowStatus.WAITING_TIMER, run_at=T0, parent_execution_id="p1")
    )
    assert await provider.list_due_timers(T0) == ["wf-1"]
    [member] = await client.zrange(f"{prefix}idx:all", 0, -1)
    made.status, made.parent_execution_id, made.workflow_type = WorkflowStatus.ACTIVE, None, "U"
    made.created_at = T0 + timedelta(days=3)
    await provider.save_workflow(made, expected_version=1)  # type and created_at stay as created
    assert await provider.list_due_timers(T0 + timedelta(days=1)) == []
    assert await client.zcard(f"{prefix}timers") == 0
    assert await client.exists(f"{prefix}idx:status:WAITING_TIMER", f"{prefix}idx:type:U",
                               f"{prefix}idx:parent:p1") == 0  # fmt: skip
    assert [r.id for r in await provider.list_workflows(workflow_type="T")] == ["wf-1"]
    for index in ("all", "type:T", "status:ACTIVE"):  # scores: the stored created_at
        assert await client.zscore(f"{prefix}idx:{index}", member) == micros(T0)
    assert await provider.list_workflows(status=WorkflowStatus.WAITING_TIMER) == []


async def test_filtered_listing_pages_through_large_indexes(
    provider: TestRedisPersistenceProvider,
) -> None:
    oracle = MemoryPersistenceProvider()
    for i in range(400):
        status = WorkflowStatus.ACTIVE if i % 2 == 0 else WorkflowStatus.COMPLETED
        made = record(f"wf-{i:03d}", workflow_type="A" if i % 3 == 0 else "B", status=status,
                      created_at=T0 + timedelta(seconds=i // 7), workflow_version=str(i % 4),
                      idempotency_key=f"k{i % 5}-{i}" if i % 2 else None)  # fmt: skip
        await provider.create_workflow(made)
        await oracle.create_workflow(record(made.id, **{
            name: getattr(made, name) for name in ("workflow_type", "status", "created_at",
                                                   "workflow_version", "idempotency_key")
        }))  # fmt: skip
    for filters in ({"status": WorkflowStatus.ACTIVE, "workflow_type": "A", "limit": 60},
                    {"workflow_type": "B", "limit": 250}, {"limit": 1000}, {"limit": 3},
                    {"status": WorkflowStatus.COMPLETED, "workflow_type": "A"},
                    {"workflow_version": "2", "id_prefix": "wf-1", "limit": 30},
                    {"idempotency_key_prefix": "k3", "workflow_type": "B", "limit": 20},
                    {"id_prefix": "wf-39", "idempotency_key_prefix": "k"}):  # fmt: skip
        got = [r.id for r in await provider.list_workflows(**filters)]
        assert got == [r.id for r in await oracle.list_workflows(**filters)], filters


# -- keys, prefixes and cleanup -------------------------------------------------------------


async def fill(provider: PersistenceProvider) -> None:
    """One of everything the provider stores."""
    made, _ = await provider.create_workflow(
        record(status=WorkflowStatus.WAITING_HUMAN, run_at=T0, idempotency_key="k",
               parent_execution_id="p"), audit=[AuditEntry("wf-1", "CREATED")]
    )  # fmt: skip
    await provider.save_workflow(
        made,
        expected_version=1,
        audit=[AuditEntry("wf-1", "SAVED")],
        compensations=[CompensationEntry("wf-1", "a", "m.undo", True)],
    )
    await provider.append_execution_log(ExecutionLogEntry("wf-1", "INFO", "hello"))
    await provider.save_schedule(ScheduleRecord("nightly", "T", "0 2 * * *", created_at=T0))


async def test_prefixes_isolate_deployments(open_provider: Opener, client: Redis) -> None:
    base = f"ruvon:test:{uuid.uuid4().hex}:"
    # The second prefix would match the first's SCAN pattern if '*' were not escaped.
    first = await open_provider(key_prefix=f"{base}a*")
    second = await open_provider(key_prefix=f"{base}ab:")
    await fill(first)
    with pytest.raises(WorkflowNotFound):
        await second.load_workflow("wf-1")
    assert await second.find_by_idempotency_key("k") is None
    assert await second.list_workflows() == [] and await second.list_schedules() == []
    assert await second.get_audit_log("wf-1") == [] and await second.list_due_timers(T0) == []
    await fill(second)  # the same ids and key live independently
    await first.close()
    assert await keys_under(client, first.key_prefix) == set()
    assert [e.event_type for e in await second.get_audit_log("wf-1")] == ["CREATED", "SAVED"]
    assert len(await keys_under(client, second.key_prefix)) > 0


async def test_close_deletes_every_key_of_the_prefix(client: Redis, tmp_path: Path) -> None:
    provider = await make_test_redis_provider(tmp_path)
    prefix = provider.key_prefix
    try:
        assert prefix.startswith("ruvon:test:") and prefix.endswith(":")
        await fill(provider)
        # More keys than one SCAN/UNLINK batch, created by more concurrent calls than the pool
        # has connections (they queue for one).
        await asyncio.gather(*(provider.create_workflow(record(f"bulk-{i}")) for i in range(1200)))
        expected = {
            "wf:wf-1",
            "seq",
            "idem",
            "idx:all",
            "idx:status:WAITING_HUMAN",
            "idx:type:T",
            "idx:status:ACTIVE",
            "idx:parent:p",
            "timers",
            "audit:wf-1",
            "logs:wf-1",
            "comp:wf-1",
            "schedules",
        }
        found = {key.decode().removeprefix(prefix) for key in await keys_under(client, prefix)}
        assert expected <= found and len(found) == len(expected) + 1200
    finally:
        await provider.close()
    assert await keys_under(client, prefix) == set()
    await provider.close()  # idempotent


# -- scripts and errors ---------------------------------------------------------------------


async def test_scripts_are_cached_and_reloaded_after_a_flush(
    provider: TestRedisPersistenceProvider, client: Redis
) -> None:
    made, _ = await provider.create_workflow(record())
    await provider.save_workflow(made, expected_version=1)
    scripts = provider._scripts
    assert scripts is not None
    shas = [scripts.create_workflow.sha, scripts.save_workflow.sha]
    assert await client.script_exists(*shas) == [True, True]
    await client.script_flush()  # e.g. a server restart: EVALSHA gets NOSCRIPT and reloads
    assert await provider.save_workflow(made, expected_version=2) == 3


async def test_closed_port_raises_database_unavailable() -> None:
    port = closed_port()
    provider = RedisPersistenceProvider(f"redis://:hunter2@127.0.0.1:{port}/3")
    try:
        with pytest.raises(DatabaseUnavailable, match=f"127.0.0.1:{port} db 3") as caught:
            await provider.initialize()
        assert "hunter2" not in str(caught.value)
        with pytest.raises(DatabaseUnavailable):
            await provider.load_workflow("wf-1")  # lazily opens, fails the same way
    finally:
        await provider.close()


async def test_test_helper_names_the_variable_when_redis_is_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RUVON_TEST_REDIS_URL", f"redis://127.0.0.1:{closed_port()}/0")
    with pytest.raises(DatabaseUnavailable, match="RUVON_TEST_REDIS_URL"):
        await make_test_redis_provider(tmp_path)


async def test_other_redis_errors_are_persistence_errors(
    provider: TestRedisPersistenceProvider, client: Redis
) -> None:
    await client.set(provider.keys.workflow("wrong-type"), "a string, not a hash")
    with pytest.raises(PersistenceError, match="WRONGTYPE") as caught:
        await provider.load_workflow("wrong-type")
    assert not isinstance(caught.value, DatabaseUnavailable)


def test_bad_urls_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisPersistenceProvider("http://user:secret@localhost:6379/0")


async def test_use_after_close_is_refused(provider: TestRedisPersistenceProvider) -> None:
    await provider.close()
    with pytest.raises(PersistenceError, match="closed"):
        await provider.load_workflow("wf-1")
