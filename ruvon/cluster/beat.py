"""The Ruvon beat: one process that runs the cluster's sweeps and cron poll against PostgreSQL.

==========================  ==================================  =============================
sweep                       what it does                        interval
==========================  ==================================  =============================
recover_zombies             re-queue runs whose worker died,    ``RUVON_SWEEP_SECONDS`` (5)
                            fail those that lost too many
redispatch_lost             re-send runs whose message is       ``RUVON_SWEEP_SECONDS``
                            missing from the broker
reconcile                   resume parents whose child ended,   ``RUVON_SWEEP_SECONDS``
                            fire complete joins, wake runs
                            parked for a slot a dead holder
                            freed
fire_due_timers             WAIT timers, approval deadlines     ``RUVON_SWEEP_SECONDS``
fail_past_deadline          fail unfinished workflows past      ``RUVON_SWEEP_SECONDS``
                            their deadline (``timeout``)
poll_schedules              start cron-scheduled workflows      ``RUVON_SCHEDULE_POLL_SECONDS``
                                                                (1)
==========================  ==================================  =============================

``ruvon beat`` (``python -m ruvon.cluster.beat``) runs :func:`main`. The sweeps run here, in
the beat's own process, on its own :class:`~ruvon.bridge.EventLoopBridge` with a small asyncpg
pool (two connections, ``application_name`` ``ruvon-beat``); the runs they queue go out with the
Celery executor (:class:`~ruvon.implementations.execution.celery.CeleryExecutionProvider`),
like any run. None of it goes through the task stream: a sweep used to be a Celery task sent
every second, most of what Flower showed. The beat builds a
:class:`~ruvon.builder.WorkflowBuilder` from the same settings as the workers (the registry of
``RUVON_REGISTRY_FILE``, whose step modules it imports), since the zombie sweep fails
workflows (saga rollbacks included) and the cron poll starts them.

Two beats at once are safe, only wasteful: every sweep statement takes its rows ``FOR UPDATE
SKIP LOCKED`` or inserts ``ON CONFLICT DO NOTHING``, a zombie's workflow is failed under a claim
(:meth:`~ruvon.cluster.runner.StepRunner.fail_crashed`), a cron tick is taken by one
conditional update.

The beat waits for PostgreSQL at start (retrying), and a sweep that fails later (the database
restarting) is logged and runs again at its next turn (:mod:`ruvon.cluster.beat_loop`). SIGTERM
or SIGINT: each sweep finishes its current run, then the pool and the broker connections
close. ``/metrics`` on ``RUVON_BEAT_METRICS_PORT`` (:mod:`ruvon.cluster.beat_metrics`);
``RUVON_LOG_FORMAT=json`` for JSON logs.

With ``RUVON_HEALTH_DIR`` set the beat keeps ``<dir>/beat.alive`` fresh from its start (every
``RUVON_HEALTH_INTERVAL`` seconds), and ``<dir>/beat.ready`` too once it is connected and its
sweeps run, until it stops: ``ruvon health --worker-file DIR/beat.alive --max-age 60`` is its
liveness probe, ``.ready`` its readiness. While the database cannot be reached at start the
beat is alive but not ready, so a liveness probe does not restart it in a loop (it retries by
itself).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ruvon.bridge import EventLoopBridge
from ruvon.cluster.beat_loop import SweepLoop, sweep_schedule
from ruvon.cluster.beat_metrics import BeatMetrics, serve_beat_metrics
from ruvon.cluster.runner import StepRunner
from ruvon.cluster.sweeps import Sweeps
from ruvon.config import Settings
from ruvon.errors import ConfigurationError
from ruvon.implementations.execution.celery import CeleryExecutionProvider
from ruvon.implementations.observability.health import is_cluster_url
from ruvon.implementations.observability.heartbeat_files import BEAT_ROLE, HeartbeatFiles
from ruvon.implementations.observability.json_logs import log_format_from_env, use_json_logs
from ruvon.implementations.observability.settings import ObservabilitySettings

__all__ = ["APPLICATION_NAME", "BEAT_NODE", "Beat", "main", "run_beat"]

logger = logging.getLogger("ruvon.beat")

APPLICATION_NAME = "ruvon-beat"
#: The name of the beat's health files in RUVON_HEALTH_DIR: beat.alive, beat.ready.
BEAT_NODE = "beat"
POOL_SIZE = 2
OPEN_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0  # within the chart's terminationGracePeriodSeconds (30)
_RETRY_MAX_SECONDS = 30.0
_LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(message)s"


class Beat:
    """The beat's resources (bridge, provider, dispatcher, builder, runner, sweeps) and loop."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        if not is_cluster_url(self.settings.database_url):
            raise ConfigurationError(
                "the Ruvon beat sweeps the cluster's shared PostgreSQL database: set "
                "RUVON_DATABASE_URL=postgresql://USER@HOST/DB"
            )
        self.bridge: EventLoopBridge | None = None
        self.execution: CeleryExecutionProvider | None = None
        self.metrics: BeatMetrics | None = None
        self.loop: SweepLoop | None = None

    def open(self) -> SweepLoop:
        """Connect to PostgreSQL and the broker; build the sweeps (raises if it cannot)."""
        from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider

        settings = self.settings
        schedule = sweep_schedule(settings)
        if self.metrics is None:
            self.metrics = serve_beat_metrics(settings, [entry.sweep for entry in schedule])
        bridge = EventLoopBridge(name="ruvon-beat")
        execution = CeleryExecutionProvider(settings=settings)
        provider = PostgresPersistenceProvider(
            settings.database_url,
            1,
            POOL_SIZE,
            statement_timeout=settings.statement_timeout,
            max_state_bytes=settings.max_state_bytes,
            application_name=APPLICATION_NAME,
        )
        try:
            bridge.run(provider.initialize(), timeout=OPEN_TIMEOUT)
            bridge.on_close(provider.close)
            observer = self.metrics.observer() if self.metrics is not None else None
            runner = StepRunner.for_settings(
                settings,
                provider,
                execution,
                owner=f"beat:{socket.gethostname()}:{os.getpid()}",
                observer=observer,
            )
            sweeps = Sweeps(runner, settings)
        except BaseException:
            with contextlib.suppress(Exception):  # keep the first error
                bridge.run(provider.close(), timeout=OPEN_TIMEOUT)
            bridge.close()
            execution.close()
            raise
        self.bridge, self.execution = bridge, execution
        metrics = self.metrics
        self.loop = SweepLoop(
            sweeps,
            bridge,
            schedule,
            on_report=(lambda r: metrics.sweeps.record_sweep(r.as_dict())) if metrics else None,
            on_failure=metrics.sweeps.record_failure if metrics else None,
        )
        return self.loop

    def open_when_ready(self, stop: threading.Event) -> SweepLoop | None:
        """:meth:`open`, retried with a growing pause until it works or ``stop`` is set."""
        pause = 1.0
        while not stop.is_set():
            try:
                return self.open()
            except ConfigurationError:
                raise
            except Exception as exc:
                logger.error("the beat cannot start (%s); trying again in %.0f s", exc, pause)
            stop.wait(pause)
            pause = min(2 * pause, _RETRY_MAX_SECONDS)
        return None

    def run_until(self, stop: threading.Event) -> None:
        """Sweep until ``stop`` is set, then close everything."""
        health = _start_health_files()
        try:
            loop = self.open_when_ready(stop)
            if loop is None:
                return
            loop.start()
            if health is not None:
                health.mark_ready()
            while not stop.wait(1.0):
                pass
        finally:
            if health is not None:
                health.mark_not_ready()
            self.close()
            if health is not None:
                health.stop()

    def close(self) -> None:
        """Stop the sweeps (each finishes its current run), then the pool, broker, metrics."""
        loop, self.loop = self.loop, None
        if loop is not None:
            loop.stop(STOP_TIMEOUT)
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.close()  # closes the provider's pool on its loop (registered with on_close)
        execution, self.execution = self.execution, None
        if execution is not None:
            execution.close()
        metrics, self.metrics = self.metrics, None
        if metrics is not None:
            metrics.close()
        logger.info("the beat stopped")


