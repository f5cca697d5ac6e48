"""The embedded runner: fires due WAIT timers, approval deadlines and schedules on one database.

Embedded (SQLite), nothing else wakes a workflow: without a runner a WAIT step, an
``approval_timeout`` or a registry ``schedule:`` waits until someone types ``ruvon resume``.
``ruvon worker --embedded`` runs :class:`EmbeddedRunner` in a loop; each pass

1. fires the due timers: the workflows ``list_due_timers`` names (WAITING_TIMER past its
   ``run_at``, WAITING_HUMAN past its approval deadline), each claimed first
   (:mod:`ruvon.embedded.claims`) and then run here, in this process, to its next wait, as
   ``ruvon resume`` runs it;
2. fails the workflows past their deadline (workflow-level ``timeout``): those
   ``list_past_deadline`` names that wait (for a timer, a person, an event) or that a dead
   claimant left mid-way, each claimed, then run here, where the engine's deadline check fails
   it (compensating under saga mode). One running in a live process is left to it: its engine
   makes the same check at its next step boundary and stops the step running at the deadline;
3. starts the due schedule ticks with the cluster's own poll
   (:func:`ruvon.cluster.schedules.poll_scheduled_workflows`: one conditional claim per tick,
   then an idempotency key per tick), and runs each new workflow to its next wait;
4. now and then, takes over workflows whose claimant died mid-way (a runner killed with
   SIGKILL) and runs them on from their last committed save.

Two runners on one file (or a runner and ``ruvon resume``) are safe: each timer is fired by the
one whose claim commits, each tick is started by the one whose tick claim commits. Every
write is a transaction of its own, so a runner killed at any point leaves each workflow as its
last save left it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ruvon.clock import utc_now
from ruvon.cluster.schedules import poll_scheduled_workflows, sync_registry_schedules
from ruvon.embedded.claims import Claimant, claim_workflow, holder, release_workflow
from ruvon.errors import ConcurrencyConflict, ConfigurationError, PersistenceError, RuvonError
from ruvon.models import WorkflowStatus
from ruvon.records import ListPosition, WorkflowRecord

if TYPE_CHECKING:
    from ruvon.builder import WorkflowBuilder
    from ruvon.providers.persistence import PersistenceProvider
    from ruvon.workflow import Workflow

__all__ = ["EmbeddedRunner", "PassReport", "RunnerOptions"]

logger = logging.getLogger("ruvon.runner")

# Statuses a claimant leaves behind when it dies while running a workflow on.
_INTERRUPTED = (
    WorkflowStatus.ACTIVE,
    WorkflowStatus.PENDING_ASYNC,
    WorkflowStatus.PENDING_PARALLEL,
    WorkflowStatus.PENDING_SUB_WORKFLOW,
)
_WAITING = (WorkflowStatus.WAITING_TIMER, WorkflowStatus.WAITING_HUMAN)
# A parent, its child, the child's child ...: how deep one drive follows sub-workflows.
_MAX_DEPTH = 20


@dataclass(frozen=True)
class RunnerOptions:
    """How often a runner looks, and how much it takes per look.

    ``interval``: seconds between passes; ``batch``: due timers taken per pass;
    ``max_catch_up``: missed ticks a schedule starts at most after a pause; ``recover_every``:
    seconds between scans for workflows whose claimant died (0: every pass).
    """

    interval: float = 1.0
    batch: int = 100
    max_catch_up: int = 10
    recover_every: float = 30.0

    def __post_init__(self) -> None:
        for name in ("interval", "recover_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"runner option {name}: expected seconds, got {value!r}")
            if not math.isfinite(value) or value < 0 or (name == "interval" and value == 0):
                raise ConfigurationError(
                    f"runner option {name}: must be a positive number of seconds, not {value!r}"
                )
        for name in ("batch", "max_catch_up"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"runner option {name}: must be a whole number of at least 1, not {value!r}"
                )


@dataclass
class PassReport:
    """What one pass did (ids of the workflows it moved, by why)."""

    fired: list[str] = field(default_factory=list)  # WAIT timers
    timed_out: list[str] = field(default_factory=list)  # approval deadlines
    started: list[str] = field(default_factory=list)  # schedule ticks
    deadlines: list[str] = field(default_factory=list)  # failed at their workflow deadline
    recovered: list[str] = field(default_factory=list)  # taken over from a dead claimant
    skipped: int = 0  # due, but another process holds it

    @property
    def moved(self) -> int:
        return (
            len(self.fired) + len(self.timed_out) + len(self.started) + len(self.recovered)
            + len(self.deadlines)
        )  # fmt: skip


class EmbeddedRunner:
    """Fires what is due on one database, in this process (see the module docstring).

    ``builder`` carries the registry (schedules, child workflow types) and the providers the
    workflows run on; ``prepare`` is called with each record before it runs (the CLI makes the
    step modules next to its YAML importable there).
    """

    def __init__(
        self,
        builder: WorkflowBuilder,
        persistence: PersistenceProvider,
        *,
        claimant: Claimant | None = None,
        options: RunnerOptions | None = None,
        prepare: Callable[[WorkflowRecord], None] | None = None,
    ) -> None:
        self.builder = builder
        self.persistence = persistence
        self.me = claimant or Claimant.here("runner")
        self.options = options or RunnerOptions()
        self.prepare = prepare
        self._synced = False
        self._last_recovery: float | None = None

    # ------------------------------------------------------------------ passes
    async def run_until(self, stop: asyncio.Event) -> None:
        """Pass after pass, ``interval`` apart, until ``stop`` is set (between two items)."""
        while not stop.is_set():
            try:
                await self.run_once(stop)
            except PersistenceError as exc:
                # The file is locked for longer than the provider waits, the disk is full...:
                # nothing half-done is kept (each write is a transaction); try the next pass.
                logger.error("pass failed, trying again in %gs: %s", self.options.interval, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.interval)

    async def run_once(self, stop: asyncio.Event | None = None) -> PassReport:
        """One pass: due timers, deadlines, due schedule ticks, and (when it is time) dead
        claimants."""
        report = PassReport()
        await self._fire_due_timers(report, stop)
        if stop is None or not stop.is_set():
            await self._fail_past_deadline(report, stop)
        if stop is None or not stop.is_set():
            await self._start_due_schedules(report, stop)
        if (stop is None or not stop.is_set()) and self._recovery_due():
            await self._recover(report, stop)
        return report

    async def _fire_due_timers(self, report: PassReport, stop: asyncio.Event | None) -> None:
        for workflow_id in await self.persistence.list_due_timers(utc_now(), self.options.batch):
            if stop is not None and stop.is_set():
                return
            wf = await self.builder.load_workflow(workflow_id)
            if wf.status not in _WAITING or wf.record.run_at is None:
                continue  # moved on since the listing
            if wf.record.run_at > utc_now():
                continue  # its deadline moved (a person resumed it and it waits again)
            timer = wf.status is WorkflowStatus.WAITING_TIMER
            what = "WAIT timer" if timer else "approval deadline"
            into = report.fired if timer else report.timed_out
            if await self._advance(wf, what, report):
                into.append(workflow_id)

    async def _fail_past_deadline(self, report: PassReport, stop: asyncio.Event | None) -> None:
        now = utc_now()
        for workflow_id in await self.persistence.list_past_deadline(now, self.options.batch):
            if stop is not None and stop.is_set():
                return
            wf = await self.builder.load_workflow(workflow_id)
            if wf.status.is_terminal:
                continue  # ended since the listing
            claim = holder(wf)
            if wf.status in _INTERRUPTED and (claim is None or self.me.is_live(claim)):
                # Running in some process (`ruvon run`, a live runner): its engine checks the
                # deadline at its next step boundary and stops the step running at it.
                continue
            if await self._advance(wf, "workflow deadline", report) and wf.status.is_terminal:
                report.deadlines.append(workflow_id)

    async def _start_due_schedules(self, report: PassReport, stop: asyncio.Event | None) -> None:
        if not self._synced:
            await sync_registry_schedules(self.persistence, self.builder)
            self._synced = True
        started = await poll_scheduled_workflows(
            self.persistence, self.builder, max_catch_up=self.options.max_catch_up
        )
        # Claimed all at once first: one that a stop leaves unrun carries this process's
        # claim, stale once it exits, so the next runner takes it over and runs it.
        claimed = []
        for workflow_id in started:
            report.started.append(workflow_id)
            wf = await self.builder.load_workflow(workflow_id)
            if await claim_workflow(wf, self.me) is None:
                claimed.append(wf)
        for wf in claimed:
            if stop is not None and stop.is_set():
                return
            await self._advance(wf, "schedule tick", report)

    def _recovery_due(self) -> bool:
        now = asyncio.get_running_loop().time()
        last = self._last_recovery
        if last is not None and now - last < self.options.recover_every:
            return False
        self._last_recovery = now
        return True

    async def _recover(self, report: PassReport, stop: asyncio.Event | None) -> None:
        """Workflows a dead claimant left mid-way: run them on from their last save."""
        for status in _INTERRUPTED:
            after: ListPosition | None = None
            while True:  # every page: the one left behind may be the oldest
                records = await self.persistence.list_workflows(
                    status=status, after=after, limit=self.options.batch
                )
                for record in records:
                    if stop is not None and stop.is_set():
                        return
                    claim = record.runtime.get("claim")
                    if claim is None or self.me.holds(claim) or self.me.is_live(claim):
                        continue  # unclaimed: `ruvon run` or a person has it, not a runner
                    wf = await self.builder.load_workflow(record.id)
                    if await self._advance(wf, f"workflow left by {claim['owner']}", report):
                        report.recovered.append(record.id)
                if len(records) < self.options.batch:
                    break
                after = ListPosition.of(records[-1])

    # ------------------------------------------------------------------ one workflow
    async def _advance(self, wf: Workflow, what: str, report: PassReport) -> bool:
        """Claim ``wf``, run it to its next wait, release it; False if another process had it."""
        if self.prepare is not None:
            self.prepare(wf.record)
        step = wf.current_step
        taken = await claim_workflow(wf, self.me)
        if taken is not None:
            report.skipped += 1
            logger.debug("%s of workflow %s: held by %s", what, wf.id, taken["owner"])
            return False
        try:
            wf = await self._drive(wf, 0)
        except ConcurrencyConflict:
            logger.info("%s of workflow %s: another process moved it first", what, wf.id)
            return False
        except PersistenceError:
            raise  # the database's failure, not this workflow's: the pass stops here
        except Exception as exc:
            # A failing step is recorded by the engine and does not land here; this is what it
            # could not record (a step module that no longer imports...). The next pass retries.
            logger.error(
                "%s of workflow %s at step %s: %s: %s", what, wf.id, step, type(exc).__name__, exc
            )
            return False
        finally:
            await self._release(wf)
        error = f" ({wf.error})" if wf.status.is_failed and wf.error else ""
        logger.info(
            "%s of %s workflow %s at step %s: now %s%s%s",
            what, wf.workflow_type, wf.id, step, wf.status,
            f" at step {wf.current_step}" if wf.current_step and not wf.status.is_terminal else "",
            error,
        )  # fmt: skip
        return True

    async def _release(self, wf: Workflow) -> None:
        if holder(wf) is None:
            return
        try:
            if not await release_workflow(wf, self.me):
                # This copy was stale (a drive that stopped on a conflict): drop it as stored.
                await release_workflow(await self.builder.load_workflow(wf.id), self.me)
        except RuvonError:
            # The claim stays; it is stale once this process is gone, so nothing is stuck.
            logger.exception("workflow %s: could not drop this runner's claim", wf.id)

    async def _drive(self, wf: Workflow, depth: int) -> Workflow:
        """Run ``wf`` until it waits on something not due yet, or ends (children included)."""
        while True:
            status = await wf.run()
            child_id = wf.record.blocked_on_child_id
            if status is not WorkflowStatus.PENDING_SUB_WORKFLOW or child_id is None:
                return wf
            if depth >= _MAX_DEPTH:
                return wf
            child = await self.builder.load_workflow(child_id)
            child = await self._drive(child, depth + 1)
            if not child.status.is_terminal:
                return wf  # the child waits; its own timer (or a person) moves it on
            wf = await self.builder.load_workflow(wf.id)
            version = wf.record.version
            if wf.status is WorkflowStatus.PENDING_SUB_WORKFLOW:
                try:
                    await wf.next_step()  # the child ended without moving its parent on
                except Exception:
                    if not wf.status.is_terminal:
                        raise
                stuck = wf.status is WorkflowStatus.PENDING_SUB_WORKFLOW
                if stuck and wf.record.version == version:
                    return wf
