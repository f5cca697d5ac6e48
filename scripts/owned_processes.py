"""Processes ``scripts/cluster up`` started, found again by PID *and* start time.

A PID alone may have been recycled by the time ``down`` runs; ``/proc/PID/stat``'s start time
(field 22) tells our process from a newcomer, so nothing else is ever signalled. Each process
leads its own session (``start_new_session``), which also holds its pool children.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


class SurvivorsError(Exception):
    """Processes of our sessions that SIGKILL did not remove."""


@dataclass(frozen=True)
class Started:
    """One process ``up`` started: enough for ``down`` to find exactly it again."""

    name: str
    pid: int
    start_time: int  # /proc/PID/stat field 22: tells a recycled PID from ours
    log: str
    metrics_url: str = ""  # where it serves Prometheus metrics, if it was asked to


def _stat(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` from the state field on (the name may hold spaces), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def is_running(process: Started) -> bool:
    """Still the process we started (same PID and start time), and not a zombie."""
    fields = _stat(process.pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == process.start_time


def _session_members(session_ids: set[int]) -> list[int]:
    """Live processes in the sessions we created (each process leads its own)."""
    members = []
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields and fields[0] != "Z" and int(fields[3]) in session_ids:
            members.append(int(entry.name))
    return members


def spawn(
    name: str,
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    metrics_url: str = "",
) -> Started:
    """Start ``argv`` in its own session (so ``up`` may exit), its output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    start_time = _start_time(process.pid)
    if start_time is None:  # exited at once: still record it, the log says why
        start_time = -1
    return Started(name, process.pid, start_time, str(log), metrics_url)


def stop(processes: Iterable[Started], timeout: float) -> None:
    """SIGTERM each running process; SIGKILL the groups still running after ``timeout``."""
    # Only processes verified ours now: a PID recorded long ago may belong to someone else.
    processes = [process for process in processes if is_running(process)]
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(map(is_running, processes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in processes:
        if is_running(process):  # the leader is ours, so its group is too
            print(f"cluster: {process.name} ignored SIGTERM for {timeout} s: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    # Pool children whose parent was SIGKILLed stay in its session (whose id no new process
    # can take while they live): kill those too.
    for _ in range(50):
        orphans = _session_members({process.pid for process in processes})
        if not orphans:
            return
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise SurvivorsError(f"processes {orphans} of the cluster's sessions survived SIGKILL")
