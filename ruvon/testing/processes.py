"""Starting the test cluster's subprocesses (workers, beats) from the checkout."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["REPO_ROOT", "spawn"]

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this module lives in: the workers' working directory and first import path."""


def spawn(
    command: Sequence[str], env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``command`` from the checkout in its own session (so its process group is its
    own, to signal as a whole), with stdout and stderr going to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            list(command),
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
