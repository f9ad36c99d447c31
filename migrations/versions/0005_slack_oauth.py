"""Slack OAuth: slack-sdk's installation and state store tables, for multi-workspace installs.

The tables are built by slack-sdk's own table builders, so they are exactly what its
AsyncSQLAlchemyInstallationStore and AsyncSQLAlchemyOAuthStateStore read and write.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tables() -> sa.MetaData:
    metadata = sa.MetaData()
    SQLAlchemyInstallationStore.build_installations_table(metadata, "slack_installations")
    SQLAlchemyInstallationStore.build_bots_table(metadata, "slack_bots")
    SQLAlchemyOAuthStateStore.build_oauth_states_table(metadata, "slack_oauth_states")
    return metadata


def upgrade() -> None:
    _tables().create_all(op.get_bind())


def downgrade() -> None:
    _tables().drop_all(op.get_bind())
