"""Events under way keep their payload and a lease, so a live replica can take over a dead one's.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("lease_until IS NOT NULL")


def upgrade() -> None:
    # Rows from before are done: no lease, nothing to take over.
    op.add_column("seen_events", sa.Column("owner", sa.String(64), nullable=True))
    op.add_column(
        "seen_events", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("seen_events", sa.Column("payload", sa.Text(), nullable=True))
    op.add_column(
        "seen_events", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_index(
        "ix_seen_events_open",
        "seen_events",
        ["lease_until"],
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_seen_events_open", "seen_events")
    for column in ("attempts", "payload", "lease_until", "owner"):
        op.drop_column("seen_events", column)
