"""Redis persistence on ``redis.asyncio``: workflows as hashes, indexes as sorted sets.

The key layout is described in :mod:`~ruvon.implementations.persistence.redis.keys`. Every write
that must be atomic is one Lua script (``scripts.lua``, sent as EVALSHA): a create checks
the idempotency key, inserts the hash, fills the indexes and appends the audit entries; a save
checks the stored ``version`` against the expected one, rewrites the hash's mutable fields
(``workflow_type``, ``definition_snapshot`` and ``created_at`` stay as created, and so do the
type index and every index score), moves the status/parent/timer memberships and appends the
audit entries. Other clients never see half of either, and a stale
writer gets ``ConcurrencyConflict`` without writing anything. Reads are one round trip each.

**Durability caveat.** Redis acknowledges a write once it is in memory. The data is only as
durable as the server's persistence settings: with ``appendonly yes`` and ``appendfsync
everysec`` a crash loses up to about one second of acknowledged writes (``appendfsync always``
loses none, at a large throughput cost); with RDB snapshots only, everything since the last
snapshot; with persistence off (the test server in ``scripts/services``), everything. Use
PostgreSQL when a lost transition is unacceptable.

Needs Redis 7.0+ (script flags) on a standalone server or a single Cluster slot: scripts derive
key names from the prefix, which a sharded Cluster does not allow. Use an instance from one event
loop at a time. Unreachable servers raise ``DatabaseUnavailable`` naming host, port and database
(never the password); any other Redis failure raises ``PersistenceError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ruvon.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    DatabaseUnavailable,
    PersistenceError,
    RuvonError,
    WorkflowNotFound,
)
from ruvon.implementations.persistence.redis.codec import (
    Value,
    audit_from_value,
    compensation_from_value,
    log_from_value,
    log_value,
    micros,
    optional,
    pairs,
    schedule_from_value,
    schedule_value,
    signal_from_value,
    signal_value,
    workflow_from_hash,
    workflow_script_args,
)
from ruvon.implementations.persistence.redis.flow_control import RedisFlowControl
from ruvon.implementations.persistence.redis.keys import RedisKeys, id_from_member
from ruvon.implementations.persistence.redis.schedules import RedisSchedules
from ruvon.implementations.persistence.redis.scripts import (
    MIN_REDIS_VERSION,
    RedisScripts,
    ScriptStatus,
)
from ruvon.models import WorkflowStatus
from ruvon.providers.runs import StepRunRecord, WorkWrites, reject_work
from ruvon.records import (
    AuditEntry,
    CompensationEntry,
    ExecutionLogEntry,
    ListPosition,
    ScheduleRecord,
    SignalRecord,
    WorkflowRecord,
)
from ruvon.serialization import loads

__all__ = ["RedisPersistenceProvider", "describe_server"]

_T = TypeVar("_T")
_CONNECT_TIMEOUT_S = 5.0
_MAX_CONNECTIONS = 50  # per provider; ``?max_connections=N`` in the URL overrides it
_POOL_TIMEOUT_S = 20.0  # how long a call waits for a free connection
# A lost connection is retried a few times with short jittered waits (at most ~0.7 s in all),
# enough to ride over a reconnect without hiding a server that is down. Replaying a script whose
# reply was lost never applies it twice: a replayed save fails its version fence
# (ConcurrencyConflict) and a replayed create finds its own idempotency key or id.
_RETRY = Retry(ExponentialWithJitterBackoff(cap=0.4, base=0.05), retries=3)


def describe_server(redis_url: str) -> str:
    """``host:port db N`` (or the socket path) of a Redis URL, without credentials."""
    try:
        options = parse_url(redis_url)
    except ValueError as exc:
        scheme = redis_url.split(":", 1)[0]
        raise ConfigurationError(
            f"invalid Redis URL (scheme '{scheme}'): {exc}; e.g. redis://localhost:6379/0"
        ) from None
    db = options.get("db", 0)
    if "path" in options:
        return f"unix socket {options['path']} db {db}"
    return f"{options.get('host', 'localhost')}:{options.get('port', 6379)} db {db}"


class RedisPersistenceProvider(RedisSchedules, RedisFlowControl):
    """A :class:`~ruvon.providers.persistence.PersistenceProvider` on one Redis server.

    ``redis_url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL (query options such as
    ``socket_timeout`` or ``max_connections`` are passed to redis-py); every key starts with
    ``key_prefix``, so one server can hold several isolated deployments; ``max_state_bytes``
    rejects larger serialized state with ``StateTooLargeError``. Read the durability caveat in
    the module docstring.
    """

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379/0",
        *,
        key_prefix: str = "ruvon:",
        max_state_bytes: int | None = None,
    ) -> None:
        self.server = describe_server(redis_url)
        self.key_prefix = key_prefix
        self.max_state_bytes = max_state_bytes
        self.keys = RedisKeys(key_prefix)
        self._url = redis_url  # may hold a password: never put it in a message
        self._scripts: RedisScripts | None = None
        self._closed = False
        self._lifecycle = asyncio.Lock()

    async def initialize(self) -> None:
        """Connect, check the server version and register the scripts (idempotent)."""
        async with self._lifecycle:
            self._closed = False
            if self._scripts is None:
                self._scripts = await self._open()

    async def close(self) -> None:
        """Close the connection pool (idempotent); the data stays on the server."""
        async with self._lifecycle:
            self._closed = True
            scripts, self._scripts = self._scripts, None
            if scripts is not None:
                await scripts.client.aclose()

    async def create_workflow(
        self,
        record: WorkflowRecord,
        audit: Sequence[AuditEntry] = (),
        *,
        work: WorkWrites | None = None,
    ) -> tuple[WorkflowRecord, bool]:
        """Insert ``record`` at version 1, or return the one already started with its key."""
        reject_work(work, self)
        args = workflow_script_args(self.key_prefix, record, version=1, expected_version=0,
                                    limit=self.max_state_bytes, audit=audit,
                                    create=True)  # fmt: skip
        scripts = await self._connection()
        reply = await self._guard(
            scripts.create_workflow(keys=[self.keys.workflow(record.id)], args=args)
        )
        status = reply[0]
        if status == ScriptStatus.OK:
            record.version = 1
            return record, True
        if status == ScriptStatus.IDEMPOTENCY_KEY_USED:
            return workflow_from_hash(pairs(reply[1])), False
        if status == ScriptStatus.DUPLICATE_ID:
            raise PersistenceError(
                f"workflow '{record.id}' already exists (workflow ids must be unique)"
            )
        raise self._script_error(record, reply, expected_version=0)

    async def load_workflow(self, workflow_id: str) -> WorkflowRecord:
        """Return the stored record; ``WorkflowNotFound`` if there is none."""
        scripts = await self._connection()
        raw = await self._guard(scripts.client.hgetall(self.keys.workflow(workflow_id)))
        if not raw:
            raise WorkflowNotFound(workflow_id)
        return workflow_from_hash(cast(dict[bytes, bytes], raw))

    async def save_workflow(
        self,
        record: WorkflowRecord,
        *,
        expected_version: int,
        audit: Sequence[AuditEntry] = (),
        work: WorkWrites | None = None,
        compensations: Sequence[CompensationEntry] = (),
    ) -> int:
        """Fenced save plus audit and compensation entries in one script; the new version."""
        reject_work(work, self)
        new_version = expected_version + 1
        args = workflow_script_args(self.key_prefix, record, version=new_version,
                                    expected_version=expected_version,
                                    limit=self.max_state_bytes, audit=audit,
                                    create=False, compensations=compensations)  # fmt: skip
        scripts = await self._connection()
        reply = await self._guard(
            scripts.save_workflow(keys=[self.keys.workflow(record.id)], args=args)
        )
        if reply[0] != ScriptStatus.OK:
            raise self._script_error(record, reply, expected_version=expected_version)
        record.version = new_version
        return new_version

    async def find_by_idempotency_key(self, key: str) -> WorkflowRecord | None:
        """The workflow started with this idempotency key, if any."""
        scripts = await self._connection()
        reply = await self._guard(scripts.find_by_idempotency_key(
            keys=[self.keys.idempotency], args=[self.key_prefix, key]
        ))  # fmt: skip
        return workflow_from_hash(pairs(reply)) if reply else None

    async def list_workflows(
        self,
        *,
        status: WorkflowStatus | None = None,
        workflow_type: str | None = None,
        parent_execution_id: str | None = None,
        created_since: datetime | None = None,
        created_until: datetime | None = None,
        workflow_version: str | None = None,
        id_prefix: str | None = None,
        idempotency_key_prefix: str | None = None,
        after: ListPosition | None = None,
        limit: int = 100,
    ) -> list[WorkflowRecord]:
        """Workflows matching every given filter, newest first (created_at, then id)."""
        if limit <= 0:
            return []
        status_text = str(status) if status is not None else None
        low = str(micros(created_since)) if created_since is not None else "-inf"
        high = f"({micros(created_until)}" if created_until is not None else "+inf"
        after_score: str | None = None
        if after is not None:
            after_score = str(micros(after.created_at))
            if created_until is None or micros(after.created_at) < micros(created_until):
                high = after_score  # inclusive: ties at that score are cut by id in the script
        after_id = after.workflow_id if after is not None else None
        args: list[Value] = [self.key_prefix, limit, optional(status_text),
                             optional(workflow_type), optional(parent_execution_id), low, high,
                             optional(after_score), optional(after_id),
                             optional(workflow_version), optional(id_prefix),
                             optional(idempotency_key_prefix)]  # fmt: skip
        scripts = await self._connection()
        replies = await self._guard(scripts.list_workflows(args=args))
        return [workflow_from_hash(pairs(reply)) for reply in replies]

    async def list_due_timers(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of waiting workflows whose ``run_at`` is due: the most urgent (priority) first,
        then the earliest."""
        if limit <= 0:
            return []
        scripts = await self._connection()
        client = scripts.client
        # The timer index is ordered by due time only: every due member is read, with its
        # workflow's priority, so a limit takes the most urgent. A runner fires due timers every
        # pass, so the due set stays small.
        members = await self._guard(client.zrangebyscore(self.keys.timers, "-inf", micros(now)))
        ids = [id_from_member(cast(bytes, member)) for member in members]
        if len(ids) <= 1:
            return ids[:limit]
        async with client.pipeline(transaction=False) as pipe:
            for workflow_id in ids:
                pipe.hget(self.keys.workflow(workflow_id), "attributes")
            attributes = await self._guard(pipe.execute())
        priority = {
            workflow_id: loads(raw)["priority"] if raw else 0
            for workflow_id, raw in zip(ids, attributes, strict=True)
        }
        # sorted() is stable: equal priorities keep the index's due-time order.
        return sorted(ids, key=lambda workflow_id: -priority[workflow_id])[:limit]

    async def list_past_deadline(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of unfinished workflows whose deadline is at or before ``now``, earliest first."""
        if limit <= 0:
            return []
        scripts = await self._connection()
        members = await self._guard(scripts.client.zrangebyscore(
            self.keys.deadlines, "-inf", micros(now), start=0, num=limit
        ))  # fmt: skip
        return [id_from_member(cast(bytes, member)) for member in members]

    async def get_audit_log(self, workflow_id: str) -> list[AuditEntry]:
        """Audit entries of one workflow, oldest first."""
        values = await self._read_list(self.keys.audit(workflow_id))
        return [audit_from_value(workflow_id, value) for value in values]

    async def append_execution_log(self, entry: ExecutionLogEntry) -> None:
        """Append one log line; ``WorkflowNotFound`` if the workflow does not exist."""
        await self._append(entry.workflow_id, self.keys.logs(entry.workflow_id), log_value(entry))

    async def get_execution_logs(self, workflow_id: str) -> list[ExecutionLogEntry]:
        """Log lines of one workflow, oldest first."""
        values = await self._read_list(self.keys.logs(workflow_id))
        return [log_from_value(workflow_id, value) for value in values]

    async def get_compensation_log(self, workflow_id: str) -> list[CompensationEntry]:
        """Compensations of one workflow, in the order they ran."""
        values = await self._read_list(self.keys.compensations(workflow_id))
        return [compensation_from_value(workflow_id, value) for value in values]

    async def list_step_runs(self, workflow_id: str) -> list[StepRunRecord]:
        """None: this store keeps no step runs (only the cluster's PostgreSQL does)."""
        return []

    async def record_signal(self, signal: SignalRecord) -> bool:
        """Keep a signal unless its workflow has one with the same event id (one script)."""
        scripts = await self._connection()
        workflow_id = signal.workflow_id
        keys = [self.keys.workflow(workflow_id), self.keys.signals(workflow_id),
                self.keys.signal_ids(workflow_id)]  # fmt: skip
        reply = await self._guard(
            scripts.record_signal(keys=keys, args=[signal.event_id, signal_value(signal)])
        )
        if reply == 2:
            raise WorkflowNotFound(workflow_id)
        return bool(reply == 1)

    async def list_signals(self, workflow_id: str, name: str | None = None) -> list[SignalRecord]:
        """A workflow's signals (called ``name``, if given), oldest first."""
        values = await self._read_list(self.keys.signals(workflow_id))
        signals = [signal_from_value(workflow_id, value) for value in values]
        return [signal for signal in signals if name is None or signal.name == name]

    async def save_schedule(self, schedule: ScheduleRecord) -> None:
        """Insert or replace the schedule with this name."""
        scripts = await self._connection()
        value = schedule_value(schedule)
        await self._guard(scripts.client.hset(self.keys.schedules, schedule.name, value))

    async def list_schedules(self) -> list[ScheduleRecord]:
        """All schedules, by name."""
        scripts = await self._connection()
        raw = await self._guard(scripts.client.hgetall(self.keys.schedules))
        named = sorted((cast(bytes, name).decode(), value) for name, value in raw.items())
        return [schedule_from_value(name, cast(bytes, value)) for name, value in named]

    # -- helpers -------------------------------------------------------------------------------

    async def _read_list(self, key: str) -> list[bytes]:
        scripts = await self._connection()
        return cast(list[bytes], await self._guard(scripts.client.lrange(key, 0, -1)))

    async def _append(self, workflow_id: str, key: str, value: bytes) -> None:
        scripts = await self._connection()
        appended = await self._guard(
            scripts.append_if_exists(keys=[self.keys.workflow(workflow_id), key], args=[value])
        )
        if not appended:
            raise WorkflowNotFound(workflow_id)

    def _script_error(
        self, record: WorkflowRecord, reply: Any, *, expected_version: int
    ) -> RuvonError:
        """The error for a create/save script's failure reply."""
        status = reply[0]
        if status == ScriptStatus.VERSION_CONFLICT:
            return ConcurrencyConflict(record.id, expected_version)
        if status == ScriptStatus.WORKFLOW_NOT_FOUND:
            return WorkflowNotFound(reply[1].decode())
        if status == ScriptStatus.IDEMPOTENCY_KEY_TAKEN:
            return PersistenceError(
                f"idempotency key '{record.idempotency_key}' already belongs to workflow "
                f"'{reply[1].decode()}'; cannot give it to '{record.id}'"
            )
        return PersistenceError(f"unexpected reply {reply!r} from a Redis script on {self.server}")

    async def _guard(self, call: Awaitable[_T]) -> _T:
        """Await a Redis call, translating redis-py errors into Ruvon's."""
        try:
            return await call
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise DatabaseUnavailable(
                f"cannot reach Redis at {self.server}: {exc} (check that the server is running "
                "and the URL, host, port and password)"
            ) from exc
        except RedisError as exc:
            raise PersistenceError(f"Redis at {self.server} failed: {exc}") from exc

    async def _connection(self) -> RedisScripts:
        scripts = self._scripts
        if scripts is None:
            if self._closed:
                raise PersistenceError(
                    f"Redis provider for {self.server} is closed (call initialize() to reopen)"
                )
            await self.initialize()
            assert self._scripts is not None
            scripts = self._scripts
        return scripts

    async def _open(self) -> RedisScripts:
        # A blocking pool makes a burst of concurrent calls queue for a connection instead of
        # failing with MaxConnectionsError once the pool is full.
        pool = BlockingConnectionPool.from_url(
            self._url, max_connections=_MAX_CONNECTIONS, timeout=_POOL_TIMEOUT_S,
            socket_connect_timeout=_CONNECT_TIMEOUT_S, retry=_RETRY, decode_responses=False,
        )  # fmt: skip
        client = Redis.from_pool(pool)
        try:
            info = await self._guard(client.info("server"))
            version = str(info.get("redis_version", "0"))
            if tuple(int(part) for part in version.split(".")[:2]) < MIN_REDIS_VERSION:
                raise PersistenceError(
                    f"Redis at {self.server} is version {version}; the Redis provider needs "
                    f"{'.'.join(map(str, MIN_REDIS_VERSION))} or later (Lua script flags)"
                )
        except BaseException:
            await client.aclose()
            raise
        return RedisScripts.register(client)
