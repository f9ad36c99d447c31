"""Daily digests: their settings, claims (exactly once across replicas), request events, and
APScheduler's job table (created here, so that Alembic owns every table).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_MEASURES = (
    "requests",
    "calls",
    "failed",
    "rate_limited",
    "retried",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "unpriced",
)


def _measures() -> list[sa.Column[object]]:
    ints = [sa.Column(n, sa.Integer(), nullable=False) for n in _MEASURES[:5]]
    tokens = [sa.Column(n, sa.BigInteger(), nullable=False) for n in _MEASURES[5:7]]
    # USD exact, as in the usage table (on SQLite: whole units of 1e-10, see schema.Money).
    money = sa.Column("cost", sa.Numeric(20, 10), nullable=False)
    return [*ints, *tokens, money, sa.Column("unpriced", sa.Integer(), nullable=False)]


def _keys(*names: str) -> list[sa.Column[object]]:
    widths = {"platform": 32, "workspace": 128, "channel": 128, "user": 128, "model": 128}
    return [
        sa.Column(n, sa.DateTime(timezone=True), primary_key=True)
        if n == "hour"
        else sa.Column(n, sa.String(widths[n]), primary_key=True)
        for n in names
    ]


def _backfill(table: str, keys: tuple[str, ...]) -> None:
    """Rollups of the usage rows already stored."""
    if op.get_bind().dialect.name == "sqlite":
        hour = "strftime('%Y-%m-%d %H:00:00.000000', created_at)"
    else:
        hour = "date_trunc('hour', created_at)"
    cols = ", ".join(f'"{k}"' for k in keys if k != "hour")
    op.execute(
        f"""
        INSERT INTO {table} ({cols}, hour, {", ".join(_MEASURES)})
        SELECT {cols}, {hour},
               count(*) FILTER (WHERE outcome = 'ok'),
               count(*),
               count(*) FILTER (WHERE outcome <> 'ok'),
               count(*) FILTER (WHERE outcome = 'RateLimited'),
               count(*) FILTER (WHERE retries > 0),
               coalesce(sum(prompt_tokens), 0),
               coalesce(sum(completion_tokens), 0),
               coalesce(sum(cost), 0),
               count(*) FILTER (WHERE outcome = 'ok' AND cost IS NULL)
        FROM usage GROUP BY {cols}, {hour}
        """
    )


def upgrade() -> None:
    op.create_table(
        "digest_settings",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("workspace", sa.String(128), primary_key=True),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("at", sa.String(5), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "claims",
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("claimed_by", sa.String(128), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.String(250), nullable=True),
    )
    op.create_index("ix_claims_done_at", "claims", ["done_at"])
    op.create_table(
        "request_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
    )
    op.create_index("ix_request_events_created_at", "request_events", ["created_at"])
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])
    fine = ("platform", "workspace", "hour", "channel", "user", "model")
    op.create_table("usage_hourly", *_keys(*fine), *_measures())
    _backfill("usage_hourly", fine)
    coarse = ("platform", "workspace", "hour", "model")
    op.create_table("usage_hourly_model", *_keys(*coarse), *_measures())
    _backfill("usage_hourly_model", coarse)


def downgrade() -> None:
    op.drop_table("usage_hourly_model")
    op.drop_table("usage_hourly")
    op.drop_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs")
    op.drop_table("apscheduler_jobs")
    op.drop_index("ix_request_events_created_at", "request_events")
    op.drop_table("request_events")
    op.drop_index("ix_claims_done_at", "claims")
    op.drop_table("claims")
    op.drop_table("digest_settings")
