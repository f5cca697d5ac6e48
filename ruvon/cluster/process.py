"""Each worker process's resources: its bridge, its PostgreSQL provider and its step runner.

Each pool process owns one :class:`~ruvon.bridge.EventLoopBridge` and, when the database is
PostgreSQL, one provider whose asyncpg pool lives on that bridge's loop. Both are created
after fork in ``worker_process_init`` and closed in ``worker_process_shutdown``; tasks reach the
provider with :func:`process_persistence` and run its coroutines with ``bridge.run``.

One worker-only variable:

    RUVON_APPLICATION_NAME    the PostgreSQL ``application_name`` of the worker's connections,
                              default ``ruvon-worker`` (find them in ``pg_stat_activity``)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING

from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from ruvon.bridge import close_process_bridge, get_process_bridge
from ruvon.cluster.metrics import worker_observer
from ruvon.cluster.runner import StepRunner
from ruvon.config import Settings
from ruvon.errors import ConfigurationError, PersistenceError, SchemaOutOfDate
from ruvon.implementations.execution.carriers import RunCarriers
from ruvon.implementations.execution.celery import CeleryExecutionProvider
from ruvon.implementations.execution.celery_config import PROCESS_INIT_TIMEOUT
from ruvon.providers.persistence import PersistenceProvider

if TYPE_CHECKING:
    from celery import Celery

    from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider

__all__ = ["process_carriers", "process_persistence", "process_runner", "serve_app"]

logger = logging.getLogger("ruvon.worker")

DEFAULT_APPLICATION_NAME = "ruvon-worker"
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg")

_lock = threading.RLock()
_app: Celery | None = None
_provider: PersistenceProvider | None = None
_provider_pid: int | None = None
_runner: StepRunner | None = None
_carriers: RunCarriers | None = None
#: Seconds a pool process that exits waits for the runs its carrier threads still carry.
CARRIER_DRAIN_SECONDS = 60.0


def serve_app(app: Celery) -> None:
    """Make ``app`` the one this process's runner announces runs with (the worker's own)."""
    global _app
    _app = app


def _is_postgres(url: str) -> bool:
    return "://" in url and url.split("://", 1)[0].lower() in _POSTGRES_SCHEMES


def _cluster_provider(settings: Settings, pool: tuple[int, int]) -> PostgresPersistenceProvider:
    """A PostgreSQL provider for ``settings`` (``ConfigurationError`` for any other database)."""
    if not _is_postgres(settings.database_url):
        raise ConfigurationError(
            "a Ruvon worker needs PostgreSQL, the cluster's shared source of truth: set "
            "RUVON_DATABASE_URL=postgresql://USER@HOST/DB (SQLite and memory:// are per-process)"
        )
    from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider

    return PostgresPersistenceProvider(
        settings.database_url,
        *pool,
        statement_timeout=settings.statement_timeout,
        max_state_bytes=settings.max_state_bytes,
        application_name=os.environ.get("RUVON_APPLICATION_NAME") or DEFAULT_APPLICATION_NAME,
    )


def _open_persistence() -> PersistenceProvider:
    """A provider for RUVON_DATABASE_URL, initialized on this process's bridge loop."""
    settings = Settings.from_env()
    provider = _cluster_provider(settings, (settings.pool_min_size, settings.pool_max_size))
    bridge = get_process_bridge()
    try:
        bridge.run(provider.initialize(), timeout=PROCESS_INIT_TIMEOUT)
    except BaseException:
        with contextlib.suppress(Exception):  # keep the initialize() error, not this one
            bridge.run(provider.close(), timeout=PROCESS_INIT_TIMEOUT)
        raise
    bridge.on_close(provider.close)
    return provider


def process_persistence() -> PersistenceProvider:
    """This process's provider: opened in ``worker_process_init``, else here on first use.

    The lazy path serves ``--pool solo`` / ``threads`` (no child process, so no init signal)
    and a child whose init could not reach the database.
    """
    global _provider, _provider_pid
    with _lock:
        if _provider is None or _provider_pid != os.getpid():
            _provider = _open_persistence()
            _provider_pid = os.getpid()
        return _provider


