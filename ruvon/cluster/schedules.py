"""Schedules that start workflows: the spec, the registry sync, the beat's poll, pause and resume.

A schedule is a row of ``scheduled_workflows``: its ``cron`` column holds the spec as text (see
:class:`~ruvon.cluster.schedule_spec.ScheduleSpec`), ``next_run_at`` the next tick due.
Registry entries with a ``schedule`` own the rows named ``registry:<type>``.

**Each tick starts its workflow once.** The poll reads the due rows, then takes a schedule's due
ticks with one conditional statement (PostgreSQL: ``UPDATE ... WHERE next_run_at = <the value it
read> AND enabled``). Of two pollers that read the same row, one matches and the other matches
nothing and moves on. The idempotency key ``schedule:<name>:<tick>`` is the second guard: a tick
started twice anyway (a registry sync rewriting a row while a poll advanced it) finds its workflow
already there. A poller that dies between its claim and the start loses that tick (at most once,
never twice); a start that fails because of the database gives its ticks back for the next poll.

Every provider Ruvon ships implements the same claims (SQLite: ``UPDATE ... WHERE next_run_at =
?`` under the file's write lock; Redis: WATCH / MULTI on the schedules hash; memory: under its
lock; ``tests/contract/test_schedule_claims.py``), so several embedded runners on one file
(``ruvon worker --embedded``) also start each tick once. A provider without them (a third
party's) gets a fallback that reads and rewrites rows through ``list_schedules`` /
``save_schedule``: right for one poller in one process, and it guarantees nothing for
concurrent pollers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ruvon.clock import utc_now
from ruvon.cluster.schedule_spec import ScheduleSpec
from ruvon.cluster.schedule_spec import as_utc as _utc
from ruvon.errors import (
    AmbiguousScheduleName,
    ConfigurationError,
    DefinitionError,
    PersistenceError,
    RuvonError,
    ScheduleNotFound,
)
from ruvon.records import ScheduleRecord

if TYPE_CHECKING:
    from ruvon.builder import WorkflowBuilder
    from ruvon.providers.execution import ExecutionProvider
    from ruvon.providers.persistence import PersistenceProvider

__all__ = [
    "REGISTRY_PREFIX",
    "AmbiguousScheduleName",
    "ScheduleClaims",
    "ScheduleNotFound",
    "ScheduleSpec",
    "find_schedule",
    "poll_scheduled_workflows",
    "set_schedule_enabled",
    "sync_registry_schedules",
]

logger = logging.getLogger("ruvon.beat")

REGISTRY_PREFIX = "registry:"
DUE_BATCH = 100

_reported: set[tuple[str, ...]] = set()


@runtime_checkable
class ScheduleClaims(Protocol):
    """Conditional schedule updates; PostgreSQL's provider implements them as single statements.

    Datetimes are UTC-aware; ``expected`` is the ``next_run_at`` the caller read, and an update
    whose row no longer holds it changes nothing and returns False (or None).
    """

    async def due_schedules(
        self, now: datetime | None, limit: int
    ) -> tuple[datetime, list[ScheduleRecord]]:
        """Enabled schedules due at ``now`` (None: the store's clock), oldest tick first, and
        the moment they were judged against."""
        ...

    async def claim_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime
    ) -> bool:
        """Take the ticks up to ``last_run_at``; only one caller holding ``expected`` wins."""
        ...

    async def release_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime | None
    ) -> bool:
        """Give back the ticks from ``next_run_at`` on, after a start failed."""
        ...

    async def update_schedule_enabled(
        self, name: str, enabled: bool, next_run_at: datetime | None
    ) -> ScheduleRecord | None:
        """Pause or resume; a resume of a paused schedule moves it to ``next_run_at``."""
        ...


class _ListedSchedules:
    """:class:`ScheduleClaims` over ``list_schedules``/``save_schedule``: one poller only."""

    def __init__(self, persistence: PersistenceProvider) -> None:
        self.persistence = persistence

    async def _find(self, name: str) -> ScheduleRecord | None:
        return next((s for s in await self.persistence.list_schedules() if s.name == name), None)

    async def due_schedules(
        self, now: datetime | None, limit: int
    ) -> tuple[datetime, list[ScheduleRecord]]:
        moment = _utc(now) if now is not None else utc_now()
        due = [
            s
            for s in await self.persistence.list_schedules()
            if s.enabled and s.next_run_at is not None and _utc(s.next_run_at) <= moment
        ]
        due.sort(key=lambda s: _utc(s.next_run_at or moment))
        return moment, due[:limit]

    async def claim_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime
    ) -> bool:
        row = await self._find(name)
        if row is None or not row.enabled:
            return False
        return await self._move(row, expected, next_run_at, last_run_at)

    async def release_schedule_ticks(
        self, name: str, expected: datetime, next_run_at: datetime, last_run_at: datetime | None
    ) -> bool:
        row = await self._find(name)
        return row is not None and await self._move(row, expected, next_run_at, last_run_at)

    async def _move(
        self, row: ScheduleRecord, expected: datetime, to: datetime, last: datetime | None
    ) -> bool:
        if row.next_run_at is None or _utc(row.next_run_at) != _utc(expected):
            return False
        await self.persistence.save_schedule(replace(row, next_run_at=to, last_run_at=last))
        return True

    async def update_schedule_enabled(
        self, name: str, enabled: bool, next_run_at: datetime | None
    ) -> ScheduleRecord | None:
        row = await self._find(name)
        if row is None:
            return None
        resumed = enabled and not row.enabled
        updated = replace(
            row, enabled=enabled, next_run_at=next_run_at if resumed else row.next_run_at
        )
        await self.persistence.save_schedule(updated)
        return updated


def _claims(persistence: PersistenceProvider) -> ScheduleClaims:
    if isinstance(persistence, ScheduleClaims):
        return persistence
    return _ListedSchedules(persistence)


def _report_once(key: tuple[str, ...], message: str, *args: object) -> None:
    """Log a condition that persists across polls once per process, not once per second."""
    if key not in _reported:
        _reported.add(key)
        logger.error(message, *args)


# ---------------------------------------------------------------------- registry sync
async def sync_registry_schedules(
    persistence: PersistenceProvider,
    builder: WorkflowBuilder,
    *,
    now: datetime | None = None,
    strict: bool = False,
) -> list[str]:
    """Write the row ``registry:<type>`` of every registry entry with a ``schedule``.

    A new or changed spec gets the first tick after ``now``; an unchanged one is left alone. A
    paused row stays paused either way. An invalid spec is logged and skipped, so one bad entry
    does not stop the others (``strict`` raises its ``DefinitionError`` instead). Returns the
    names of the registry schedules now in place.
    """
    moment = _utc(now) if now is not None else utc_now()
    existing = {s.name: s for s in await persistence.list_schedules()}
    names: list[str] = []
    for workflow_type, value in builder.registry_schedules():
        name = f"{REGISTRY_PREFIX}{workflow_type}"
        try:
            spec = ScheduleSpec.parse(value, schedule=name)
        except DefinitionError as exc:
            if strict:
                raise
            logger.error("registry schedule skipped: %s", exc)
            continue
        row = existing.get(name)
        if row is None:
            row = ScheduleRecord(
                name, workflow_type, spec.text, next_run_at=spec.next_after(moment)
            )
            await persistence.save_schedule(row)
        elif (
            row.workflow_type != workflow_type
            or _stored_text(row) != spec.text
            or row.next_run_at is None
        ):
            row = replace(
                row,
                workflow_type=workflow_type,
                cron=spec.text,
                next_run_at=spec.next_after(moment),
            )
            await persistence.save_schedule(row)
        names.append(name)
    return names


def _stored_text(row: ScheduleRecord) -> str | None:
    try:
        return ScheduleSpec.stored(row.cron, schedule=row.name).text
    except DefinitionError:
        return None


# ---------------------------------------------------------------------- the poll
async def poll_scheduled_workflows(
    persistence: PersistenceProvider,
    builder: WorkflowBuilder,
    execution: ExecutionProvider | None = None,
    *,
    now: datetime | None = None,
    max_catch_up: int = 10,
) -> list[str]:
    """Start the workflows of every due tick of every enabled schedule; return their ids.

    ``now`` defaults to the database clock on PostgreSQL (the local clock elsewhere). A schedule
    that missed more than ``max_catch_up`` ticks starts only the latest ``max_catch_up`` (the
    older ones are logged as skipped) and moves on to its next future tick.
    """
    if max_catch_up < 1:
        raise ConfigurationError(f"max_catch_up must be at least 1, not {max_catch_up}")
    claims = _claims(persistence)
    moment, due = await claims.due_schedules(_utc(now) if now is not None else None, DUE_BATCH)
    scheduled = {workflow_type for workflow_type, _ in builder.registry_schedules()}
    started: list[str] = []
    for schedule in due:
        if _startable(schedule, builder, scheduled):
            started += await _fire(schedule, moment, persistence, builder, execution, max_catch_up)
    return started


def _startable(schedule: ScheduleRecord, builder: WorkflowBuilder, scheduled: set[str]) -> bool:
    """Checked before claiming, so a worker that cannot start the type leaves the tick alone."""
    name, workflow_type = schedule.name, schedule.workflow_type
    if name.startswith(REGISTRY_PREFIX) and workflow_type not in scheduled:
        _report_once(
            ("unscheduled", name),
            "schedule %s not fired: this worker's registry has no schedule for %s",
            name,
            workflow_type,
        )
        return False
    try:
        builder.get_definition(workflow_type)
    except RuvonError as exc:
        _report_once(("type", name, workflow_type), "schedule %s not fired: %s", name, exc)
        return False
    return True


async def _fire(
    schedule: ScheduleRecord,
    now: datetime,
    persistence: PersistenceProvider,
    builder: WorkflowBuilder,
    execution: ExecutionProvider | None,
    max_catch_up: int,
) -> list[str]:
    """Claim a schedule's due ticks with one conditional update, then start one workflow each."""
    name = schedule.name
    try:
        spec = ScheduleSpec.stored(schedule.cron, schedule=name)
    except DefinitionError as exc:
        _report_once(("spec", name, schedule.cron), "schedule %s not fired: %s", name, exc)
        return []
    assert schedule.next_run_at is not None  # due schedules have one
    first = _utc(schedule.next_run_at)
    ticks, skipped = spec.due_ticks(first, now, max_catch_up)
    following = spec.next_after(ticks[-1])
    claims = _claims(persistence)
    if not await claims.claim_schedule_ticks(name, first, following, ticks[-1]):
        return []  # another poller took these ticks, or the schedule was paused meanwhile
    if skipped:
        logger.warning(
            "schedule %s: skipped the missed ticks from %s to before %s (max_catch_up=%d)",
            name, first.isoformat(), ticks[0].isoformat(), max_catch_up,
        )  # fmt: skip
    started: list[str] = []
    for index, tick in enumerate(ticks):
        try:
            workflow_id = await _start(schedule, tick, persistence, builder, execution)
        except PersistenceError:
            # The database failed: give the ticks not started back to the next poll.
            previous = ticks[index - 1] if index else schedule.last_run_at
            try:
                await claims.release_schedule_ticks(name, following, tick, previous)
            except PersistenceError:
                logger.exception("schedule %s: could not give back the tick %s", name, tick)
            raise
        except Exception:
            # Bad initial data, a definition that no longer loads: this tick is spent.
            logger.exception("schedule %s: the workflow of the tick %s did not start", name, tick)
            continue
        if workflow_id is not None:
            started.append(workflow_id)
    return started


async def _start(
    schedule: ScheduleRecord,
    tick: datetime,
    persistence: PersistenceProvider,
    builder: WorkflowBuilder,
    execution: ExecutionProvider | None,
) -> str | None:
    """Start the workflow of one tick; None when that tick's workflow already exists."""
    moment = _utc(tick).isoformat()
    key = f"schedule:{schedule.name}:{moment}"
    if await persistence.find_by_idempotency_key(key) is not None:
        logger.info("schedule %s: the tick %s was already started", schedule.name, moment)
        return None
    workflow = await builder.create_workflow(
        schedule.workflow_type,
        dict(schedule.initial_data),
        persistence_provider=persistence,
        execution_provider=execution,
        idempotency_key=key,
        metadata={"schedule": schedule.name, "scheduled_for": moment},
    )
    logger.info(
        "schedule %s: started %s workflow %s for the tick %s",
        schedule.name, schedule.workflow_type, workflow.id, moment,
    )  # fmt: skip
    return workflow.id


# ---------------------------------------------------------------------- pause and resume
async def set_schedule_enabled(
    persistence: PersistenceProvider,
    name: str,
    enabled: bool,
    *,
    now: datetime | None = None,
    exact: bool = False,
) -> ScheduleRecord:
    """Pause (``enabled=False``) or resume a schedule; return the updated row.

    ``name`` is found by :func:`find_schedule` (``exact`` as there).

    Resuming a paused schedule moves its next run to the first tick after ``now``: ticks missed
    while paused are not caught up. Raises :class:`ScheduleNotFound` for an unknown name.
    """
    row = find_schedule(await persistence.list_schedules(), name, exact=exact)
    next_run_at = None
    if enabled and not row.enabled:
        moment = _utc(now) if now is not None else utc_now()
        next_run_at = ScheduleSpec.stored(row.cron, schedule=row.name).next_after(moment)
    updated = await _claims(persistence).update_schedule_enabled(row.name, enabled, next_run_at)
    if updated is None:
        raise ScheduleNotFound(f"schedule '{row.name}' was deleted meanwhile")
    return updated


def find_schedule(
    schedules: Iterable[ScheduleRecord], name: str, *, exact: bool = False
) -> ScheduleRecord:
    """The schedule ``name`` names: its full name, or a registry type without ``registry:``.

    ``ruvon schedules list`` shows a registry schedule as ``registry:<type>``, but people write
    the type. A bare name that is both a schedule's name and ``registry:<name>`` is refused
    (:class:`AmbiguousScheduleName`, listing both) rather than guessed, unless ``exact`` says
    it is the full name. An unknown name raises :class:`ScheduleNotFound` listing the known ones.
    """
    rows = list(schedules)
    named = next((s for s in rows if s.name == name), None)
    registry = None
    if not exact and not name.startswith(REGISTRY_PREFIX):
        registry = next((s for s in rows if s.name == REGISTRY_PREFIX + name), None)
    if named is not None and registry is not None:
        raise AmbiguousScheduleName(
            f"'{name}' names two schedules: '{named.name}' ({named.workflow_type}, "
            f"{named.cron}) and '{registry.name}' ({registry.workflow_type}, {registry.cron}); "
            f"write '{registry.name}' for the registry one, or --exact for '{named.name}' itself"
        )
    found = named or registry
    if found is None:
        known = ", ".join(s.name for s in rows) or "none"
        raise ScheduleNotFound(f"no schedule named '{name}' (known: {known})")
    return found
