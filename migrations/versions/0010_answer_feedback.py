"""👍 and 👎 on answers, counted in the digest.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "answer_feedback",
        sa.Column("answer", sa.String(64), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("answer", "user"),
    )
    op.create_index(
        "ix_answer_feedback_workspace_rated_at",
        "answer_feedback",
        ["platform", "workspace", "rated_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_answer_feedback_workspace_rated_at", "answer_feedback")
    op.drop_table("answer_feedback")
