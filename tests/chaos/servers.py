"""Private, restartable PostgreSQL and Redis servers for the chaos tests (loopback only).

The shared services of ``scripts/services`` must not be restarted under other tests, so a
chaos run brings its own: :class:`PrivatePostgres` is an ``initdb`` cluster in a temporary
directory (trust auth, a free port on 127.0.0.1, its socket in that directory) driven by
``pg_ctl``; :class:`PrivateRedis` is a ``redis-server`` without persistence (``--save ""
--appendonly no``), so a restart loses every queued message, as a real one without AOF does.

PostgreSQL refuses to run as root: as root, ``initdb``/``pg_ctl`` run as the ``postgres`` OS
user (``runuser``), in a directory handed to it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from ruvon.testing.processes import free_port

__all__ = ["PrivatePostgres", "PrivateRedis", "free_port", "libfaketime_path"]

_START_TIMEOUT = 60.0


def libfaketime_path() -> str | None:
    """The preloadable libfaketime (Debian ``faketime``, installed by scripts/services)."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    return found[0] if found else None


def _postgres_bin() -> Path:
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: run scripts/services"
        )
    return Path(versions[-1]).parent


class PrivatePostgres:
    """A throwaway PostgreSQL cluster: :meth:`start`, :meth:`crash` (an immediate stop), stop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bin = _postgres_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="ruvon-chaos-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        self._initialized = False

    @property
    def url(self) -> str:
        """The maintenance database of the server (the LocalCluster's ``server_url``)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = list(command)
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(
            argv, check=check, capture_output=True, text=True, timeout=_START_TIMEOUT, cwd=self.dir
        )

    def _initdb(self) -> None:
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "--auth=trust"),
            *("--encoding=UTF8", "--no-sync"),
        )
        self._initialized = True

    def start(self) -> None:
        """Start the server (``initdb`` first, the first time) and wait until it answers."""
        if not self._initialized:
            self._initdb()
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.dir}",
                "-c listen_addresses=127.0.0.1",
                # Durability against an OS crash is not what is tested here: an immediate stop
                # keeps what the OS has, so fsync may go. synchronous_commit may not: an
                # acknowledged commit must survive a server crash (S2 checks exactly that).
                "-c fsync=off -c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        result = self._run(
            str(self.bin / "pg_ctl"),
            *("-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60"),
            "start",
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed ({result.returncode}): {result.stderr or result.stdout}\n"
                f"{self.log_tail()}"
            )

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every backend dies, no checkpoint (crash recovery next)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def stop(self) -> None:
        """Stop the server if it runs (fast mode) and remove its directory."""
        if self._initialized:
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop",
                check=False,
            )  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


class PrivateRedis:
    """A ``redis-server`` without persistence on a free port: :meth:`restart` loses its data."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ruvon-chaos-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        command = [
            *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port)),
            *("--save", "", "--appendonly", "no", "--dir", str(self.dir)),
        ]
        with (self.dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            with contextlib.suppress(redis.RedisError), redis.Redis(port=self.port) as client:
                if client.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer")

    def kill(self) -> None:
        """SIGKILL the server (its data is gone: nothing was persisted)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)

    def restart(self) -> None:
        """Kill, then start again on the same port, empty."""
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
