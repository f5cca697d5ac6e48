"""A ``ruvon beat`` subprocess for tests and benchmarks (see ``LocalCluster.start_beat``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ruvon.testing.processes import spawn

__all__ = ["BeatProcess"]

STOP_TIMEOUT = 30.0
_KILL_REAP_TIMEOUT = 10.0


class BeatProcess:
    """One ``ruvon beat`` subprocess (Celery beat), in its own session."""

    def __init__(self, process: subprocess.Popen[bytes], *, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.exit_code: int | None = None

    @classmethod
    def start(cls, env: Mapping[str, str], *, log_path: Path, schedule_file: Path) -> BeatProcess:
        """Spawn ``ruvon beat --schedule-file FILE`` (it sends its first sweeps at once)."""
        command = [
            *(sys.executable, "-m", "ruvon.cli.main", "beat", "--loglevel", "INFO"),
            *("--schedule-file", str(schedule_file)),
        ]
        return cls(spawn(command, env, log_path), log_path=log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL of its process group after ``timeout``; the exit code."""
        if self.exit_code is not None:
            return self.exit_code
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.exit_code = self.process.wait(_KILL_REAP_TIMEOUT)
        return self.exit_code
