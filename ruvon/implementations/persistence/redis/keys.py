"""Key names of the Redis persistence layout, all under one configurable prefix.

With the default prefix ``ruvon:`` the layout is::

    ruvon:wf:{id}                 hash     one workflow: id, workflow_type, status, version,
                                           parent_execution_id, idempotency_key (absent if None),
                                           created_at (µs since the epoch: the index score),
                                           state, definition_snapshot, runtime (orjson text),
                                           attributes (the other fields, one JSON object) and
                                           ``_seq``, its creation sequence number; id, _seq,
                                           workflow_type, created_at and definition_snapshot
                                           are written once, when the workflow is created
    ruvon:seq                     string   INCR counter giving each new workflow its ``_seq``
    ruvon:idem                    hash     idempotency key -> workflow id
    ruvon:idx:all                 zset     every workflow         \\
    ruvon:idx:status:{status}     zset     by status               | score: created_at in µs
    ruvon:idx:type:{type}         zset     by workflow type        | member: index member (below)
    ruvon:idx:parent:{parent id}  zset     by parent workflow     /
    ruvon:timers                  zset     WAITING_TIMER/HUMAN workflows with a run_at (score µs)
    ruvon:deadlines               zset     unfinished workflows with a deadline (score µs)
    ruvon:audit:{id}              list     audit entries, oldest first (JSON arrays)
    ruvon:logs:{id}               list     execution log lines, oldest first
    ruvon:comp:{id}               list     compensation outcomes, in the order they ran
    ruvon:schedules               hash     schedule name -> JSON
    ruvon:sig:{id}                list     signals sent to the workflow, oldest first
    ruvon:sigids:{id}             hash     event id -> 1, for each signal in sig:{id}
    ruvon:slots:{key}             hash     concurrency key's holders and waiters: holder -> JSON
    ruvon:slotkeys                set      every concurrency key with a slots hash
    ruvon:rate:{key}              string   a rate-limit key's theoretical arrival time (s)

An **index member** is the 16 hex digits of the workflow's ``_seq`` followed by its id. Members
with equal scores sort by member (newest insert last); ``list_workflows`` re-sorts each run of
equal ``created_at`` scores by id, as the SQL providers order them. The id is the member minus
its first 16 characters.

Ids, types and keys are used verbatim: Redis keys are binary-safe, and every variable part comes
after a fixed kind tag (``wf:``, ``idx:type:``...), so no two distinct names can collide whatever
the id contains (spaces, quotes, ``:``, NUL). The Lua scripts in ``scripts.lua`` build the
same names; change both together.
"""

from __future__ import annotations

__all__ = ["SEQ_DIGITS", "RedisKeys", "id_from_member"]

SEQ_DIGITS = 16
"""Width of the hex sequence number that starts every index member."""


def id_from_member(member: bytes) -> str:
    """The workflow id inside an index member."""
    return member[SEQ_DIGITS:].decode()


class RedisKeys:
    """Builds the key names of one prefix (the prefix isolates deployments and tests)."""

    __slots__ = (
        "_audit",
        "_compensations",
        "_logs",
        "_rate",
        "_signal_ids",
        "_signals",
        "_slots",
        "_workflow",
        "deadlines",
        "idempotency",
        "prefix",
        "schedules",
        "slot_keys",
        "timers",
    )  # fmt: skip

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.idempotency = f"{prefix}idem"
        self.schedules = f"{prefix}schedules"
        self.timers = f"{prefix}timers"
        self.deadlines = f"{prefix}deadlines"
        self._compensations = f"{prefix}comp:"
        self._workflow = f"{prefix}wf:"
        self._audit = f"{prefix}audit:"
        self._logs = f"{prefix}logs:"
        self._signals = f"{prefix}sig:"
        self._signal_ids = f"{prefix}sigids:"
        self._slots = f"{prefix}slots:"
        self._rate = f"{prefix}rate:"
        self.slot_keys = f"{prefix}slotkeys"

    def workflow(self, workflow_id: str) -> str:
        """The hash holding one workflow."""
        return self._workflow + workflow_id

    def audit(self, workflow_id: str) -> str:
        """The list of a workflow's audit entries."""
        return self._audit + workflow_id

    def logs(self, workflow_id: str) -> str:
        """The list of a workflow's execution log lines."""
        return self._logs + workflow_id

    def compensations(self, workflow_id: str) -> str:
        """The list of a workflow's compensation outcomes."""
        return self._compensations + workflow_id

    def signals(self, workflow_id: str) -> str:
        """The list of the signals sent to a workflow."""
        return self._signals + workflow_id

    def signal_ids(self, workflow_id: str) -> str:
        """The hash of the event ids of a workflow's signals (duplicates are refused)."""
        return self._signal_ids + workflow_id

    def slots(self, key: str) -> str:
        """The hash of one concurrency key's holders and waiters."""
        return self._slots + key

    def rate(self, key: str) -> str:
        """One rate-limit key's cell."""
        return self._rate + key

    def scan_pattern(self) -> str:
        """A SCAN MATCH pattern for every key under the prefix (glob characters escaped)."""
        escaped = "".join(f"\\{char}" if char in "*?[]\\" else char for char in self.prefix)
        return f"{escaped}*"
