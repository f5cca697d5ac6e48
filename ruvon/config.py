"""Settings from the environment (``RUVON_*``, with Ruvon's older names as fallbacks).

Variable (fallback): meaning, default::

    RUVON_DATABASE_URL (DATABASE_URL)               postgresql://user:password@host:port/db,
                                                    postgres://..., sqlite:///FILE or memory://;
                                                    default sqlite:///ruvon.sqlite3
    RUVON_POOL_MIN_SIZE (POSTGRES_POOL_MIN_SIZE)    PostgreSQL pool, default 2
    RUVON_POOL_MAX_SIZE (POSTGRES_POOL_MAX_SIZE)    PostgreSQL pool, default 10
    RUVON_STATEMENT_TIMEOUT                         PostgreSQL, seconds per statement (0: none),
                                                    default 30
    RUVON_MAX_STATE_BYTES                           serialized state limit, default 10 MiB
    RUVON_CONFIG_DIR (WORKFLOW_CONFIG_DIR)          default ./config
    RUVON_REGISTRY_FILE (WORKFLOW_REGISTRY_FILE)    default <config dir>/workflow_registry.yaml
    RUVON_BROKER_URL (CELERY_BROKER_URL)            Celery broker, default redis://127.0.0.1:6379/0
    RUVON_RESULT_BACKEND (CELERY_RESULT_BACKEND)    Celery results, default the broker URL
    RUVON_BROKER_KEY_PREFIX                         prefix of every Redis key the broker uses,
                                                    so environments can share one Redis;
                                                    default none
    RUVON_DEFAULT_QUEUE                             queue of steps without `queue` (and of
                                                    workflows without a data region),
                                                    default "default"
    RUVON_STEP_LEASE_SECONDS                        a worker's lease on a claimed step run,
                                                    renewed by its heartbeat, default 15
    RUVON_HEARTBEAT_SECONDS                         lease renewal interval, default 5
    RUVON_CONTINUE_STEPS                            a worker carries a workflow on in the same
                                                    task (its next ASYNC step, a branch) for at
                                                    most this many runs (0: always through the
                                                    broker), default 100
    RUVON_CONTINUE_SECONDS                          ... and for at most this long (0: never),
                                                    default 1
    RUVON_SWEEP_SECONDS                             beat: interval of the zombie, lost-message,
                                                    parent and timer sweeps, default 5
    RUVON_SCHEDULE_POLL_SECONDS                     beat: interval of the cron poll, default 1
    RUVON_DISPATCH_TIMEOUT_SECONDS                  a due QUEUED run not claimed this long is
                                                    sent again if its message is missing from
                                                    the broker (lost), default 30
    RUVON_CRASH_ATTEMPTS                            attempts a step run may lose to dead workers
                                                    before its workflow is FAILED_WORKER_CRASH,
                                                    default 5
    RUVON_SWEEP_BATCH                               rows one sweep handles at most, default 500
    RUVON_MAINTENANCE_QUEUE                         retired: the queue an older beat sent its
                                                    sweep tasks to (the beat sweeps itself now),
                                                    default "ruvon.maintenance"
    RUVON_DUPLICATE_MESSAGES                        test hook: send every step-run message
                                                    twice (1/true), default off
    RUVON_WORKER_PREFETCH                           Celery's worker_prefetch_multiplier: messages
                                                    each pool process reserves, default 4
    RUVON_PROCESS_RUNS                              step runs one prefork pool process carries
                                                    at once: runs of workflows without step
                                                    timeouts or a deadline go on in carrier
                                                    threads while the task thread takes the
                                                    next message (1: one run at a time; off
                                                    with RUVON_ACKS_LATE), default 4
    RUVON_ACKS_LATE                                 acknowledge a message after its task ran
                                                    (1/true) or when it is received (0), default 0
    RUVON_TASK_EVENTS                               workers send task events (1/true) without
                                                    being asked; Flower asks anyway, default 0
    RUVON_TASK_LOGS                                 Celery's "Task ... received/succeeded" lines
                                                    at INFO (1/true), default 0
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ruvon.errors import ConfigurationError

DEFAULT_SQLITE_FILE = "ruvon.sqlite3"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def _int(env: Mapping[str, str], name: str, default: int, *fallbacks: str) -> int:
    for key in (name, *fallbacks):
        value = env.get(key)
        if value:
            try:
                return int(value)
            except ValueError:
                raise ConfigurationError(f"{key}={value!r} is not an integer") from None
    return default


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name}={env[name]!r} is not a flag: use 1 or 0")


def _seconds(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    """A duration in seconds; ``0`` means none (no limit)."""
    value = env.get(name)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a number of seconds") from None
    if seconds < 0 or seconds != seconds:
        raise ConfigurationError(f"{name}={value!r} must be >= 0 (0 disables the limit)")
    return seconds or None


def _pool_sizes(env: Mapping[str, str]) -> tuple[int, int]:
    low = _int(env, "RUVON_POOL_MIN_SIZE", 2, "POSTGRES_POOL_MIN_SIZE")
    high = _int(env, "RUVON_POOL_MAX_SIZE", 10, "POSTGRES_POOL_MAX_SIZE")
    if low < 0 or high < 1 or low > high:
        raise ConfigurationError(
            f"database pool sizes min={low} max={high} are invalid: need 0 <= "
            "RUVON_POOL_MIN_SIZE <= RUVON_POOL_MAX_SIZE and RUVON_POOL_MAX_SIZE >= 1"
        )
    return low, high


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; build it with :meth:`from_env`."""

    database_url: str
    config_dir: Path
    registry_file: Path
    max_state_bytes: int = 10 * 1024 * 1024
    pool_min_size: int = 2
    pool_max_size: int = 10
    statement_timeout: float | None = 30.0
    broker_url: str = DEFAULT_BROKER_URL
    result_backend: str = DEFAULT_BROKER_URL
    broker_key_prefix: str = ""
    default_queue: str = "default"
    step_lease_seconds: float = 15.0
    heartbeat_seconds: float = 5.0
    continue_steps: int = 100
    continue_seconds: float = 1.0
    duplicate_messages: bool = False
    worker_prefetch: int = 4
    process_runs: int = 4
    acks_late: bool = False
    task_events: bool = False
    task_logs: bool = False
    sweep_seconds: float = 5.0
    schedule_poll_seconds: float = 1.0
    dispatch_timeout_seconds: float = 30.0
    crash_attempts: int = 5
    sweep_batch: int = 500
    maintenance_queue: str = "ruvon.maintenance"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the variables in the module docstring from ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        database_url = _first(env, "RUVON_DATABASE_URL", "DATABASE_URL") or (
            f"sqlite:///{DEFAULT_SQLITE_FILE}"
        )
        config_dir = Path(_first(env, "RUVON_CONFIG_DIR", "WORKFLOW_CONFIG_DIR") or "config")
        registry = _first(env, "RUVON_REGISTRY_FILE", "WORKFLOW_REGISTRY_FILE")
        registry_file = Path(registry) if registry else config_dir / "workflow_registry.yaml"
        pool_min_size, pool_max_size = _pool_sizes(env)
        broker_url = _first(env, "RUVON_BROKER_URL", "CELERY_BROKER_URL") or DEFAULT_BROKER_URL
        return cls(
            database_url=database_url,
            config_dir=config_dir,
            registry_file=registry_file,
            max_state_bytes=_int(env, "RUVON_MAX_STATE_BYTES", 10 * 1024 * 1024),
            pool_min_size=pool_min_size,
            pool_max_size=pool_max_size,
            statement_timeout=_seconds(env, "RUVON_STATEMENT_TIMEOUT", 30.0),
            broker_url=broker_url,
            result_backend=_first(env, "RUVON_RESULT_BACKEND", "CELERY_RESULT_BACKEND")
            or broker_url,
            broker_key_prefix=env.get("RUVON_BROKER_KEY_PREFIX", ""),
            default_queue=env.get("RUVON_DEFAULT_QUEUE") or "default",
            step_lease_seconds=_seconds(env, "RUVON_STEP_LEASE_SECONDS", 15.0) or 15.0,
            heartbeat_seconds=_seconds(env, "RUVON_HEARTBEAT_SECONDS", 5.0) or 5.0,
            continue_steps=max(_int(env, "RUVON_CONTINUE_STEPS", 100), 0),
            continue_seconds=_seconds(env, "RUVON_CONTINUE_SECONDS", 1.0) or 0.0,
            sweep_seconds=_seconds(env, "RUVON_SWEEP_SECONDS", 5.0) or 5.0,
            schedule_poll_seconds=_seconds(env, "RUVON_SCHEDULE_POLL_SECONDS", 1.0) or 1.0,
            dispatch_timeout_seconds=_seconds(env, "RUVON_DISPATCH_TIMEOUT_SECONDS", 30.0) or 30.0,
            crash_attempts=max(_int(env, "RUVON_CRASH_ATTEMPTS", 5), 1),
            sweep_batch=max(_int(env, "RUVON_SWEEP_BATCH", 500), 1),
            maintenance_queue=env.get("RUVON_MAINTENANCE_QUEUE") or "ruvon.maintenance",
            duplicate_messages=_flag(env, "RUVON_DUPLICATE_MESSAGES", False),
            worker_prefetch=max(_int(env, "RUVON_WORKER_PREFETCH", 4), 1),
            process_runs=max(_int(env, "RUVON_PROCESS_RUNS", 4), 1),
            acks_late=_flag(env, "RUVON_ACKS_LATE", False),
            task_events=_flag(env, "RUVON_TASK_EVENTS", False),
            task_logs=_flag(env, "RUVON_TASK_LOGS", False),
        )