def process_runner() -> StepRunner:
    """This process's step runner (over its provider, with this app as the dispatcher)."""
    global _runner
    with _lock:
        provider = process_persistence()
        if _runner is None or _runner.persistence is not provider:
            settings = Settings.from_env()
            execution = CeleryExecutionProvider(_app, settings=settings)
            observer = worker_observer()  # also sees the workflows created here (children)
            _runner = StepRunner.for_settings(
                settings,
                provider,
                execution,
                owner=f"{socket.gethostname()}:{os.getpid()}",
                observer=observer,
                queues=_consumed_queues(),
            )
        return _runner


def process_carriers() -> RunCarriers | None:
    """This pool process's carrier threads (ruvon.implementations.execution.carriers): set up
    in ``worker_process_init``, so only a prefork child has them (a solo or threads pool runs
    each task's run on the task's own thread)."""
    return _carriers


def _carriers_for(settings: Settings) -> RunCarriers | None:
    # Acks late promise "acknowledged once its run ended": a handed-over run has not.
    if settings.process_runs <= 1 or settings.acks_late:
        return None
    return RunCarriers(settings.process_runs - 1)


def _consumed_queues() -> frozenset[str]:
    """The queues this worker consumes (``--queues``; selected before the pool forked)."""
    if _app is None:
        return frozenset()
    return frozenset(_app.amqp.queues.consume_from)


#: The exit status of a worker that refuses to start (``EX_CONFIG``: fix the setup, then start).
EXIT_UNUSABLE_DATABASE = 78


async def _check_database(settings: Settings) -> None:
    provider = _cluster_provider(settings, (1, 1))
    try:
        await provider.initialize()  # opens a connection and checks the schema revision
    finally:
        await provider.close()


@worker_init.connect
def _refuse_an_unusable_database(**_: object) -> None:
    """Before the pool forks: a worker whose database can never serve it does not start.

    A database that is not PostgreSQL, or whose schema is not at this code's revision, would
    fail every message the worker takes while it reports ready; exit instead, with the error
    and ``EXIT_UNUSABLE_DATABASE``. A database that is only down is waited for (each process
    connects when it can), as a restart of PostgreSQL must not kill the cluster.
    """
    settings = Settings.from_env()
    try:
        asyncio.run(_check_database(settings))
    except (ConfigurationError, SchemaOutOfDate) as exc:
        message = f"ruvon worker cannot start: {type(exc).__name__}: {exc}"
        logger.critical("%s", message)
        raise SystemExit(EXIT_UNUSABLE_DATABASE) from exc
    except PersistenceError as exc:
        logger.warning("ruvon worker: the database is not reachable yet (%s); starting", exc)


@worker_process_init.connect
def _open_process_resources(**_: object) -> None:
    global _carriers
    get_process_bridge()
    settings = Settings.from_env()
    _carriers = _carriers_for(settings)
    if not _is_postgres(settings.database_url):
        return  # process_persistence() raises the explanation when a task needs it
    try:
        process_persistence()
    except Exception:
        # Raising here would make the pool respawn this child in a loop; tasks retry the
        # connection lazily and fail with the error instead.
        logger.exception("ruvon worker process %d: could not open persistence", os.getpid())


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_process_resources(**_: object) -> None:
    # worker_shutdown covers the solo pool, whose tasks run in the main process.
    global _provider, _provider_pid, _runner, _carriers
    carriers, _carriers = _carriers, None
    if carriers is not None:  # their runs use the provider and the bridge: let them end first
        carriers.drain(CARRIER_DRAIN_SECONDS)
    with _lock:
        provider, _provider, _provider_pid, _runner = _provider, None, None, None
    close_process_bridge()  # runs the provider's close (registered with on_close) on its loop
    if provider is not None:
        logger.info("ruvon worker process %d: closed its database pool", os.getpid())
