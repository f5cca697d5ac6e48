"""A newer release's migrations, for testing this code against them: Ruvon's migrations plus one
test-only revision after the head, in a temporary script location.

:func:`newer_migrations` writes the directory; :func:`upgrade_with` runs the real ``ruvon db
upgrade`` in a subprocess with ``RUVON_MIGRATIONS_DIR`` pointing at it, as the newer release's
migration Job would: the revision's ``min_compatible_revision`` reaches the database through the
migration environment, and this process (the older code) never sees the file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from ruvon.db_schema import migrations

NEXT = "0013_test_future"

_REVISION = '''
"""Test-only revision after the head: {what}."""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{parent}"
branch_labels = None
depends_on = None
{marker}

def upgrade() -> None:
    op.add_column("workflow_executions", sa.Column("test_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_column("test_note")
'''


def newer_migrations(directory: Path, *, compatible_with: str | None) -> Path:
    """Copy Ruvon's migrations to ``directory`` and add :data:`NEXT` after the head.

    ``compatible_with`` is the revision's ``min_compatible_revision`` (None: it declares none).
    """
    shutil.copytree(migrations.MIGRATIONS_DIR, directory, ignore=shutil.ignore_patterns("__py*"))
    if compatible_with is None:
        what, marker = "declares nothing (compatible with itself only)", ""
    else:
        what = f"adds a nullable column, so code from {compatible_with} on still runs"
        marker = f"min_compatible_revision = {compatible_with!r}\n"
    text = _REVISION.format(
        what=what, revision=NEXT, parent=migrations.SCHEMA_REVISION, marker=marker
    )
    (directory / "versions" / f"{NEXT}.py").write_text(textwrap.dedent(text))
    return directory


def ruvon_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real ``ruvon`` command in a subprocess (this checkout's code)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RUVON_", "DATABASE_URL"))}
    base.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "ruvon.cli.main", *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def upgrade_with(directory: Path, url: str) -> None:
    """``ruvon db upgrade`` of ``url`` with the migrations in ``directory`` (the newer release)."""
    result = ruvon_cli("--db", url, "db", "upgrade", env={"RUVON_MIGRATIONS_DIR": str(directory)})
    assert result.returncode == 0, result.stdout + result.stderr
