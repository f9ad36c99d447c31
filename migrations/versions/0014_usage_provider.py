"""Each usage row names the provider that served its call, and the rollups add up per
provider too, so that reports and the dashboard group by it: one model name served by two
providers (an OpenAI account and an Azure deployment) is two providers' usage.

Rows from before were all the default provider's (OPENAI_BASE_URL), which the default says.
The rollups' primary keys gain the column, and the rollup trigger of 0008 is replaced by one
that keys on it (its SQL built here again: a migration must keep meaning what it meant).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINE = ("platform", "workspace", "hour", "channel", "user", "model")
COARSE = ("platform", "workspace", "slot", "model")
_ROLLUPS = {"usage_hourly": FINE, "usage_quarter_model": COARSE}
_TIMES = ("hour", "slot")
# (measure, its aggregate over a set of new rows, its value for one new row), as of 0008
MEASURES = (
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
    ("audio_seconds", "coalesce(sum(audio_seconds), 0)", "NEW.audio_seconds"),
    ("cached_tokens", "coalesce(sum(cached_tokens), 0)", "NEW.cached_tokens"),
    ("reasoning_tokens", "coalesce(sum(reasoning_tokens), 0)", "NEW.reasoning_tokens"),
)


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


def _aggregate(table: str, keys: tuple[str, ...]) -> str:
    cols = [_slot(k, "created_at", "postgresql") if k in _TIMES else f'"{k}"' for k in keys]
    names = ", ".join(f'"{k}"' for k in keys)
    updates = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m, _, _ in MEASURES)
    order = ", ".join(str(n + 1) for n in range(len(keys)))
    return f"""
        INSERT INTO {table} ({names}, {", ".join(m for m, _, _ in MEASURES)})
        SELECT {", ".join(cols)}, {", ".join(agg for _, agg, _ in MEASURES)}
        FROM new_usage WHERE true
        GROUP BY {order}
        ORDER BY {order}
        ON CONFLICT ({names}) DO UPDATE SET {updates}
    """


def _sqlite_row(table: str, keys: tuple[str, ...]) -> str:
    values = [_slot(k, "NEW.created_at", "sqlite") if k in _TIMES else f'NEW."{k}"' for k in keys]
    names = ", ".join(f'"{k}"' for k in keys)
    updates = ", ".join(f"{m} = {m} + excluded.{m}" for m, _, _ in MEASURES)
    return (
        f"INSERT INTO {table} ({names}, {', '.join(m for m, _, _ in MEASURES)}) "
        f"VALUES ({', '.join(values + [row for _, _, row in MEASURES])}) "
        f"ON CONFLICT ({names}) DO UPDATE SET {updates};"
    )


def _triggers(extra: tuple[str, ...]) -> None:
    """The rollup trigger, keyed on each rollup's keys plus ``extra``."""
    fine, coarse = (*FINE, *extra), (*COARSE, *extra)
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER usage_rollup AFTER INSERT ON usage BEGIN "
            + _sqlite_row("usage_hourly", fine)
            + _sqlite_row("usage_quarter_model", coarse)
            + " END"
        )
        return
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION usage_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {_aggregate("usage_hourly", fine)};
            {_aggregate("usage_quarter_model", coarse)};
            RETURN NULL;
        END $$
        """
    )


def _shape(table: str, keys: tuple[str, ...], provider: bool) -> sa.Table:
    """A rollup table as it is (with or without ``provider``), its primary key ``keys``: what
    SQLite's copy of the table is made from, since SQLite cannot change a primary key."""
    widths = {"platform": 32, "workspace": 128, "channel": 128, "user": 128, "model": 128}
    columns: list[sa.Column[object]] = [
        sa.Column(n, sa.DateTime(timezone=True), primary_key=n in keys)
        if n in _TIMES
        else sa.Column(n, sa.String(widths[n]), primary_key=n in keys)
        for n in _ROLLUPS[table]
    ]
    if provider:
        columns.append(
            sa.Column(
                "provider",
                sa.String(64),
                primary_key="provider" in keys,
                server_default="default",
            )
        )
    for name, _, _ in MEASURES:
        kind: sa.types.TypeEngine[object] = sa.Integer()
        if name in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"):
            kind = sa.BigInteger()
        elif name == "cost":
            kind = sa.Numeric(20, 10)
        elif name == "audio_seconds":
            kind = sa.Float()
        later = name in ("audio_seconds", "cached_tokens", "reasoning_tokens")
        columns.append(sa.Column(name, kind, nullable=False, server_default="0" if later else None))
    return sa.Table(table, sa.MetaData(), *columns)


def _primary_key(table: str, keys: tuple[str, ...], *, provider: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        shape = _shape(table, keys, provider)
        with op.batch_alter_table(table, recreate="always", copy_from=shape):
            pass
        return
    op.drop_constraint(f"{table}_pkey", table, type_="primary")
    op.create_primary_key(f"{table}_pkey", table, list(keys))


def _provider() -> sa.Column[str]:
    return sa.Column("provider", sa.String(64), nullable=False, server_default="default")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:  # it will not alter a table that a trigger reads
        op.execute("DROP TRIGGER IF EXISTS usage_rollup")
    op.add_column("usage", _provider())
    for table, keys in _ROLLUPS.items():
        op.add_column(table, _provider())
        _primary_key(table, (*keys, "provider"), provider=True)
    _triggers(("provider",))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP TRIGGER IF EXISTS usage_rollup")
    else:
        _triggers(())  # first: the new key would no longer be unique
    measures = ", ".join(m for m, _, _ in MEASURES)
    sums = ", ".join(f"sum({m}) AS {m}" for m, _, _ in MEASURES)
    for table, keys in _ROLLUPS.items():
        # Rows that differ by provider only become one row again.
        names = ", ".join(f'"{k}"' for k in keys)
        op.execute(
            f"CREATE TABLE {table}_merged AS SELECT {names}, {sums} FROM {table} GROUP BY {names}"
        )
        op.execute(f"DELETE FROM {table}")
        if sqlite:
            shape = _shape(table, keys, provider=True)
            with op.batch_alter_table(table, recreate="always", copy_from=shape) as batch:
                batch.drop_column("provider")
        else:
            op.drop_constraint(f"{table}_pkey", table, type_="primary")
            op.drop_column(table, "provider")
            op.create_primary_key(f"{table}_pkey", table, list(keys))
        op.execute(f"INSERT INTO {table} ({names}, {measures}) SELECT * FROM {table}_merged")
        op.execute(f"DROP TABLE {table}_merged")
    op.drop_column("usage", "provider")
    if sqlite:
        _triggers(())
