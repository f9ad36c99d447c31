"""An index of the failed calls only, for the dashboard's failures table.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FAILED = sa.text("outcome NOT IN ('ok', 'stopped')")


def upgrade() -> None:
    op.create_index(
        "ix_usage_failed",
        "usage",
        ["workspace", "created_at"],
        postgresql_where=_FAILED,
        sqlite_where=_FAILED,
    )


def downgrade() -> None:
    op.drop_index("ix_usage_failed", "usage")
