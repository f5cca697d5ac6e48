"""The beat's sweeps over the step-run ledger (DESIGN.md, "The correctness model", rule 6).

Each sweep is safe to run twice at once (two beats, or a slow sweep overlapping the next): its
statements take rows with ``FOR UPDATE SKIP LOCKED`` or insert with ``ON CONFLICT DO NOTHING``,
and everything it sends is only a hint for a claim that happens at most once.

* :meth:`Sweeps.recover_zombies` — a RUNNING run whose lease expired lost its worker: back to
  the queue (the next claim is attempt + 1), or, once ``crash_attempts`` workers died on it, its
  workflow fails FAILED_WORKER_CRASH (after a saga rollback when saga mode is on).
* :meth:`Sweeps.redispatch_lost` — a due QUEUED run nobody claimed within the dispatch timeout
  is sent again if its message is missing from the broker (lost in a Redis restart without
  persistence, reserved by a worker that died): the broker's count of the messages waiting in
  its queue says so, two sweeps in a row, not its age, so runs queued behind a backlog are
  left to wait.
* :meth:`Sweeps.reconcile` — parents still waiting for a child that ended, and complete joins
  without a join run, get their continuation; runs parked for a concurrency slot that a dead
  holder freed are woken.
* :meth:`Sweeps.fire_due_timers` — WAIT timers and approval deadlines that are due.
* :meth:`Sweeps.fail_past_deadline` — unfinished workflows past their deadline (workflow
  ``timeout``): a run for each, whose worker fails it with the same fenced, version-checked save
  as any transition (a worker's concurrent save of that version loses).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ruvon.config import Settings
from ruvon.errors import ConfigurationError
from ruvon.providers.ledger import Maintenance

if TYPE_CHECKING:
    from ruvon.cluster.runner import StepRunner

__all__ = ["SweepReport", "Sweeps"]

logger = logging.getLogger("ruvon.beat")


@dataclass
class SweepReport:
    """What one sweep did (logged, returned by the maintenance task, shown by the CLI)."""

    sweep: str
    requeued: int = 0
    failed: int = 0
    sent: int = 0
    details: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"sweep": self.sweep, "requeued": self.requeued, "failed": self.failed,
                "sent": self.sent, **self.details}  # fmt: skip


class Sweeps:
    """The sweeps of the beat (over a runner: store, builder, dispatcher, identity)."""

    def __init__(self, runner: StepRunner, settings: Settings) -> None:
        store = runner.persistence
        if not isinstance(store, Maintenance):
            raise ConfigurationError(
                f"{store!r} cannot run the beat's sweeps: they need the cluster's shared "
                "PostgreSQL database (RUVON_DATABASE_URL=postgresql://...)"
            )
        self.runner = runner
        self.persistence = store
        self.maintenance: Maintenance = store
        self.dispatcher = runner.execution
        self.settings = settings
        self._registry_synced = False
        self._suspected: tuple[int, ...] = ()  # runs the last lost-message sweep found missing

    async def recover_zombies(self) -> SweepReport:
        """Re-queue runs whose worker died; fail the workflows of runs that lost too many."""
        settings = self.settings
        report = SweepReport("recover_zombies")
        requeued = await self.maintenance.requeue_crashed(
            settings.crash_attempts, settings.sweep_batch
        )
        self.dispatcher.dispatch(requeued)
        report.requeued = len(requeued)
        exhausted = await self.maintenance.exhausted_crashes(
            settings.crash_attempts, settings.sweep_batch
        )
        for run_id in exhausted:
            outcome = await self.runner.fail_crashed(run_id, max_attempts=settings.crash_attempts)
            report.details[outcome] = report.details.get(outcome, 0) + 1
            report.failed += outcome == "failed"
        return self._logged(report)

    async def redispatch_lost(self) -> SweepReport:
        """Send again the due runs whose message went missing (not those behind a backlog).

        The broker's queue lengths are read between the two statements, after the moment the
        first one returns: the second compares them with the runs sent up to that moment. A
        run is sent when this sweep and the one before found it missing.
        """
        timeout = self.settings.dispatch_timeout_seconds
        unclaimed = await self.maintenance.unclaimed_queues(timeout)
        if unclaimed.as_of is None:
            self._suspected = ()
            return SweepReport("redispatch_lost")
        counted = self.dispatcher.waiting_messages(unclaimed.lanes)
        waiting = {lane: counted.get(lane, 0) for lane in unclaimed.lanes}
        lost = await self.maintenance.redispatch_lost(
            timeout, self.settings.sweep_batch, waiting, unclaimed.as_of, self._suspected
        )
        self._suspected = lost.suspected
        self.dispatcher.dispatch(lost.resent)
        details = {"waiting": sum(waiting.values()), "suspected": len(lost.suspected)}
        return self._logged(SweepReport("redispatch_lost", sent=len(lost.resent), details=details))

    async def reconcile(self) -> SweepReport:
        """Resume parents whose child ended, fire complete joins that have no join run, and
        wake the runs parked for a concurrency slot a dead holder freed (its lease lapsed, or
        its workflow ended without waking them), closing those of ended workflows."""
        settings = self.settings
        queue = self.dispatcher.default_queue
        grace = settings.dispatch_timeout_seconds
        parents = await self.maintenance.reconcile_parents(queue, grace, settings.sweep_batch)
        joins = await self.maintenance.reconcile_joins(queue, grace, settings.sweep_batch)
        slots = await self.maintenance.wake_slot_waiters(settings.sweep_batch)
        self.dispatcher.dispatch([*parents, *joins, *slots])
        report = SweepReport(
            "reconcile", sent=len(parents) + len(joins) + len(slots),
            details={"parents": len(parents), "joins": len(joins), "slots": len(slots)},
        )  # fmt: skip
        return self._logged(report)

    async def fire_due_timers(self) -> SweepReport:
        """Advance the cluster workflows whose WAIT timer or approval deadline is due."""
        runs = await self.maintenance.fire_due_timers(
            self.dispatcher.default_queue, self.settings.sweep_batch
        )
        self.dispatcher.dispatch(runs)
        return self._logged(SweepReport("fire_due_timers", sent=len(runs)))

    async def fail_past_deadline(self) -> SweepReport:
        """Send the cluster workflows past their deadline to a worker that fails them."""
        runs = await self.maintenance.fail_past_deadline(
            self.dispatcher.default_queue, self.settings.sweep_batch
        )
        self.dispatcher.dispatch(runs)
        return self._logged(SweepReport("fail_past_deadline", sent=len(runs)))

    async def poll_schedules(self) -> SweepReport:
        """Start the workflows of due cron schedules (registry schedules synced once first)."""
        from ruvon.cluster.schedules import poll_scheduled_workflows, sync_registry_schedules

        builder = self.runner.builder
        if not self._registry_synced:
            await sync_registry_schedules(self.persistence, builder)
            self._registry_synced = True
        started = await poll_scheduled_workflows(self.persistence, builder, self.dispatcher)
        return self._logged(SweepReport("poll_schedules", sent=len(started)))

    @staticmethod
    def _logged(report: SweepReport) -> SweepReport:
        if report.requeued or report.failed or report.sent:
            logger.info("beat sweep %s: %s", report.sweep, report.as_dict())
        return report
