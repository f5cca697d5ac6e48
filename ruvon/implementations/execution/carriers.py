"""Carrier threads: a prefork pool process carries several step runs at once.

A prefork pool process runs one Celery task at a time, and a step run spends most of its time
waiting for PostgreSQL (each commit is an fsync), so one run at a time leaves the process idle
between its commits. Yet the task's thread must stay the one that runs step functions with a
``timeout``: only the main thread receives the ``SIGALRM`` that stops an attempt where it blocks
(:mod:`~ruvon.implementations.execution.time_limit`).

So a run that can never need that signal (its workflow has no step timeout and no deadline) is
handed over, right after its claim, to a carrier thread, which serves its sync calls from then
on (:meth:`TaskThread.run <ruvon.implementations.execution.task_thread.TaskThread.run>`), and
the task returns: the process takes its next message while the run goes on. At most ``size``
runs are carried at once; with every carrier busy the task thread keeps the run itself, as
before, so a busy process takes no more messages than it can serve. A carried run is a claimed
run like any other (leased, heartbeated, fenced): if the process dies, its lease expires and
the zombie sweep gives it to the next attempt. The process waits for its carried runs before
it exits (:meth:`RunCarriers.drain`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

__all__ = ["RunCarriers"]

logger = logging.getLogger("ruvon.worker")


class RunCarriers:
    """Up to ``size`` threads, each carrying one handed-over run at a time to its end.

    The threads start on first need and then wait for the next run (a thread started per run
    would cost its start-up each time); they are daemons, so a process that must go away is
    never held by one (:meth:`drain` is how an exiting process waits for them).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"RunCarriers needs at least one carrier, not {size}")
        self.size = size
        self._lock = threading.Condition()
        self._busy = 0
        self._threads = 0
        self._runs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    @property
    def busy(self) -> int:
        """Runs being carried now."""
        with self._lock:
            return self._busy

    def carry(self, serve: Callable[[], None]) -> bool:
        """Have a carrier thread call ``serve()`` if one is free; False (nothing done) if not."""
        with self._lock:
            if self._busy >= self.size:
                return False
            self._busy += 1
            if self._threads < self._busy:
                thread = threading.Thread(target=self._carry, name="ruvon-run-carrier", daemon=True)
                try:
                    thread.start()
                except BaseException:
                    self._busy -= 1
                    raise
                self._threads += 1
        self._runs.put(serve)
        return True

    def drain(self, timeout: float) -> bool:
        """Wait until no run is carried (at most ``timeout`` seconds); whether none is left."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning(
                        "%d carried step run(s) still running after %.0fs; leaving them to "
                        "their leases (the zombie sweep gives them to the next attempt)",
                        self._busy,
                        timeout,
                    )
                    return False
                self._lock.wait(left)
        return True

    def _carry(self) -> None:
        while True:
            serve = self._runs.get()
            try:
                serve()
            except BaseException:  # the run's own outcome was handed back; this is the carrier's
                logger.exception("a carrier thread failed while serving its step run")
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()
