"""The cluster as the control plane sees it: workers, queues, and the beat's recoveries.

Every source is read with a short timeout and reported on its own, so one that is down (the
broker, a worker that does not answer a ping) shows as such instead of failing the answer:

* **workers**: the heartbeat files in ``RUVON_HEALTH_DIR`` (what ``ruvon health`` reads) and,
  when asked, a Celery control ping bounded by :data:`PING_TIMEOUT`;
* **queues**: the broker's depth (Redis: the lengths of a queue's lists, one per priority step,
  as :mod:`ruvon.implementations.execution.run_publisher` counts them) and, from
  ``step_runs``, how many runs wait, are due or run, and the lag (age of the oldest due run);
* **recoveries**: the audit entries the beat writes when it re-queues a dead worker's run
  (``WORKER_CRASH_DETECTED``), re-sends a lost message (``MESSAGE_RESENT``) or fails a
  workflow for too many crashes.

An embedded database (SQLite) has none of these: the answer says ``mode: embedded``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from ruvon.clock import utc_now
from ruvon.config import Settings
from ruvon.implementations.execution.broker_lanes import PRIORITY_STEPS, queue_keys
from ruvon.implementations.observability.health import is_cluster_url, ping_workers, redact_url
from ruvon.implementations.observability.heartbeat_files import read_worker_files
from ruvon.providers.ledger import ClusterActivity, QueueBacklog
from ruvon.server.models import (
    BrokerInfo,
    ClusterView,
    QueueInfo,
    RecoveryItem,
    WorkerInfo,
)
from ruvon.server.runtime import ServerRuntime

PING_TIMEOUT = 1.0
BROKER_TIMEOUT = 2.0
HEARTBEAT_MAX_AGE = 30.0
RECENT_RECOVERIES = 50


def _queue_names(runtime: ServerRuntime, backlog: Iterable[QueueBacklog]) -> list[str]:
    """The default queue, the queues the registered steps name, and any with runs."""
    names = {runtime.settings.default_queue, *(b.queue for b in backlog)}
    builder = runtime.builder
    for workflow_type in builder.workflow_types:
        with contextlib.suppress(Exception):  # a definition that fails to load names none
            # Every version: a workflow in flight on an older one may use a queue the latest
            # does not.
            for definition in builder.definitions_of(workflow_type):
                names |= {s.queue for s in definition.steps if s.queue}
    return sorted(names)


async def broker_depths(settings: Settings, queues: list[str]) -> tuple[BrokerInfo, dict[str, int]]:
    """How many messages wait in each queue on a Redis broker (others: not counted)."""
    url = settings.broker_url
    info = BrokerInfo(url=redact_url(url), ok=None, error=None)
    if urlsplit(url).scheme not in ("redis", "rediss") or ";" in url:
        info.error = "queue depth is read from a Redis broker only"
        return info, {}
    try:
        import redis.asyncio as aioredis
    except ImportError:  # a cluster client without ruvon[celery]
        info.error = "queue depth needs the redis package (pip install 'ruvon[celery]')"
        return info, {}
    client = aioredis.Redis.from_url(
        url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT
    )
    prefix = settings.broker_key_prefix or ""
    try:
        async with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for key in queue_keys(prefix, queue):  # one list per priority
                    pipe.llen(key)
            lengths = await asyncio.wait_for(pipe.execute(), BROKER_TIMEOUT)
    except Exception as exc:  # down, or not Redis after all: say so, keep the rest
        info.ok, info.error = False, f"{type(exc).__name__}: {exc}"
        return info, {}
    finally:
        await client.aclose()
    info.ok = True
    size = len(PRIORITY_STEPS)
    counts = [int(n) for n in lengths]
    return info, {q: sum(counts[i * size : (i + 1) * size]) for i, q in enumerate(queues)}


def workers_from_files(health_dir: Path | None, max_age: float) -> list[WorkerInfo]:
    """The workers whose heartbeat files are in ``health_dir``."""
    if health_dir is None or not health_dir.is_dir():
        return []
    return [
        WorkerInfo(
            node=worker.node,
            alive=worker.alive,
            ready=worker.ready,
            heartbeat_age=round(worker.age, 3),
            pid=worker.details.get("pid"),
            started_at=worker.details.get("started_at"),
            queues=worker.details.get("queues"),
            answered_ping=None,
        )
        for worker in read_worker_files(health_dir, max_age)
    ]


async def _pinged(settings: Settings) -> list[str] | None:
    """Node names answering a Celery ping within :data:`PING_TIMEOUT` (None: ping failed)."""
    try:
        return await asyncio.wait_for(
            ping_workers(settings, PING_TIMEOUT), PING_TIMEOUT + BROKER_TIMEOUT
        )
    except Exception:
        return None


def _lag(backlog: QueueBacklog | None) -> float | None:
    if backlog is None or backlog.oldest_due_at is None:
        return None
    return max((backlog.as_of - backlog.oldest_due_at).total_seconds(), 0.0)


async def cluster_view(
    runtime: ServerRuntime, *, health_dir: Path | None, ping: bool
) -> ClusterView:
    """Everything the cluster endpoint answers, each source bounded by its timeout."""
    now: datetime = utc_now()
    if not is_cluster_url(runtime.settings.database_url):
        return ClusterView(mode="embedded", as_of=now, health_dir=None, workers=[],
                           pinged=None, broker=None, queues=[], recoveries=[])  # fmt: skip
    store = runtime.persistence
    backlog: list[QueueBacklog] = []
    recoveries: list[RecoveryItem] = []
    if isinstance(store, ClusterActivity):
        backlog = await store.queue_backlog()
        recoveries = [RecoveryItem.of(e) for e in await store.recent_recoveries(RECENT_RECOVERIES)]
    names = _queue_names(runtime, backlog)
    pinging = asyncio.ensure_future(_pinged(runtime.settings)) if ping else None
    broker, depths = await broker_depths(runtime.settings, names)
    pinged = await pinging if pinging is not None else None
    workers = workers_from_files(health_dir, HEARTBEAT_MAX_AGE)
    if pinged is not None:
        known = {worker.node for worker in workers}
        for worker in workers:
            worker.answered_ping = worker.node in pinged
        workers += [WorkerInfo(node=n, answered_ping=True) for n in pinged if n not in known]
    by_queue = {b.queue: b for b in backlog}
    queues = [
        QueueInfo(
            name=name,
            depth=depths.get(name),
            queued=by_queue[name].queued if name in by_queue else 0,
            due=by_queue[name].due if name in by_queue else 0,
            running=by_queue[name].running if name in by_queue else 0,
            oldest_due_at=by_queue[name].oldest_due_at if name in by_queue else None,
            lag_seconds=_lag(by_queue.get(name)),
        )
        for name in names
    ]
    return ClusterView(
        mode="cluster",
        as_of=backlog[0].as_of if backlog else now,
        health_dir=str(health_dir) if health_dir is not None else None,
        workers=workers,
        pinged=pinged,
        broker=broker,
        queues=queues,
        recoveries=recoveries,
    )
