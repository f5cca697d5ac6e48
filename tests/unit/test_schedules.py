"""Schedules without I/O: spec parsing and tick arithmetic, and the poll on the memory provider.

The memory provider has the conditional claims (as SQLite and PostgreSQL do: the contract is in
``tests/contract/test_schedule_claims.py``); concurrent pollers on PostgreSQL are in
``tests/integration/test_schedules_postgres.py``, on a SQLite file in
``tests/integration/test_embedded_runner.py``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from ruvon.builder import WorkflowBuilder
from ruvon.cluster.schedules import (
    ScheduleNotFound,
    ScheduleSpec,
    poll_scheduled_workflows,
    set_schedule_enabled,
    sync_registry_schedules,
)
from ruvon.errors import ConfigurationError, DefinitionError, PersistenceError
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.records import ScheduleRecord


def at(text: str) -> datetime:
    """``"12:00:59.5"`` on 2024-01-01, or a full ISO timestamp; UTC."""
    if "T" not in text:
        text = f"2024-01-01T{text}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("*/5 * * * *", "*/5 * * * *"),
        ("  0   3 * * mon-fri ", "0 3 * * mon-fri"),
        ("@hourly", "@hourly"),
        ({"minute": 0, "hour": 3}, "0 3 * * *"),
        ({"minute": "*/15"}, "*/15 * * * *"),
        ({"minute": [0, 30], "day_of_week": "sun"}, "0,30 * * * sun"),
        (
            {"minute": 5, "hour": 4, "day_of_month": 1, "month_of_year": "*/3", "day_of_week": "*"},
            "5 4 1 */3 *",
        ),
        (30, "@every 30s"),
        (30.0, "@every 30s"),
        (0.5, "@every 0.5s"),
        ("every 5s", "@every 5s"),
        ("@every 5s", "@every 5s"),
        ("@every 5", "@every 5s"),
        ("every 2m", "@every 120s"),
        ("Every 1.5 hours", "@every 5400s"),
        ("every 1d", "@every 86400s"),
        ("every .25 seconds", "@every 0.25s"),
    ],
)
def test_parse_forms(value: Any, text: str) -> None:
    spec = ScheduleSpec.parse(value, schedule="s")
    assert spec.text == text
    assert ScheduleSpec.stored(spec.text) == spec  # what the column stores reads back the same


def test_interval_and_cron_are_told_apart() -> None:
    assert ScheduleSpec.parse("every 5s").interval_seconds == 5.0
    assert ScheduleSpec.parse(0.25).interval_us == 250_000
    assert ScheduleSpec.parse("*/5 * * * *").interval_seconds is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("61 * * * *", "not a valid cron expression"),
        ("* * *", "has 5 fields"),
        ("* * * * * *", "has 5 fields"),
        ("", "has 5 fields"),
        ("every 0s", "positive"),
        ("every -5s", "has 5 fields"),
        ("every 5 fortnights", "unknown unit 'fortnights'"),
        (0, "positive"),
        (-3, "positive"),
        (float("nan"), "positive"),
        (float("inf"), "positive"),
        (True, "expected a cron expression"),
        (None, "expected a cron expression"),
        (["* * * * *"], "expected a cron expression"),
        ({"minutes": 1}, "unknown crontab key(s) minutes"),
        ({"minute": 99}, "not a valid cron expression"),
        ({"hour": "1 2"}, "bad hour"),
        ({"hour": ""}, "bad hour"),
    ],
)
def test_bad_specs_name_the_schedule_and_the_value(value: Any, reason: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        ScheduleSpec.parse(value, schedule="registry:Nightly")
    message = str(caught.value)
    assert message.startswith("schedule 'registry:Nightly': invalid spec ")
    assert repr(value) in message
    assert reason in message


def test_stored_accepts_what_croniter_accepts() -> None:
    # CRON_SCHEDULE steps validate with croniter only: a 6-field row must still fire.
    assert ScheduleSpec.stored("* * * * * */10").text == "* * * * * */10"
    with pytest.raises(DefinitionError, match="'nightly'"):
        ScheduleSpec.stored("not cron", schedule="nightly")


# ---------------------------------------------------------------------- ticks
@pytest.mark.parametrize(
    ("spec", "moment", "expected"),
    [
        ("* * * * *", "12:00:59.900", "12:01:00"),
        ("* * * * *", "12:00:00", "12:01:00"),  # on a tick: strictly after
        ("*/15 * * * *", "12:59:30", "13:00:00"),
        ("0 * * * *", "12:59:59.999999", "13:00:00"),
        ("30 2 * * *", "2024-01-01T02:30:00.000001", "2024-01-02T02:30:00"),
        ("0 0 1 1 *", "2024-12-31T23:59:59", "2025-01-01T00:00:00"),
        ("@every 5s", "12:00:03", "12:00:05"),
        ("@every 5s", "12:00:05", "12:00:10"),
        (
            "@every 7s",
            "12:59:58",
            "12:59:59",
        ),  # epoch-aligned (1704113999 = 7k), not minute-aligned
        ("@every 3600s", "12:59:59.5", "13:00:00"),
        ("@every 0.25s", "12:00:00.100", "12:00:00.250"),
        ("@every 86400s", "2024-01-01T23:00:00", "2024-01-02T00:00:00"),
    ],
)
def test_next_after(spec: str, moment: str, expected: str) -> None:
    result = ScheduleSpec.stored(spec).next_after(at(moment))
    assert result == at(expected)
    assert result.tzinfo is not None and result.utcoffset() == timedelta(0)


def test_next_after_takes_naive_as_utc_and_converts_other_zones() -> None:
    spec = ScheduleSpec.parse("0 * * * *")
    assert spec.next_after(datetime(2024, 1, 1, 12, 30)) == at("13:00:00")
    paris = timezone(timedelta(hours=1))
    assert spec.next_after(datetime(2024, 1, 1, 13, 30, tzinfo=paris)) == at("13:00:00")


def test_consecutive_ticks_of_an_interval_are_one_interval_apart() -> None:
    spec = ScheduleSpec.parse("every 1s")
    tick = spec.next_after(at("12:00:00.5"))
    for _ in range(120):  # across a minute boundary and beyond
        following = spec.next_after(tick)
        assert following - tick == timedelta(seconds=1)
        tick = following


@pytest.mark.parametrize(
    ("spec", "moment", "expected"),
    [
        ("* * * * *", "12:01:00", "12:01:00"),
        ("* * * * *", "12:01:59", "12:01:00"),
        ("@every 5s", "12:00:05", "12:00:05"),
        ("@every 5s", "12:00:09.999", "12:00:05"),
    ],
)
def test_latest_at_or_before(spec: str, moment: str, expected: str) -> None:
    assert ScheduleSpec.stored(spec).latest_at_or_before(at(moment)) == at(expected)


def test_due_ticks_within_the_limit_include_the_stored_tick() -> None:
    spec = ScheduleSpec.parse("every 1s")
    ticks, skipped = spec.due_ticks(at("12:00:00"), at("12:00:02.5"), 10)
    assert ticks == [at("12:00:00"), at("12:00:01"), at("12:00:02")]
    assert not skipped


def test_due_ticks_past_the_limit_keep_the_latest() -> None:
    spec = ScheduleSpec.parse("*/5 * * * *")
    ticks, skipped = spec.due_ticks(at("10:00:00"), at("12:07:00"), 3)
    assert ticks == [at("11:55:00"), at("12:00:00"), at("12:05:00")]
    assert skipped


def test_due_ticks_keep_a_stored_tick_off_the_grid() -> None:
    # A row whose next_run_at is not on the spec's grid (the spec was edited): it still fires.
    spec = ScheduleSpec.parse("every 10s")
    ticks, skipped = spec.due_ticks(at("12:00:03"), at("12:00:15"), 10)
    assert ticks == [at("12:00:03"), at("12:00:10")]
    assert not skipped


# ---------------------------------------------------------------------- the poll (memory)
class Order(BaseModel):
    order_id: str


def noop(state: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"ran": True}


def make_builder(
    persistence: MemoryPersistenceProvider, registry: dict[str, Any] | None = None
) -> WorkflowBuilder:
    builder = WorkflowBuilder(
        workflow_registry=registry or {},
        persistence_provider=persistence,
        execution_provider=SyncExecutionProvider(),
    )
    builder.register_workflow_inline("Tick", steps=[{"name": "noop", "function": noop}])
    builder.register_workflow_inline(
        "Strict", steps=[{"name": "noop", "function": noop}], initial_state_model=Order
    )
    return builder


@pytest.fixture
async def memory() -> MemoryPersistenceProvider:
    provider = MemoryPersistenceProvider()
    await provider.initialize()
    return provider


async def schedule_row(memory: MemoryPersistenceProvider, name: str) -> ScheduleRecord:
    return next(s for s in await memory.list_schedules() if s.name == name)


async def test_poll_catches_up_at_most_max_catch_up(memory: MemoryPersistenceProvider) -> None:
    builder = make_builder(memory)
    await memory.save_schedule(
        ScheduleRecord("s", "Tick", "@every 1s", {"n": 1}, next_run_at=at("12:00:00"))
    )
    started = await poll_scheduled_workflows(memory, builder, now=at("12:01:40.5"), max_catch_up=3)
    assert len(started) == 3
    keys = sorted([(await memory.load_workflow(i)).idempotency_key or "" for i in started])
    assert keys == [f"schedule:s:2024-01-01T12:01:{s}+00:00" for s in ("38", "39", "40")]
    row = await schedule_row(memory, "s")
    assert row.next_run_at == at("12:01:41") and row.last_run_at == at("12:01:40")
    assert await poll_scheduled_workflows(memory, builder, now=at("12:01:40.9")) == []
    assert len(await poll_scheduled_workflows(memory, builder, now=at("12:01:41"))) == 1


async def test_pause_and_resume(memory: MemoryPersistenceProvider) -> None:
    builder = make_builder(memory)
    await memory.save_schedule(
        ScheduleRecord("s", "Tick", "@every 10s", next_run_at=at("12:00:00"))
    )
    paused = await set_schedule_enabled(memory, "s", False)
    assert not paused.enabled and paused.next_run_at == at("12:00:00")
    assert await poll_scheduled_workflows(memory, builder, now=at("13:00:00")) == []
    resumed = await set_schedule_enabled(memory, "s", True, now=at("13:00:01"))
    assert resumed.enabled and resumed.next_run_at == at("13:00:10")  # nothing caught up
    again = await set_schedule_enabled(memory, "s", True, now=at("14:00:00"))
    assert again.next_run_at == at("13:00:10")  # resuming a running schedule changes nothing
    assert len(await poll_scheduled_workflows(memory, builder, now=at("13:00:10"))) == 1
    with pytest.raises(ScheduleNotFound, match="no schedule named 'nope' \\(known: s\\)"):
        await set_schedule_enabled(memory, "nope", False)


async def test_registry_sync_creates_keeps_and_updates(memory: MemoryPersistenceProvider) -> None:
    registry = {
        "Tick": {"config_file": "tick.yaml", "schedule": "every 5s"},
        "Strict": {"config_file": "strict.yaml", "schedule": {"minute": 0, "hour": 3}},
        "Plain": {"config_file": "plain.yaml"},
    }
    builder = make_builder(memory, registry)
    names = await sync_registry_schedules(memory, builder, now=at("12:00:01"))
    assert names == ["registry:Strict", "registry:Tick"]
    tick = await schedule_row(memory, "registry:Tick")
    assert (tick.workflow_type, tick.cron, tick.enabled) == ("Tick", "@every 5s", True)
    assert tick.next_run_at == at("12:00:05")
    assert (await schedule_row(memory, "registry:Strict")).cron == "0 3 * * *"

    await set_schedule_enabled(memory, "registry:Tick", False)
    await sync_registry_schedules(memory, builder, now=at("15:00:00"))
    kept = await schedule_row(memory, "registry:Tick")
    assert not kept.enabled and kept.next_run_at == at("12:00:05")  # unchanged spec: untouched

    registry["Tick"] = {"config_file": "tick.yaml", "schedule": 60}
    await sync_registry_schedules(memory, make_builder(memory, registry), now=at("15:00:00"))
    changed = await schedule_row(memory, "registry:Tick")
    assert (changed.cron, changed.next_run_at, changed.enabled) == (
        "@every 60s",
        at("15:01:00"),
        False,  # a pause survives a spec change
    )


async def test_registry_sync_skips_a_bad_spec_unless_strict(
    memory: MemoryPersistenceProvider, caplog: pytest.LogCaptureFixture
) -> None:
    registry = {
        "Tick": {"config_file": "tick.yaml", "schedule": "every 5s"},
        "Strict": {"config_file": "strict.yaml", "schedule": "61 * * * *"},
    }
    builder = make_builder(memory, registry)
    with caplog.at_level(logging.ERROR, logger="ruvon.beat"):
        assert await sync_registry_schedules(memory, builder) == ["registry:Tick"]
    assert "schedule 'registry:Strict': invalid spec '61 * * * *'" in caplog.text
    with pytest.raises(DefinitionError, match="registry:Strict"):
        await sync_registry_schedules(memory, builder, strict=True)


async def test_poll_leaves_rows_it_cannot_start(memory: MemoryPersistenceProvider) -> None:
    builder = make_builder(memory, {"Tick": {"config_file": "tick.yaml", "schedule": "every 5s"}})
    rows = [
        ScheduleRecord("unknown", "Missing", "@every 1s", next_run_at=at("12:00:00")),
        # registry rows are owned by the registry: this worker's has no schedule for Strict
        ScheduleRecord("registry:Strict", "Strict", "@every 1s", next_run_at=at("12:00:00")),
    ]
    for row in rows:
        await memory.save_schedule(row)
    assert await poll_scheduled_workflows(memory, builder, now=at("12:00:10")) == []
    for row in rows:
        assert (await schedule_row(memory, row.name)).next_run_at == at("12:00:00")  # unclaimed


async def test_a_tick_that_cannot_start_is_spent(
    memory: MemoryPersistenceProvider, caplog: pytest.LogCaptureFixture
) -> None:
    builder = make_builder(memory)
    await memory.save_schedule(
        ScheduleRecord("s", "Strict", "@every 1s", {}, next_run_at=at("12:00:00"))
    )
    with caplog.at_level(logging.ERROR, logger="ruvon.beat"):
        assert await poll_scheduled_workflows(memory, builder, now=at("12:00:00.5")) == []
    assert "did not start" in caplog.text and "order_id" in caplog.text
    assert (await schedule_row(memory, "s")).next_run_at == at("12:00:01")


async def test_max_catch_up_must_be_positive(memory: MemoryPersistenceProvider) -> None:
    with pytest.raises(ConfigurationError, match="max_catch_up"):
        await poll_scheduled_workflows(memory, make_builder(memory), max_catch_up=0)


async def test_a_database_failure_gives_the_ticks_back(
    memory: MemoryPersistenceProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    builder = make_builder(memory)
    await memory.save_schedule(ScheduleRecord("s", "Tick", "@every 1s", next_run_at=at("12:00:00")))
    create = builder.create_workflow
    calls = 0

    async def flaky_create(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise PersistenceError("database went away")
        return await create(*args, **kwargs)

    monkeypatch.setattr(builder, "create_workflow", flaky_create)
    with pytest.raises(PersistenceError):
        await poll_scheduled_workflows(memory, builder, now=at("12:00:02.5"))
    row = await schedule_row(memory, "s")
    assert (row.next_run_at, row.last_run_at) == (at("12:00:01"), at("12:00:00"))
    assert len(await poll_scheduled_workflows(memory, builder, now=at("12:00:02.5"))) == 2
    assert (await schedule_row(memory, "s")).next_run_at == at("12:00:03")
