"""Cached prompt tokens and reasoning tokens per usage row, added up in the rollups; budget
limits' values as text (a list of allowed models does not fit in 64 characters).

OpenAI bills prompt tokens read from its cache at a discount and a reasoning model's hidden
reasoning as output: both are kept so that reports show them and costs can be checked. The
rollup trigger of 0006 is replaced by one that adds them up too (its SQL is built here again
rather than imported: a migration must keep meaning what it meant).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("usage", "usage_hourly", "usage_quarter_model")
FINE = ("platform", "workspace", "hour", "channel", "user", "model")
COARSE = ("platform", "workspace", "slot", "model")
_TIMES = ("hour", "slot")
# (measure, its aggregate over a set of new rows, its value for one new row), as of 0004
_0004 = (
    ("requests", "count(*) FILTER (WHERE outcome = 'ok')", "NEW.outcome = 'ok'"),
    ("calls", "count(*)", "1"),
    ("failed", "count(*) FILTER (WHERE outcome <> 'ok')", "NEW.outcome <> 'ok'"),
    (
        "rate_limited",
        "count(*) FILTER (WHERE outcome = 'RateLimited')",
        "NEW.outcome = 'RateLimited'",
    ),
    ("retried", "count(*) FILTER (WHERE retries > 0)", "NEW.retries > 0"),
    ("prompt_tokens", "coalesce(sum(prompt_tokens), 0)", "NEW.prompt_tokens"),
    ("completion_tokens", "coalesce(sum(completion_tokens), 0)", "NEW.completion_tokens"),
    ("cost", "coalesce(sum(cost), 0)", "coalesce(NEW.cost, 0)"),
    (
        "unpriced",
        "count(*) FILTER (WHERE outcome = 'ok' AND cost IS NULL)",
        "NEW.outcome = 'ok' AND NEW.cost IS NULL",
    ),
)
_BEFORE = (  # as of 0006
    *_0004,
    ("audio_seconds", "coalesce(sum(audio_seconds), 0)", "NEW.audio_seconds"),
)
_AFTER = (
    *_BEFORE,
    ("cached_tokens", "coalesce(sum(cached_tokens), 0)", "NEW.cached_tokens"),
    ("reasoning_tokens", "coalesce(sum(reasoning_tokens), 0)", "NEW.reasoning_tokens"),
)
Measures = tuple[tuple[str, str, str], ...]


def _slot(key: str, column: str, dialect: str) -> str:
    if dialect == "sqlite":
        if key == "hour":
            return f"strftime('%Y-%m-%d %H:00:00.000000', {column})"
        return (
            f"strftime('%Y-%m-%d %H:', {column}) || "
            f"printf('%02d', CAST(strftime('%M', {column}) AS INTEGER) / 15 * 15) || "
            "':' || '00.000000'"
        )
    if key == "hour":
        return f"date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    return f"date_bin('15 minutes', {column}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"


def _aggregate(table: str, keys: tuple[str, ...], measures: Measures) -> str:
    cols = [_slot(k, "created_at", "postgresql") if k in _TIMES else f'"{k}"' for k in keys]
    names = ", ".join(f'"{k}"' for k in keys)
    updates = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m, _, _ in measures)
    order = ", ".join(str(n + 1) for n in range(len(keys)))
    return f"""
        INSERT INTO {table} ({names}, {", ".join(m for m, _, _ in measures)})
        SELECT {", ".join(cols)}, {", ".join(agg for _, agg, _ in measures)}
        FROM new_usage WHERE true
        GROUP BY {order}
        ORDER BY {order}
        ON CONFLICT ({names}) DO UPDATE SET {updates}
    """


def _sqlite_row(table: str, keys: tuple[str, ...], measures: Measures) -> str:
    values = [_slot(k, "NEW.created_at", "sqlite") if k in _TIMES else f'NEW."{k}"' for k in keys]
    names = ", ".join(f'"{k}"' for k in keys)
    updates = ", ".join(f"{m} = {m} + excluded.{m}" for m, _, _ in measures)
    return (
        f"INSERT INTO {table} ({names}, {', '.join(m for m, _, _ in measures)}) "
        f"VALUES ({', '.join(values + [row for _, _, row in measures])}) "
        f"ON CONFLICT ({names}) DO UPDATE SET {updates};"
    )


def _triggers(measures: Measures) -> None:
    """Replace the rollup trigger with one that adds up ``measures``."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS usage_rollup")
        op.execute(
            "CREATE TRIGGER usage_rollup AFTER INSERT ON usage BEGIN "
            + _sqlite_row("usage_hourly", FINE, measures)
            + _sqlite_row("usage_quarter_model", COARSE, measures)
            + " END"
        )
        return
    # The trigger calls the function by name: replacing the function is enough.
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION usage_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {_aggregate("usage_hourly", FINE, measures)};
            {_aggregate("usage_quarter_model", COARSE, measures)};
            RETURN NULL;
        END $$
        """
    )


def upgrade() -> None:
    for table in _TABLES:
        kind = sa.Integer() if table == "usage" else sa.BigInteger()
        for column in ("cached_tokens", "reasoning_tokens"):
            op.add_column(table, sa.Column(column, kind, nullable=False, server_default="0"))
    _triggers(_AFTER)
    if op.get_bind().dialect.name != "sqlite":  # SQLite does not enforce VARCHAR lengths
        op.alter_column("budget_limits", "value", type_=sa.Text(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DELETE FROM budget_limits WHERE length(value) > 64")
        op.alter_column("budget_limits", "value", type_=sa.String(64), existing_nullable=False)
    _triggers(_BEFORE)  # first: SQLite will not drop a column that a trigger reads
    for table in _TABLES:
        for column in ("reasoning_tokens", "cached_tokens"):
            op.drop_column(table, column)
