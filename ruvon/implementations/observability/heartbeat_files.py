"""Worker health as files: ``<dir>/<node>.alive`` and ``<dir>/<node>.ready``, kept fresh.

A worker's main process rewrites ``.alive`` every interval from the moment it starts, and
``.ready`` as well once it consumes its queues; it removes ``.ready`` when its shutdown begins
and both when it ends. The beat keeps ``beat.alive`` and ``beat.ready`` the same way (its files
say ``"role": "beat"`` and are not listed as a worker's). A probe only compares a file's age
(mtime) with a limit, so it needs no broker round trip and no Celery import (``ruvon health
--worker-file PATH --max-age S``, a Kubernetes exec probe). Each file holds a small JSON
object (node, pid, started, queues) for ``ruvon health``. Writes are atomic (a temporary file
renamed over the old one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "ALIVE",
    "BEAT_ROLE",
    "READY",
    "HeartbeatFiles",
    "WorkerFile",
    "file_age",
    "read_worker_files",
]

logger = logging.getLogger("ruvon.health")

ALIVE = ".alive"
READY = ".ready"
#: The ``role`` in the details of the beat's files (a worker's have none).
BEAT_ROLE = "beat"


def file_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since ``path`` was last written; None if it does not exist."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return max((time.time() if now is None else now) - modified, 0.0)


def _safe_node(node: str) -> str:
    return node.replace(os.sep, "_") or "worker"


class HeartbeatFiles:
    """Keeps one worker's ``.alive`` (and, once ready, ``.ready``) file fresh from a thread."""

    def __init__(
        self,
        directory: Path,
        node: str,
        *,
        interval: float = 5.0,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        self.node = node
        self.interval = interval
        self.alive_path = directory / f"{_safe_node(node)}{ALIVE}"
        self.ready_path = directory / f"{_safe_node(node)}{READY}"
        self._details = {
            "node": node,
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **(details or {}),
        }
        self._ready = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Write ``.alive`` now, then every interval from a daemon thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.touch()
        self._thread = threading.Thread(target=self._beat, name="ruvon-health", daemon=True)
        self._thread.start()

    def mark_ready(self, details: Mapping[str, Any] | None = None) -> None:
        """The worker consumes its queues: keep ``.ready`` fresh too (``details``: e.g. queues)."""
        with self._lock:
            self._ready = True
            self._details.update(details or {})
        self.touch()

    def mark_not_ready(self) -> None:
        """The worker stops taking work (its shutdown began): remove ``.ready``."""
        with self._lock:
            self._ready = False
            self.ready_path.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the thread and remove both files."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
        with self._lock:
            self._ready = False
            self.ready_path.unlink(missing_ok=True)
            self.alive_path.unlink(missing_ok=True)

    def touch(self) -> None:
        """Rewrite the files now (``.ready`` only while ready)."""
        with self._lock:
            if self._stop.is_set():
                return
            details = {**self._details, "ready": self._ready}
            details["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            _write(self.alive_path, details)
            if self._ready:
                _write(self.ready_path, details)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.touch()
            except OSError:
                logger.exception("cannot write the health file %s", self.alive_path)


def _write(path: Path, details: Mapping[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(details) + "\n", encoding="utf-8")
    os.replace(temporary, path)


@dataclass(frozen=True)
class WorkerFile:
    """One worker as its files describe it."""

    node: str
    path: Path
    age: float
    alive: bool
    ready: bool
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "file": str(self.path),
            "age": round(self.age, 3),
            "alive": self.alive,
            "ready": self.ready,
            "pid": self.details.get("pid"),
            "started_at": self.details.get("started_at"),
            "queues": self.details.get("queues"),
        }


def read_worker_files(directory: Path, max_age: float) -> list[WorkerFile]:
    """Every worker with an ``.alive`` file in ``directory``, alive if younger than ``max_age``
    (the beat's files, when it shares the directory, are skipped: it is no worker)."""
    workers: list[WorkerFile] = []
    now = time.time()
    for path in sorted(directory.glob(f"*{ALIVE}")):
        age = file_age(path, now)
        if age is None:  # removed meanwhile: that worker stopped
            continue
        details: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(path.read_text(encoding="utf-8"))
            details = loaded if isinstance(loaded, dict) else {}
        if details.get("role") == BEAT_ROLE:
            continue
        ready_age = file_age(path.with_name(path.name.removesuffix(ALIVE) + READY), now)
        alive = age <= max_age
        workers.append(
            WorkerFile(
                node=str(details.get("node") or path.name.removesuffix(ALIVE)),
                path=path,
                age=age,
                alive=alive,
                ready=alive and ready_age is not None and ready_age <= max_age,
                details=details,
            )
        )
    return workers
