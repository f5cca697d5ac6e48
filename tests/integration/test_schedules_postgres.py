"""Schedules on the real PostgreSQL: each tick starts its workflow once, even with two pollers.

Two beats can poll at the same moment (two beat processes, or a slow poll overlapping the next
one); the claim is one conditional UPDATE, so exactly one of them takes each tick. The CLI
(``ruvon schedules list/pause/resume``) is checked against the same kind of database.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from click.testing import CliRunner

from ruvon.builder import WorkflowBuilder
from ruvon.cli.main import cli
from ruvon.clock import utc_now
from ruvon.cluster.schedules import (
    ScheduleClaims,
    ScheduleSpec,
    poll_scheduled_workflows,
    set_schedule_enabled,
    sync_registry_schedules,
)
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider
from ruvon.records import ScheduleRecord
from ruvon.testing.postgres import create_database, drop_database

RUN_SECONDS = 10.0
POLL_EVERY = 0.2


def noop(state: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"ran": True}


def make_builder(
    provider: PostgresPersistenceProvider, registry: dict[str, Any] | None = None
) -> WorkflowBuilder:
    builder = WorkflowBuilder(
        workflow_registry=registry or {},
        persistence_provider=provider,
        execution_provider=SyncExecutionProvider(),
    )
    builder.register_workflow_inline("Tick", steps=[{"name": "noop", "function": noop}])
    return builder


@pytest.fixture
async def database() -> AsyncIterator[str]:
    url = await create_database()
    yield url
    await drop_database(url)


async def _provider(url: str) -> PostgresPersistenceProvider:
    provider = PostgresPersistenceProvider(url, 1, 4)
    await provider.initialize()
    return provider


@pytest.fixture
async def store(database: str) -> AsyncIterator[PostgresPersistenceProvider]:
    provider = await _provider(database)
    yield provider
    await provider.close()


@pytest.fixture
async def other_store(database: str) -> AsyncIterator[PostgresPersistenceProvider]:
    """A second provider (its own pool) on the same database: a second beat."""
    provider = await _provider(database)
    yield provider
    await provider.close()


async def row(store: PostgresPersistenceProvider, name: str) -> ScheduleRecord:
    return next(s for s in await store.list_schedules() if s.name == name)


async def tick_keys(store: PostgresPersistenceProvider) -> list[str]:
    records = await store.list_workflows(workflow_type="Tick", limit=1000)
    return [record.idempotency_key or "" for record in records]


def test_postgres_provider_claims_with_single_statements() -> None:
    assert issubclass(PostgresPersistenceProvider, ScheduleClaims)


@pytest.mark.slow
async def test_two_concurrent_pollers_start_each_tick_once(
    store: PostgresPersistenceProvider, other_store: PostgresPersistenceProvider
) -> None:
    spec = ScheduleSpec.parse("@every 1s")
    begin = utc_now()
    first = spec.next_after(begin)
    await store.save_schedule(
        ScheduleRecord("every-second", "Tick", spec.text, {"n": 1}, next_run_at=first)
    )
    loop = asyncio.get_running_loop()
    # Poll for RUN_SECONDS from the first tick (ticks first .. first + 9 s), half a second
    # spare before the next one.
    deadline = loop.time() + (first - begin).total_seconds() + RUN_SECONDS - 0.5

    async def poller(provider: PostgresPersistenceProvider) -> list[str]:
        builder = make_builder(provider)
        started: list[str] = []
        while loop.time() < deadline:
            started += await poll_scheduled_workflows(provider, builder)
            await asyncio.sleep(POLL_EVERY)
        return started

    mine, theirs = await asyncio.gather(poller(store), poller(other_store))
    ended = utc_now()
    started = mine + theirs
    # The ticks due by the wall clock (the database's, on this machine): about RUN_SECONDS of
    # them, more if the clock jumped meanwhile (the poll then catches up, as it should). The
    # last poll ran up to one poll interval before the end, so the last tick may be missing.
    due = [first]
    while (following := spec.next_after(due[-1])) <= ended:
        due.append(following)
    assert len(due) - 2 <= len(started) <= len(due), (len(mine), len(theirs), len(due))
    assert len(set(started)) == len(started)  # no workflow reported by both pollers

    keys = await tick_keys(store)
    assert sorted(keys) == sorted(set(keys)) and len(keys) == len(started)
    ticks = sorted(datetime.fromisoformat(key.split(":", 2)[2]) for key in keys)
    assert ticks[0] == first and ticks[-1] <= ended
    # Consecutive seconds: every tick started, none twice.
    gaps = {b - a for a, b in pairwise(ticks)}
    assert gaps <= {timedelta(seconds=1)}


async def test_pollers_racing_on_many_due_ticks_take_each_once(
    store: PostgresPersistenceProvider, other_store: PostgresPersistenceProvider
) -> None:
    now = utc_now().replace(microsecond=0)
    for index in range(5):
        await store.save_schedule(
            ScheduleRecord(f"s{index}", "Tick", "@every 1s", next_run_at=now - timedelta(seconds=4))
        )
    builders = [make_builder(store), make_builder(other_store)]
    polls = [
        poll_scheduled_workflows(provider, builders[i % 2], now=now)
        for i, provider in enumerate([store, other_store] * 4)
    ]
    results = await asyncio.gather(*polls)
    started = [workflow_id for result in results for workflow_id in result]
    assert len(started) == len(set(started)) == 25  # 5 schedules x 5 due ticks
    keys = await tick_keys(store)
    assert len(keys) == 25 and not [k for k, n in Counter(keys).items() if n > 1]


async def test_claim_is_taken_by_exactly_one(
    store: PostgresPersistenceProvider, other_store: PostgresPersistenceProvider
) -> None:
    due = utc_now() - timedelta(seconds=1)
    await store.save_schedule(ScheduleRecord("s", "Tick", "@every 1s", next_run_at=due))
    _, [seen] = await store.due_schedules(None, 10)
    _, [also_seen] = await other_store.due_schedules(None, 10)
    assert seen.next_run_at == also_seen.next_run_at == due
    later = due + timedelta(seconds=1)
    outcomes = await asyncio.gather(
        store.claim_schedule_ticks("s", due, later, due),
        other_store.claim_schedule_ticks("s", due, later, due),
    )
    assert sorted(outcomes) == [False, True]
    assert (await row(store, "s")).next_run_at == later


async def test_catch_up_is_bounded(store: PostgresPersistenceProvider) -> None:
    now = datetime(2030, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)
    start = now - timedelta(hours=1)
    await store.save_schedule(ScheduleRecord("s", "Tick", "@every 1s", next_run_at=start))
    await store.save_schedule(ScheduleRecord("c", "Tick", "*/5 * * * *", next_run_at=start))
    builder = make_builder(store)
    started = await poll_scheduled_workflows(store, builder, now=now, max_catch_up=3)
    assert len(started) == 6
    keys = sorted(await tick_keys(store))
    assert keys == sorted(
        [f"schedule:s:2030-01-01T{t}+00:00" for t in ("11:59:58", "11:59:59", "12:00:00")]
        + [f"schedule:c:2030-01-01T{t}+00:00" for t in ("11:50:00", "11:55:00", "12:00:00")]
    )
    assert (await row(store, "s")).next_run_at == datetime(2030, 1, 1, 12, 0, 1, tzinfo=UTC)
    assert (await row(store, "c")).next_run_at == datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
    assert await poll_scheduled_workflows(store, builder, now=now) == []


async def test_pause_stops_starts_and_resume_restarts_them(
    store: PostgresPersistenceProvider,
) -> None:
    builder = make_builder(store)
    now = utc_now()
    await store.save_schedule(
        ScheduleRecord("s", "Tick", "@every 1s", next_run_at=now - timedelta(seconds=2))
    )
    paused = await set_schedule_enabled(store, "s", False)
    assert not paused.enabled
    assert await poll_scheduled_workflows(store, builder, now=now + timedelta(minutes=5)) == []
    assert await tick_keys(store) == []

    later = now + timedelta(minutes=5)
    resumed = await set_schedule_enabled(store, "s", True, now=later)
    assert resumed.enabled and resumed.next_run_at == ScheduleSpec.parse(1).next_after(later)
    assert resumed.next_run_at is not None
    started = await poll_scheduled_workflows(store, builder, now=resumed.next_run_at)
    assert len(started) == 1  # the paused minutes are not caught up
    assert await tick_keys(store) == [f"schedule:s:{resumed.next_run_at.isoformat()}"]


async def test_registry_sync_creates_and_keeps_rows(store: PostgresPersistenceProvider) -> None:
    registry = {
        "Tick": {"config_file": "tick.yaml", "schedule": "every 5s"},
        "Nightly": {"config_file": "nightly.yaml", "schedule": {"minute": 0, "hour": 3}},
    }
    builder = make_builder(store, registry)
    now = datetime(2030, 1, 1, 12, 0, 1, tzinfo=UTC)
    assert await sync_registry_schedules(store, builder, now=now) == [
        "registry:Nightly",
        "registry:Tick",
    ]
    tick = await row(store, "registry:Tick")
    assert (tick.cron, tick.enabled, tick.next_run_at) == (
        "@every 5s",
        True,
        datetime(2030, 1, 1, 12, 0, 5, tzinfo=UTC),
    )
    assert (await row(store, "registry:Nightly")).cron == "0 3 * * *"

    await set_schedule_enabled(store, "registry:Tick", False)
    await sync_registry_schedules(store, make_builder(store, registry), now=now + timedelta(1))
    kept = await row(store, "registry:Tick")
    assert (kept.enabled, kept.next_run_at) == (False, tick.next_run_at)

    # A registry row fires like any other once due.
    await set_schedule_enabled(store, "registry:Tick", True, now=now)
    started = await poll_scheduled_workflows(store, builder, now=now + timedelta(seconds=5))
    assert await tick_keys(store) == ["schedule:registry:Tick:2030-01-01T12:00:05+00:00"]
    assert len(started) == 1


# ---------------------------------------------------------------------- the CLI
@pytest.fixture
def cli_database() -> Iterator[str]:
    """A database with two schedules, for the synchronous CLI (asyncio.run inside)."""

    async def setup() -> str:
        url = await create_database()
        provider = await _provider(url)
        try:
            next_run = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
            await provider.save_schedule(
                ScheduleRecord("nightly", "Tick", "0 3 * * *", {"n": 1}, next_run_at=next_run)
            )
            await provider.save_schedule(
                ScheduleRecord("registry:Tick", "Tick", "@every 5s", next_run_at=next_run)
            )
        finally:
            await provider.close()
        return url

    url = asyncio.run(setup())
    yield url
    asyncio.run(drop_database(url))


def test_cli_list_pause_resume(cli_database: str) -> None:
    runner = CliRunner()
    env = {"RUVON_DATABASE_URL": cli_database, "COLUMNS": "200"}

    listed = runner.invoke(cli, ["schedules", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert [(s["name"], s["spec"], s["enabled"]) for s in data] == [
        ("nightly", "0 3 * * *", True),
        ("registry:Tick", "@every 5s", True),
    ]
    assert data[0]["next_run_at"] == "2030-01-01T12:00:00+00:00"

    paused = runner.invoke(cli, ["schedules", "pause", "nightly"], env=env)
    assert paused.exit_code == 0, paused.output
    assert "Paused nightly" in paused.stdout

    table = runner.invoke(cli, ["schedules", "list"], env=env)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "SPEC", "ENABLED", "NEXT", "RUN", "LAST", "RUN"]
    assert "paused" in next(line for line in lines if line.startswith("nightly"))

    resumed = runner.invoke(cli, ["schedules", "resume", "nightly"], env=env)
    assert resumed.exit_code == 0, resumed.output
    assert "Resumed nightly (0 3 * * *), next run" in resumed.stdout
    after = json.loads(runner.invoke(cli, ["schedules", "list", "--json"], env=env).stdout)
    nightly = datetime.fromisoformat(after[0]["next_run_at"])
    assert after[0]["enabled"] and (nightly.hour, nightly.minute) == (3, 0)
    assert nightly > datetime.now(UTC)  # recomputed from now

    missing = runner.invoke(cli, ["schedules", "pause", "nope"], env=env)
    assert missing.exit_code == 4
    assert missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [
        "error: no schedule named 'nope' (known: nightly, registry:Tick)"
    ]


def test_cli_takes_a_registry_schedule_by_its_type(cli_database: str) -> None:
    """`registry:Tick` is what `list` shows, but `Tick` is what people type."""
    runner = CliRunner()
    env = {"RUVON_DATABASE_URL": cli_database, "COLUMNS": "200"}

    def enabled() -> dict[str, bool]:
        listed = runner.invoke(cli, ["schedules", "list", "--json"], env=env)
        return {s["name"]: s["enabled"] for s in json.loads(listed.stdout)}

    paused = runner.invoke(cli, ["schedules", "pause", "Tick"], env=env)
    assert paused.exit_code == 0, paused.output
    assert "Paused registry:Tick (@every 5s)" in paused.stdout
    assert enabled() == {"nightly": True, "registry:Tick": False}

    resumed = runner.invoke(cli, ["schedules", "resume", "Tick"], env=env)
    assert resumed.exit_code == 0, resumed.output
    assert "Resumed registry:Tick (@every 5s), next run" in resumed.stdout
    assert enabled() == {"nightly": True, "registry:Tick": True}

    # The full name still works.
    full = runner.invoke(cli, ["schedules", "pause", "registry:Tick"], env=env)
    assert full.exit_code == 0, full.output
    assert enabled()["registry:Tick"] is False


def test_cli_refuses_a_name_that_is_both_a_schedule_and_a_registry_type(cli_database: str) -> None:
    async def add_tick() -> None:
        provider = await _provider(cli_database)
        try:
            await provider.save_schedule(ScheduleRecord("Tick", "Other", "0 4 * * *"))
        finally:
            await provider.close()

    asyncio.run(add_tick())
    runner = CliRunner()
    env = {"RUVON_DATABASE_URL": cli_database}
    for command in ("pause", "resume"):
        refused = runner.invoke(cli, ["schedules", command, "Tick"], env=env)
        assert refused.exit_code == 2, refused.output
        assert refused.stdout == ""
        assert refused.stderr.strip().splitlines() == [
            "error: 'Tick' names two schedules: 'Tick' (Other, 0 4 * * *) and 'registry:Tick' "
            "(Tick, @every 5s); write 'registry:Tick' for the registry one, or --exact for "
            "'Tick' itself"
        ]
    listed = runner.invoke(cli, ["schedules", "list", "--json"], env=env)
    assert all(s["enabled"] for s in json.loads(listed.stdout))  # nothing was changed
    for argv in (["Tick", "--exact"], ["registry:Tick"]):
        paused = runner.invoke(cli, ["schedules", "pause", *argv], env=env)
        assert paused.exit_code == 0, paused.output
        assert f"Paused {argv[0]} " in paused.stdout
    listed = runner.invoke(cli, ["schedules", "list", "--json"], env=env)
    assert {s["name"]: s["enabled"] for s in json.loads(listed.stdout)} == {
        "Tick": False,
        "nightly": True,
        "registry:Tick": False,
    }
