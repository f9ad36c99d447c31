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


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


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
        if n in ("hour", "slot")
        else sa.Column(n, sa.String(widths[n]), primary_key=True)
        for n in names
    ]


def _slot(key: str, column: str, dialect: str) -> str:
    """The UTC hour (key ``hour``) or quarter hour (``slot``) a timestamp falls in, as each
    backend stores timestamps."""
    if dialect == "sqlite":  # SQLAlchemy stores naive UTC text: 2026-11-24 10:17:03.123456
        if key == "hour":
            return f"strftime('%Y-%m-%d %H:00:00.000000', {column})"
        return (
            f"strftime('%Y-%m-%d %H:', {column}) || "
            f"printf('%02d', CAST(strftime('%M', {column}) AS INTEGER) / 15 * 15) || "
            "':' || '00.000000'"  # (not ':00...': text() would take that for a parameter)
        )
    if key == "hour":
        return f"date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    return f"date_bin('15 minutes', {column}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"


def _aggregate(table: str, keys: tuple[str, ...], source: str, dialect: str) -> str:
    """INSERT ... SELECT ... GROUP BY that adds ``source``'s usage rows to ``table``."""
    cols = [_slot(k, "created_at", dialect) if k in _TIMES else f'"{k}"' for k in keys]
    names = ", ".join(f'"{k}"' for k in keys)
    updates = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in _MEASURES)
    return f"""
        INSERT INTO {table} ({names}, {", ".join(_MEASURES)})
        SELECT {", ".join(cols)},
               count(*) FILTER (WHERE outcome = 'ok'),
               count(*),
               count(*) FILTER (WHERE outcome <> 'ok'),
               count(*) FILTER (WHERE outcome = 'RateLimited'),
               count(*) FILTER (WHERE retries > 0),
               coalesce(sum(prompt_tokens), 0),
               coalesce(sum(completion_tokens), 0),
               coalesce(sum(cost), 0),
               count(*) FILTER (WHERE outcome = 'ok' AND cost IS NULL)
        FROM {source} WHERE true
        GROUP BY {", ".join(str(n + 1) for n in range(len(keys)))}
        ORDER BY {", ".join(str(n + 1) for n in range(len(keys)))}
        ON CONFLICT ({names}) DO UPDATE SET {updates}
    """


def _sqlite_row(table: str, keys: tuple[str, ...]) -> str:
    """SQLite has row triggers only: one upsert per new usage row."""
    values = [_slot(k, "NEW.created_at", "sqlite") if k in _TIMES else f'NEW."{k}"' for k in keys]
    measures = [
        "NEW.outcome = 'ok'",
        "1",
        "NEW.outcome <> 'ok'",
        "NEW.outcome = 'RateLimited'",
        "NEW.retries > 0",
        "NEW.prompt_tokens",
        "NEW.completion_tokens",
        "coalesce(NEW.cost, 0)",
        "NEW.outcome = 'ok' AND NEW.cost IS NULL",
    ]
    names = ", ".join(f'"{k}"' for k in keys)
    updates = ", ".join(f"{m} = {m} + excluded.{m}" for m in _MEASURES)
    return (
        f"INSERT INTO {table} ({names}, {', '.join(_MEASURES)}) "
        f"VALUES ({', '.join(values + measures)}) "
        f"ON CONFLICT ({names}) DO UPDATE SET {updates};"
    )


FINE = ("platform", "workspace", "hour", "channel", "user", "model")
COARSE = ("platform", "workspace", "slot", "model")
_TIMES = ("hour", "slot")


def _rollup_triggers(dialect: str) -> None:
    """The rollups are kept by the database itself, in the inserting transaction: no extra
    round trip for the bot, and every writer (bulk loads too) keeps them right. PostgreSQL:
    one statement trigger per INSERT, aggregating its new rows (a transition table);
    SQLite: a row trigger."""
    if dialect == "sqlite":
        op.execute(
            "CREATE TRIGGER usage_rollup AFTER INSERT ON usage BEGIN "
            + _sqlite_row("usage_hourly", FINE)
            + _sqlite_row("usage_quarter_model", COARSE)
            + " END"
        )
        return
    op.execute(
        f"""
        CREATE FUNCTION usage_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {_aggregate("usage_hourly", FINE, "new_usage", dialect)};
            {_aggregate("usage_quarter_model", COARSE, "new_usage", dialect)};
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER usage_rollup AFTER INSERT ON usage REFERENCING NEW TABLE AS new_usage "
        "FOR EACH STATEMENT EXECUTE FUNCTION usage_rollup()"
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
    dialect = op.get_bind().dialect.name
    op.create_table("usage_hourly", *_keys(*FINE), *_measures())
    op.create_table("usage_quarter_model", *_keys(*COARSE), *_measures())
    # Rollups of the rows already stored, then kept up to date by the database.
    op.execute(_aggregate("usage_hourly", FINE, "usage", dialect))
    op.execute(_aggregate("usage_quarter_model", COARSE, "usage", dialect))
    _rollup_triggers(dialect)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS usage_rollup" + ("" if _sqlite() else " ON usage"))
    if not _sqlite():
        op.execute("DROP FUNCTION IF EXISTS usage_rollup()")
    op.drop_table("usage_quarter_model")
    op.drop_table("usage_hourly")
    op.drop_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs")
    op.drop_table("apscheduler_jobs")
    op.drop_index("ix_request_events_created_at", "request_events")
    op.drop_table("request_events")
    op.drop_index("ix_claims_done_at", "claims")
    op.drop_table("claims")
    op.drop_table("digest_settings")
