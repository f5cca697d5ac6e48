"""The checks behind ``ruvon health``: database, migrations, broker, workers.

Each check is a :class:`Check` (``ok`` True, False, or None when it does not apply: an embedded
SQLite setup has no broker and no workers). The report is ok when no check that applies failed.
Every network call is bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruvon.config import Settings
from ruvon.db_schema import migrations
from ruvon.implementations.observability.heartbeat_files import read_worker_files

__all__ = ["Check", "HealthReport", "check_broker", "check_database", "check_workers", "health"]

_POSTGRES = ("postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg")


@dataclass(frozen=True)
class Check:
    """One component's state: ``ok`` (None: not applicable), a one-line summary, details."""

    name: str
    ok: bool | None
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "summary": self.summary, **self.details}


@dataclass(frozen=True)
class HealthReport:
    """Every check; ``ok`` unless one that applies failed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok is not False for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **{check.name: check.as_dict() for check in self.checks}}


def is_cluster_url(url: str) -> bool:
    """A PostgreSQL URL: the cluster's shape (broker and workers apply)."""
    return url.split("://", 1)[0].lower() in _POSTGRES


async def check_database(url: str, timeout: float) -> tuple[Check, Check]:
    """Connect and read the schema revision: the ``database`` and ``migrations`` checks."""
    where = migrations.describe_url(url)
    started = time.perf_counter()
    try:
        if is_cluster_url(url):
            revision, declared = await _postgres_schema(url, timeout)
        else:
            revision, declared = await asyncio.wait_for(
                asyncio.to_thread(migrations.read_schema, url), timeout
            )
    except Exception as exc:
        error = _error_text(exc)
        database = Check("database", False, f"{where}: {error}", {"url": where, "error": error})
        skipped = Check("migrations", None, "unknown (no database)", {"current": None})
        return database, skipped
    latency = round((time.perf_counter() - started) * 1000, 1)
    database = Check(
        "database", True, f"{where} ({latency} ms)", {"url": where, "latency_ms": latency}
    )
    return database, _migrations_check(revision, declared)


def _migrations_check(current: str | None, declared: dict[str, str]) -> Check:
    """At head, or at a newer revision declared compatible with this code (a rolling upgrade
    in progress: this pod may keep running), is healthy; anything else names what to do."""
    try:
        head: str | None = migrations.head_revision()
    except Exception as exc:  # no migrations directory shipped: compare with the code's pin
        head = None
        note = _error_text(exc)
    expected = head or migrations.SCHEMA_REVISION
    details: dict[str, Any] = {"current": current, "head": expected}
    if head is None:
        details["note"] = note
    if current == expected:
        return Check("migrations", True, f"at head ({expected})", details)
    problem = migrations.compatibility_problem(current, declared)
    if problem is None:
        return Check(
            "migrations", True, f"at {current}, newer and compatible (code at {expected})", details
        )
    return Check("migrations", False, problem, details)


async def _postgres_schema(url: str, timeout: float) -> tuple[str | None, dict[str, str]]:
    """The revision and, when it is not this code's, its compatibility declarations."""
    import asyncpg

    from ruvon.db_schema import compatibility
    from ruvon.implementations.persistence.postgres.target import ConnectionTarget

    connection = await asyncpg.connect(ConnectionTarget.from_url(url).dsn, timeout=timeout)
    try:
        try:
            value = await connection.fetchval(migrations.VERSION_QUERY, timeout=timeout)
        except asyncpg.UndefinedTableError:
            return None, {}
        revision = str(value) if value is not None else None
        if revision == migrations.SCHEMA_REVISION:
            return revision, {}
        try:
            rows = await connection.fetch(compatibility.COMPAT_QUERY, timeout=timeout)
        except asyncpg.UndefinedTableError:
            return revision, {}
        return revision, {str(row[0]): str(row[1]) for row in rows}
    finally:
        await connection.close(timeout=timeout)