def _start_health_files() -> HeartbeatFiles | None:
    """The beat's health files, kept fresh from now on (None: ``RUVON_HEALTH_DIR`` unset)."""
    observability = ObservabilitySettings.from_env()
    if observability.health_dir is None:
        return None
    files = HeartbeatFiles(
        observability.health_dir,
        BEAT_NODE,
        interval=observability.health_interval,
        details={"role": BEAT_ROLE},
    )
    try:
        files.start()
    except OSError:
        # Health files must not stop the sweeps; the probe failing is the alarm.
        logger.exception("cannot write health files in %s", observability.health_dir)
        return None
    return files


def run_beat(settings: Settings | None = None) -> int:
    """Run the beat in this process until SIGTERM or SIGINT; the exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        logger.info("%s received: stopping the beat", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    try:
        beat = Beat(settings)
        logger.info("starting the Ruvon beat (pid %d)", os.getpid())
        beat.run_until(stop)
    except ConfigurationError as exc:
        logger.error("the beat cannot run: %s", exc)
        return 2
    return 0


def configure_logging(level: str) -> None:
    """One stderr handler on the root logger (JSON lines with ``RUVON_LOG_FORMAT=json``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    if log_format_from_env() == "json":
        use_json_logs([handler])
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m ruvon.cluster.beat [--loglevel LEVEL]``: run the beat (``ruvon beat`` execs
    it)."""
    parser = argparse.ArgumentParser(
        prog="python -m ruvon.cluster.beat",
        description="The Ruvon beat: the cluster's sweeps and cron poll.",
    )
    parser.add_argument(
        "--loglevel",
        "-l",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    )
    arguments = parser.parse_args(argv)
    configure_logging(arguments.loglevel)
    sys.exit(run_beat())


if __name__ == "__main__":
    # `python -m` runs this file as __main__; the beat runs from the module under its own name,
    # so that anything importing ruvon.cluster.beat meets the same objects as the running beat.
    from ruvon.cluster.beat import main as _main

    _main()
