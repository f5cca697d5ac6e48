"""``ruvon worker --embedded``: the runner that keeps time on the embedded SQLite file.

It runs :class:`~ruvon.embedded.runner.EmbeddedRunner` here, in this process (no Celery, no
broker): every ``--interval`` seconds it fires the due WAIT timers and approval deadlines,
starts the due schedule ticks, and runs each workflow it woke to its next wait, with the step
modules next to its YAML importable (as ``ruvon resume`` does). SIGTERM or SIGINT stop it once
the workflow in hand reached its next save; ``--once`` makes one pass and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from ruvon.cli.failures import CommandError
from ruvon.cli.runtime import (
    REGISTRY_FILE_NAME,
    CliConfig,
    add_import_paths,
    missing_sqlite_file,
    open_engine,
    run_async,
    source_directory,
)
from ruvon.config import Settings
from ruvon.embedded import EmbeddedRunner, PassReport, RunnerOptions
from ruvon.errors import ConfigurationError
from ruvon.records import WorkflowRecord

__all__ = ["run_embedded_runner"]

logger = logging.getLogger("ruvon.runner")
# The runner's own lines, and the schedule poll's (it logs as the beat does).
_RUNNER_LOGGERS = ("ruvon.runner", "ruvon.beat")


def _check_database(settings: Settings) -> None:
    url = settings.database_url
    if not url.startswith("sqlite"):
        raise ConfigurationError(
            f"ruvon worker --embedded runs on the embedded SQLite file, and the database is "
            f"{url.split('://', 1)[0]}://...: "
            + (
                "on a cluster the beat (`ruvon beat`) fires timers and schedules"
                if url.startswith("postgres")
                else "set RUVON_DATABASE_URL=sqlite:///FILE or pass --db FILE"
            )
        )
    if url.rstrip("/").endswith(":memory:") or url in ("sqlite://", "sqlite:///"):
        raise ConfigurationError(
            "ruvon worker --embedded needs a SQLite file (an in-memory database has nothing to "
            "fire): pass --db FILE"
        )
    missing = missing_sqlite_file(settings)
    if missing is not None:
        raise ConfigurationError(
            f"database {missing} does not exist: run the runner from the directory that holds "
            "it, or pass --db FILE"
        )


def _registry(settings: Settings, registry: Path | None, config_dir: Path | None) -> Path | None:
    """The registry the runner loads: --registry, --config-dir, or the configured one if any."""
    if registry is not None and config_dir is not None:
        raise CommandError("give either --registry or --config-dir, not both")
    given = registry or (config_dir / REGISTRY_FILE_NAME if config_dir is not None else None)
    if given is not None:
        if not given.is_file():
            option = "--registry" if registry is not None else "--config-dir"
            raise CommandError(f"{option}: workflow registry {given} not found")
        return given.resolve()
    default = settings.registry_file
    return default.resolve() if default.is_file() else None


def _prepare(record: WorkflowRecord) -> None:
    add_import_paths(source_directory(record))


@contextlib.contextmanager
def _runner_logs(level: str) -> Iterator[None]:
    saved = [(name, logging.getLogger(name).level) for name in _RUNNER_LOGGERS]
    for name, _ in saved:
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, previous in saved:
            logging.getLogger(name).setLevel(previous)


def _summary(report: PassReport) -> str:
    return (
        f"one pass: fired {len(report.fired)} WAIT timer(s), timed out "
        f"{len(report.timed_out)} approval(s), failed {len(report.deadlines)} past their "
        f"deadline, started {len(report.started)} scheduled "
        f"workflow(s), took over {len(report.recovered)}; {report.skipped} held by another "
        "process"
    )


def run_embedded_runner(
    config: CliConfig,
    *,
    once: bool,
    interval: float,
    registry: Path | None,
    config_dir: Path | None,
    loglevel: str = "INFO",
) -> None:
    """Run the embedded runner until SIGTERM / SIGINT (or for one pass with ``once``).

    ``loglevel`` is the runner's (INFO: a line per workflow it moves; DEBUG: also those it
    leaves to another process).
    """
    settings = config.settings()
    options = RunnerOptions(interval=interval)
    registry_path = _registry(settings, registry, config_dir)
    _check_database(settings)
    add_import_paths(registry_path.parent if registry_path is not None else None)

    async def main() -> None:
        async with open_engine(settings) as engine:
            builder = engine.builder(registry=registry_path)
            runner = EmbeddedRunner(builder, engine.persistence, options=options, prepare=_prepare)
            if once:
                logger.info(_summary(await runner.run_once()))
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, _stopper(stop, signum))
            logger.info(
                "embedded runner %s on %s, every %gs (registry: %s); SIGTERM or Ctrl-C stops it",
                runner.me.owner, settings.database_url, interval, registry_path or "none",
            )  # fmt: skip
            try:
                await runner.run_until(stop)
            finally:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
            logger.info("embedded runner (pid %d) stopped", os.getpid())

    with _runner_logs(loglevel):
        run_async(main())


def _stopper(stop: asyncio.Event, signum: int) -> Callable[[], None]:
    def on_signal() -> None:
        if not stop.is_set():
            logger.info(
                "%s received: stopping once the workflow in hand is saved",
                signal.Signals(signum).name,
            )
        stop.set()

    return on_signal
