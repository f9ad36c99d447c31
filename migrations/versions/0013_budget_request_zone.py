"""Requests for more budget remember their cap's time zone, now that caps count local days,
weeks and months: "until 00:00 Europe/Paris on Dec 06" rather than the same instant in UTC.

Rows from before were all for UTC caps, which the default says.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("budget_requests") as batch:
        batch.add_column(
            sa.Column("tz", sa.String(64), nullable=False, server_default=sa.text("'UTC'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("budget_requests") as batch:
        batch.drop_column("tz")