async def check_broker(url: str, timeout: float) -> Check:
    """Ping the broker (Redis ``PING``; another transport: open a kombu connection)."""
    where = redact_url(url)
    started = time.perf_counter()
    try:
        if url.split("://", 1)[0].lower() in ("redis", "rediss", "unix"):
            await _ping_redis(url, timeout)
        else:
            await asyncio.wait_for(asyncio.to_thread(_connect_kombu, url, timeout), timeout + 1)
    except Exception as exc:
        error = _error_text(exc)
        return Check("broker", False, f"{where}: {error}", {"url": where, "error": error})
    latency = round((time.perf_counter() - started) * 1000, 1)
    return Check("broker", True, f"{where} ({latency} ms)", {"url": where, "latency_ms": latency})


async def _ping_redis(url: str, timeout: float) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await asyncio.wait_for(client.ping(), timeout)
    finally:
        await client.aclose()


def _connect_kombu(url: str, timeout: float) -> None:
    import kombu

    connection_class: Any = getattr(kombu, "Connection")  # noqa: B009 (kombu is untyped)
    with connection_class(url, connect_timeout=timeout) as connection:
        connection.ensure_connection(max_retries=1)


def check_workers(
    health_dir: Path | None, max_age: float, pinged: list[str] | None = None
) -> Check:
    """Workers by their heartbeat files (and, if asked, by who answered a Celery ping)."""
    details: dict[str, Any] = {"max_age": max_age}
    alive: set[str] = set()
    parts: list[str] = []
    if health_dir is not None:
        files = read_worker_files(health_dir, max_age) if health_dir.is_dir() else []
        details["dir"] = str(health_dir)
        details["workers"] = [worker.as_dict() for worker in files]
        alive |= {worker.node for worker in files if worker.alive}
        ready = sum(worker.ready for worker in files)
        stale = sum(not worker.alive for worker in files)
        parts.append(f"{len(files) - stale} alive, {ready} ready, {stale} stale in {health_dir}")
    if pinged is not None:
        details["ping"] = sorted(pinged)
        alive |= set(pinged)
        parts.append(f"{len(pinged)} answered a ping")
    if not parts:
        return Check("workers", None, "not checked (set RUVON_HEALTH_DIR or pass --ping)", details)
    return Check("workers", bool(alive), "; ".join(parts), details)


async def ping_workers(settings: Settings, timeout: float) -> list[str]:
    """Node names of the workers answering a Celery control ping within ``timeout``."""
    return await asyncio.to_thread(_ping_workers, settings, timeout)


def _ping_workers(settings: Settings, timeout: float) -> list[str]:
    from celery import Celery

    from ruvon.implementations.execution.celery_config import celery_config

    app = Celery("ruvon-health")
    app.conf.update(celery_config(settings))
    try:
        replies = app.control.ping(timeout=timeout) or []
        return sorted(node for reply in replies for node in reply)
    finally:
        app.close()


async def health(
    settings: Settings,
    *,
    health_dir: Path | None,
    max_age: float,
    ping: bool = False,
    timeout: float = 5.0,
) -> HealthReport:
    """Run every check that applies to ``settings`` (concurrently)."""
    url = settings.database_url
    if not is_cluster_url(url):
        database, schema = await check_database(url, timeout)
        broker = Check("broker", None, "embedded mode: no broker")
        return HealthReport((database, schema, broker, Check("workers", None, "embedded mode")))
    (database, schema), broker = await asyncio.gather(
        check_database(url, timeout), check_broker(settings.broker_url, timeout)
    )
    pinged: list[str] | None = None
    if ping and broker.ok:  # a ping through a broker that is down would only hang
        try:
            pinged = await asyncio.wait_for(ping_workers(settings, min(timeout, 1.0)), timeout)
        except Exception:
            pinged = []
    workers = check_workers(health_dir, max_age, pinged)
    return HealthReport((database, schema, broker, workers))


def redact_url(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in credentials else ''}@{host}"


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
