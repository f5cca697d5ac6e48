"""Starting and stopping the test cluster's subprocesses (workers, beats, Flower)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "KILL_REAP_TIMEOUT",
    "REPO_ROOT",
    "STOP_TIMEOUT",
    "free_port",
    "spawn",
    "stop_process_group",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this module lives in: the workers' working directory and first import path."""

STOP_TIMEOUT = 30.0
"""Seconds a process gets to exit after SIGTERM before its process group is killed."""
KILL_REAP_TIMEOUT = 10.0
"""Seconds to reap a process after SIGKILL."""


def spawn(
    command: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    *,
    cwd: Path = REPO_ROOT,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in ``cwd`` (default: the checkout) in its own session (so its process
    group is its own, to signal as a whole), with stdout and stderr going to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM ``process`` (started by :func:`spawn`), then SIGKILL its process group after
    ``timeout``; its exit code (negative when it was killed)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        # It leads its own session, so the group is its alone, and the group id cannot be
        # reused while the leader is unreaped.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait(KILL_REAP_TIMEOUT)


# Below Linux's ephemeral range (32768-60999): a port handed out here is never taken in the
# meantime as the local end of an outgoing connection, as one bound to port 0 may be by the
# many client connections of tests running in parallel.
_TEST_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (for a server a test starts).

    Chosen at random outside the ephemeral range and never twice by one process, so parallel
    test processes (pytest-xdist) and their servers' clients rarely meet on a port.
    """
    for _ in range(200):
        port = random.choice(_TEST_PORTS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port on 127.0.0.1 in {_TEST_PORTS} after 200 tries")
