"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Review before committing: the revision must run on PostgreSQL and SQLite (batch mode), and
`ruvon db check` must report no drift on both (tests/migrations does both). Do not import
ruvon.db_schema here: a revision is frozen, the schema module moves on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
# revision identifiers, used by Alembic.
revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}
#: The oldest revision whose code still runs against the schema this revision leaves: the
#: parent's value for an additive change, this revision for a breaking one (migrations/README.md).
min_compatible_revision: str = ${repr(up_revision)}


def upgrade() -> None:
    """Upgrade schema."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Downgrade schema."""
    ${downgrades if downgrades else "pass"}
