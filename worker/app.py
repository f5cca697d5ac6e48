"""The Celery application of a Ruvon worker, and each worker process's persistence.

Start it with ``ruvon worker`` or ``celery -A worker worker``. Configuration comes from
:class:`ruvon.config.Settings` (``RUVON_BROKER_URL``, ``RUVON_RESULT_BACKEND``,
``RUVON_BROKER_KEY_PREFIX``, ``RUVON_DATABASE_URL``, pool sizes...) plus one worker-only variable:

    RUVON_APPLICATION_NAME    the PostgreSQL ``application_name`` of the worker's connections,
                              default ``ruvon-worker`` (find them in ``pg_stat_activity``)

PostgreSQL is the source of truth and a Celery message is only a hint (DESIGN.md, "The
correctness model"), which is what the settings below encode: a message is acknowledged after
its task ran (``task_acks_late``), a child killed mid-task gives its message back
(``task_reject_on_worker_lost``), a process reserves one message at a time
(``worker_prefetch_multiplier=1``), and messages are JSON carrying ids only.

Each pool process owns one :class:`~ruvon.bridge.EventLoopBridge` and, when the database is
PostgreSQL, one provider whose asyncpg pool lives on that bridge's loop. Both are created
after fork in ``worker_process_init`` and closed in ``worker_process_shutdown``; tasks reach the
provider with :func:`process_persistence` and run its coroutines with ``bridge.run``.

Note: ``worker/__init__.py`` re-exports the Celery instance as ``worker.app``, which shadows
this module as an attribute of the package; import helpers by name
(``from worker.app import process_persistence``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown

from ruvon.bridge import close_process_bridge, get_process_bridge
from ruvon.config import Settings
from ruvon.errors import ConfigurationError
from ruvon.providers.persistence import PersistenceProvider

__all__ = ["app", "celery_config", "create_app", "process_persistence"]

logger = logging.getLogger(__name__)

DEFAULT_APPLICATION_NAME = "ruvon-worker"
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg")

# Redis re-delivers a message that was reserved but not acknowledged after this long. With
# acks_late a message stays reserved while its task runs, so this must exceed the longest task:
# steps are short units of work, and delays live in PostgreSQL (``run_at``), never in Celery
# ETA/countdown, which would sit reserved past this timeout and then be delivered twice.
BROKER_VISIBILITY_TIMEOUT = 3600
# Opening the asyncpg pool (and checking the schema revision) happens in worker_process_init;
# Celery kills a child that has not reported "up" within worker_proc_alive_timeout (4 s by
# default), which a loaded machine or a slow database can exceed.
PROCESS_INIT_TIMEOUT = 30.0
_PROC_ALIVE_TIMEOUT = PROCESS_INIT_TIMEOUT + 10.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration of a Ruvon worker (or client) for ``settings``."""
    transport_options: dict[str, Any] = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT}
    backend_options: dict[str, Any] = {}
    if settings.broker_key_prefix:
        transport_options["global_keyprefix"] = settings.broker_key_prefix
        backend_options["global_keyprefix"] = settings.broker_key_prefix
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": backend_options,
        # Ids-only messages: JSON, never pickle (no code execution from the broker).
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Events on, so Flower (and `celery events`) work unchanged.
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "task_track_started": True,
        "worker_proc_alive_timeout": _PROC_ALIVE_TIMEOUT,
        "result_expires": 24 * 3600,
        "timezone": "UTC",
        "enable_utc": True,
    }


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from ``settings`` (default: the environment)."""
    celery = Celery("ruvon", include=["worker.tasks"])
    celery.conf.update(celery_config(settings or Settings.from_env()))
    return celery


app = create_app()


# -- the process's persistence ---------------------------------------------------------------

_lock = threading.Lock()
_provider: PersistenceProvider | None = None
_provider_pid: int | None = None


def _is_postgres(url: str) -> bool:
    return "://" in url and url.split("://", 1)[0].lower() in _POSTGRES_SCHEMES


def _open_persistence() -> PersistenceProvider:
    """A provider for RUVON_DATABASE_URL, initialized on this process's bridge loop."""
    settings = Settings.from_env()
    if not _is_postgres(settings.database_url):
        raise ConfigurationError(
            "a Ruvon worker needs PostgreSQL, the cluster's shared source of truth: set "
            "RUVON_DATABASE_URL=postgresql://USER@HOST/DB (SQLite and memory:// are per-process)"
        )
    from ruvon.implementations.persistence.postgres import PostgresPersistenceProvider

    provider = PostgresPersistenceProvider(
        settings.database_url,
        settings.pool_min_size,
        settings.pool_max_size,
        statement_timeout=settings.statement_timeout,
        max_state_bytes=settings.max_state_bytes,
        application_name=os.environ.get("RUVON_APPLICATION_NAME") or DEFAULT_APPLICATION_NAME,
    )
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


@worker_process_init.connect
def _open_process_resources(**_: object) -> None:
    get_process_bridge()
    if not _is_postgres(Settings.from_env().database_url):
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
    global _provider, _provider_pid
    with _lock:
        provider, _provider, _provider_pid = _provider, None, None
    close_process_bridge()  # runs the provider's close (registered with on_close) on its loop
    if provider is not None:
        logger.info("ruvon worker process %d: closed its database pool", os.getpid())
