"""The beat's loop: each sweep on its own thread, at its own interval, on the beat's bridge.

A sweep is a coroutine of :class:`~ruvon.cluster.sweeps.Sweeps`; its thread runs it on the
beat's :class:`~ruvon.bridge.EventLoopBridge` through a :class:`TaskThread` (as a worker runs a
task: sync step functions, such as a saga's compensations when the zombie sweep fails a
workflow, run in the sweep's thread while the loop stays free), then waits for its next turn.
One thread per sweep, so a slow one (a rollback, a cron start) never delays the others; all
share the one bridge and its small asyncpg pool.

Each sweep runs once at start, then every interval measured from the start of the previous run
(a run that overruns its interval is followed at once, never by a pile of catch-up runs). A run
that raises (the database restarting, the broker down) is logged and counted, and the next one
runs on time: the first failure in a row with its traceback, the following ones in one line,
the recovery once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ruvon.bridge import EventLoopBridge
from ruvon.cluster.sweeps import SweepReport, Sweeps
from ruvon.config import Settings
from ruvon.implementations.execution.task_thread import TaskThread

__all__ = ["SweepEvery", "SweepLoop", "sweep_schedule"]

logger = logging.getLogger("ruvon.beat")

# A run taking longer than this is cancelled (a hung connection); the statement timeout
# usually ends a stuck query long before.
_MIN_RUN_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class SweepEvery:
    """One entry of the beat's schedule: the :class:`Sweeps` method, and how often it runs."""

    sweep: str
    seconds: float


def sweep_schedule(settings: Settings) -> tuple[SweepEvery, ...]:
    """The beat's sweeps and their intervals (``RUVON_SWEEP_SECONDS``,
    ``RUVON_SCHEDULE_POLL_SECONDS``)."""
    every = settings.sweep_seconds
    return (
        SweepEvery("recover_zombies", every),
        SweepEvery("redispatch_lost", every),
        SweepEvery("reconcile", every),
        SweepEvery("fire_due_timers", every),
        SweepEvery("fail_past_deadline", every),
        SweepEvery("poll_schedules", settings.schedule_poll_seconds),
    )


class SweepLoop:
    """Runs ``schedule`` over ``sweeps`` on ``bridge`` until :meth:`stop`.

    ``on_report`` sees every completed run's report, ``on_failure`` the name of every run that
    raised (the beat's metrics).
    """

    def __init__(
        self,
        sweeps: Sweeps,
        bridge: EventLoopBridge,
        schedule: Sequence[SweepEvery],
        *,
        on_report: Callable[[SweepReport], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.sweeps = sweeps
        self.bridge = bridge
        self.schedule = tuple(schedule)
        self._on_report = on_report
        self._on_failure = on_failure
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failures: dict[str, int] = {}

    def start(self) -> None:
        """Start one thread per sweep (each runs its sweep at once)."""
        if self._threads:
            raise RuntimeError("the sweep loop is already running")
        for entry in self.schedule:
            thread = threading.Thread(
                target=self._serve, args=(entry,), name=f"ruvon-beat-{entry.sweep}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        logger.info(
            "sweeps started: %s",
            ", ".join(f"{e.sweep} every {e.seconds:g} s" for e in self.schedule),
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Let each sweep finish its current run, and wait up to ``timeout`` for all of them."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("%s did not finish within %s s", thread.name, timeout)
        self._threads.clear()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping.is_set()

    def run_once(self, sweep: str, timeout: float | None = None) -> SweepReport | None:
        """Run ``sweep`` now in this thread; its report, or None if it raised (logged)."""
        entry = next((e for e in self.schedule if e.sweep == sweep), None)
        if entry is None:
            raise ValueError(f"no sweep named {sweep!r} (known: {self._names()})")
        return self._run(entry, timeout)

    def _names(self) -> str:
        return ", ".join(e.sweep for e in self.schedule)

    def _serve(self, entry: SweepEvery) -> None:
        while not self._stopping.is_set():
            began = time.monotonic()
            self._run(entry)
            self._stopping.wait(max(0.0, began + entry.seconds - time.monotonic()))

    def _run(self, entry: SweepEvery, timeout: float | None = None) -> SweepReport | None:
        limit = timeout or max(_MIN_RUN_TIMEOUT, 10 * entry.seconds)
        method = getattr(self.sweeps, entry.sweep)
        try:
            report: SweepReport = TaskThread().run(self.bridge, asyncio.wait_for(method(), limit))
        except Exception as exc:
            self._failed(entry.sweep, exc)
            return None
        self._recovered(entry.sweep)
        if self._on_report is not None:
            self._on_report(report)
        return report

    def _failed(self, sweep: str, exc: Exception) -> None:
        failures = self._failures[sweep] = self._failures.get(sweep, 0) + 1
        if failures == 1:
            logger.exception("beat sweep %s failed; it runs again at its next turn", sweep)
        else:
            logger.error("beat sweep %s failed again (%d in a row): %s", sweep, failures, exc)
        if self._on_failure is not None:
            self._on_failure(sweep)

    def _recovered(self, sweep: str) -> None:
        failures = self._failures.pop(sweep, 0)
        if failures:
            logger.info("beat sweep %s works again after %d failed run(s)", sweep, failures)
