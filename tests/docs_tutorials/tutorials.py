"""Run a documented tutorial as its reader would: its files in a fresh directory, ``python``.

The files under ``files/`` are the documentation's code blocks, unchanged. A test copies one
tutorial into a temporary project directory, applies the errata it names (each one a place where
the documentation itself is wrong, with the reason), runs the script in a subprocess with a
timeout (a hang fails the test instead of stalling it) and compares what it printed with the
tutorial's documented output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FILES = Path(__file__).parent / "files"

# Settings a developer's shell may carry; the reader of a tutorial has none of them.
_ENV_PREFIXES = ("RUVON_", "WORKFLOW_", "DATABASE_URL", "CELERY_", "REDIS_URL")


@dataclass(frozen=True)
class Erratum:
    """A place where the tutorial is wrong: ``old`` becomes ``new`` in ``file``, for ``why``."""

    file: str
    old: str
    new: str
    why: str
    regex: bool = False


def lay_out(tutorial: str, project: Path, errata: tuple[Erratum, ...] = ()) -> Path:
    """Copy ``tutorial``'s files (not its expected output) into ``project``; apply ``errata``."""
    shutil.copytree(FILES / tutorial, project, ignore=shutil.ignore_patterns("expected_*.txt"))
    for erratum in errata:
        edit(project / erratum.file, erratum.old, erratum.new, regex=erratum.regex)
    return project


def edit(path: Path, old: str, new: str, *, regex: bool = False) -> None:
    """Replace ``old`` (text or pattern) in ``path``; fail loudly when it is not there."""
    text = path.read_text()
    if regex:
        changed, count = re.subn(old, new, text, flags=re.S)
    else:
        count = text.count(old)
        changed = text.replace(old, new)
    assert count, f"{path.name} no longer contains {old!r}: has the tutorial changed?"
    path.write_text(changed)


def run_script(
    project: Path, script: str, *, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python script`` in ``project``, as the tutorial says; killed after ``timeout``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
    clean.pop("PYTHONPATH", None)
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, script],
        cwd=project,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def documented_output(tutorial: str, name: str = "expected_output.txt") -> str:
    """The tutorial's documented output block."""
    return (FILES / tutorial / name).read_text()


# Values that differ on every run: generated ids, clocks, timings.
_VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\b(ORD|TXN|RES|TRACK|AUTH|OFFLINE)-[0-9A-Z]{8,12}\b"), r"\1-<id>"),
    (re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"), "<datetime>"),
]


def normalized_lines(text: str, *volatile: tuple[str, str]) -> list[str]:
    """Non-blank lines, right-stripped, with run-specific values replaced by placeholders.

    Blank lines are dropped: the documented output blocks collapse the double blank lines the
    tutorials' ``print("...\\n")`` followed by ``print("\\n...")`` produce.
    """
    patterns = [*_VOLATILE, *((re.compile(p), r) for p, r in volatile)]
    lines = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line:
            continue
        for pattern, replacement in patterns:
            line = pattern.sub(replacement, line)
        lines.append(line)
    return lines


def failure_report(result: subprocess.CompletedProcess[str]) -> str:
    """What a failing assertion shows: exit code and both streams."""
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
