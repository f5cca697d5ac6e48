"""``ruvon server`` in a subprocess, for the server benchmark (:mod:`loadtests.bench_server`)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from ruvon.testing.processes import free_port, spawn, stop_process_group

__all__ = ["ServerProcess", "ruvon_server"]

UP_TIMEOUT = 60.0
# The workers' small pools and connection name are theirs: the server keeps its defaults.
_WORKER_ONLY = ("RUVON_POOL_MIN_SIZE", "RUVON_POOL_MAX_SIZE", "RUVON_APPLICATION_NAME")


class ServerProcess:
    """A started ``ruvon server``; :meth:`wait_up` returns its URL once it is ready."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def wait_up(self) -> str:
        """Poll ``/readyz`` until the server answers 200 (its database is open); its URL."""
        deadline = time.monotonic() + UP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text(errors="replace")
                raise RuntimeError(f"ruvon server exited {self.process.returncode}: {output}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self.url
            time.sleep(0.1)
        raise RuntimeError(f"ruvon server did not answer at {self.url} within {UP_TIMEOUT:.0f} s")


@contextlib.contextmanager
def ruvon_server(env: Mapping[str, str], log_dir: Path, token: str) -> Iterator[ServerProcess]:
    """Start ``ruvon server`` on ``env``'s database with one admin ``token``; stop it after.

    It is not waited for: the caller may work meanwhile, then call
    :meth:`ServerProcess.wait_up`.
    """
    tokens = log_dir / "server-tokens"
    tokens.write_text(f"admin {token} bench\n")
    port = free_port()
    server_env = {key: value for key, value in env.items() if key not in _WORKER_ONLY}
    server_env["RUVON_SERVER_TOKENS"] = str(tokens)
    command = [sys.executable, "-m", "ruvon.cli.main", "server", "--port", str(port)]
    log = log_dir / "server.log"
    process = spawn(command, server_env, log)
    try:
        yield ServerProcess(process, f"http://127.0.0.1:{port}", log)
    finally:
        stop_process_group(process)
