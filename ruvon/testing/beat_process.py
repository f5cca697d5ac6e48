"""A ``ruvon beat`` subprocess for tests and benchmarks (see ``LocalCluster.start_beat``)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ruvon.testing.processes import STOP_TIMEOUT, spawn, stop_process_group

__all__ = ["BeatProcess"]


class BeatProcess:
    """One ``ruvon beat`` subprocess (``python -m ruvon.cluster.beat``: the sweeps run in it),
    in its own session."""

    def __init__(self, process: subprocess.Popen[bytes], *, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.exit_code: int | None = None

    @classmethod
    def start(cls, env: Mapping[str, str], *, log_path: Path) -> BeatProcess:
        """Spawn ``ruvon beat`` (it runs its first sweeps as soon as it reaches the database)."""
        command = [sys.executable, "-m", "ruvon.cli.main", "beat", "--loglevel", "INFO"]
        return cls(spawn(command, env, log_path), log_path=log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """Everything the beat wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_sweeping(self, timeout: float = 60.0) -> None:
        """Until the beat reports its sweeps started; ``RuntimeError`` if it exits first."""
        deadline = time.monotonic() + timeout
        while "sweeps started: " not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(f"the beat exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the beat did not start within {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL of its process group after ``timeout``; the exit code."""
        if self.exit_code is None:
            self.exit_code = stop_process_group(self.process, timeout)
        return self.exit_code
