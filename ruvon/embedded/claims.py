"""Who advances a woken workflow: a claim kept in the record, taken with a fenced save.

Firing a due WAIT timer is one fenced save (no step code runs before it), so of two processes
that fire one timer, one save commits and the other conflicts. An approval deadline is not:
``on_timeout`` may call the step's function before its save. And after firing, the workflow
runs on to its next wait, which takes several saves. So the process that fires writes a
:class:`~ruvon.records.RunnerClaim` into the record's runtime first, with a save fenced by the
version it read: of two processes that read one version, exactly one claim commits (SQLite:
one ``UPDATE ... WHERE version = ?`` in one transaction), and the loser sees the claim on its
next read and leaves the workflow alone while the claimant lives.

"Lives": a claim by a process on this host holds while that process exists (SQLite files are
local, so runners on one file share a host); one from another host holds for ``lease``
seconds. A claimant killed mid-way leaves its claim behind, and the next runner, finding it
stale, takes the workflow over and runs it on from its last committed save.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from ruvon.clock import utc_now
from ruvon.errors import ConcurrencyConflict
from ruvon.records import RunnerClaim
from ruvon.workflow import Workflow

__all__ = ["DEFAULT_LEASE_SECONDS", "Claimant", "claim_workflow", "holder", "release_workflow"]

#: How long a claim from another host holds (a process on this host is asked directly).
DEFAULT_LEASE_SECONDS = 300.0


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


@dataclass(frozen=True)
class Claimant:
    """This process, as it signs its claims."""

    owner: str
    host: str
    pid: int
    lease: float = DEFAULT_LEASE_SECONDS

    @classmethod
    def here(cls, role: str, *, lease: float = DEFAULT_LEASE_SECONDS) -> Claimant:
        """This process in ``role`` (``runner``, ``resume``)."""
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{role}@{host}:{pid}", host, pid, lease)

    def holds(self, claim: RunnerClaim) -> bool:
        """The claim is this process's own."""
        return claim["host"] == self.host and claim["pid"] == self.pid

    def is_live(self, claim: RunnerClaim, now: datetime | None = None) -> bool:
        """The claim still holds: its process exists (this host) or its lease runs (others)."""
        if claim["host"] == self.host:
            return _process_exists(claim["pid"])
        since = datetime.fromisoformat(claim["since"])
        return (now or utc_now()) < since + timedelta(seconds=self.lease)


def holder(wf: Workflow) -> RunnerClaim | None:
    """The claim stored on ``wf``, if any."""
    return wf.record.runtime.get("claim")


async def claim_workflow(wf: Workflow, me: Claimant) -> RunnerClaim | None:
    """Take ``wf`` for ``me``; None when taken. Otherwise the live claim that holds it.

    Returns the other process's claim when one holds it (nothing is written), else writes
    ``me``'s claim with a save fenced by the version ``wf`` was read at and returns None; a
    save that conflicts means another process moved the workflow first, and the claim it made
    (if any) is returned after a fresh read.
    """
    current = holder(wf)
    if current is not None and not me.holds(current) and me.is_live(current):
        return current
    if current is not None and me.holds(current):
        return None
    record = wf.record
    record.runtime["claim"] = RunnerClaim(
        owner=me.owner, host=me.host, pid=me.pid, since=utc_now().isoformat()
    )
    record.updated_at = utc_now()
    try:
        await wf.persistence.save_workflow(record, expected_version=record.version)
    except ConcurrencyConflict:
        if current is None:
            record.runtime.pop("claim", None)
        else:
            record.runtime["claim"] = current
        fresh = await wf.persistence.load_workflow(wf.id)
        taken = fresh.runtime.get("claim")
        return taken or RunnerClaim(owner="another process", host="", pid=0, since="")
    return None


async def release_workflow(wf: Workflow, me: Claimant) -> bool:
    """Drop ``me``'s claim from ``wf`` (fenced); False if it was not ours or the save lost."""
    current = holder(wf)
    if current is None or not me.holds(current):
        return False
    record = wf.record
    record.runtime.pop("claim", None)
    record.updated_at = utc_now()
    try:
        await wf.persistence.save_workflow(record, expected_version=record.version)
    except ConcurrencyConflict:
        return False  # someone else moved it on meanwhile (a person's resume); theirs now
    return True
