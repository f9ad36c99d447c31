from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from bot.store import Database, migrate
from bot.store.schema import Base

LIBRARY_TABLES = {"slack_installations", "slack_bots", "slack_oauth_states"}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_and_downgrade_round_trip(db_url: str) -> None:
    async with Database(db_url) as db:
        assert await migrate.current(db) is None
        await migrate.upgrade(db)
        assert await migrate.current(db) == migrate.head()
        assert {"usage", "channel_settings", "alembic_version"} <= await _tables(db)

        await migrate.downgrade(db, "base")
        assert await migrate.current(db) is None
        assert await _tables(db) <= {"alembic_version"}

        await migrate.upgrade(db)  # and up again: downgrade left nothing behind
        assert await migrate.current(db) == migrate.head()


async def test_migrations_match_the_models(db: Database) -> None:
    """A model changed without a migration would show up here as a difference."""

    def ours(name, kind, parent):  # type: ignore[no-untyped-def]
        # slack-sdk's OAuth store tables: made by a migration with slack-sdk's own definitions
        # (the core's models never import a platform SDK).
        table = name if kind == "table" else parent.get("table_name")
        return table not in LIBRARY_TABLES

    def diff(conn):  # type: ignore[no-untyped-def]
        ctx = MigrationContext.configure(conn, opts={"compare_type": False, "include_name": ours})
        return compare_metadata(ctx, Base.metadata)

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_outdated_schema_is_refused_with_instructions(db_url: str) -> None:
    from bot.errors import ConfigError

    async with Database(db_url) as db:
        with pytest.raises(ConfigError, match="quotabot db upgrade"):
            await migrate.ensure_schema(db, migrate=False)
        await migrate.ensure_schema(db, migrate=True)
        await migrate.ensure_schema(db, migrate=False)  # now current: accepted


async def test_a_database_that_does_not_answer_at_start_is_one_line_not_a_traceback() -> None:
    """Found by the fault tests: `quotabot serve` restarted during an outage died with
    asyncpg's traceback. It still cannot start without the database, but says so."""
    import socket

    from bot.errors import StoreError

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with Database(f"postgresql://postgres:pw@127.0.0.1:{port}/x") as db:
        with pytest.raises(StoreError, match=f"127.0.0.1:{port}/x does not answer") as caught:
            await migrate.ensure_schema(db, migrate=False)
    assert "pw" not in str(caught.value)


async def test_processes_starting_together_migrate_once(db_url: str) -> None:
    """Three replicas start at once on a new database: one migrates, the others wait."""
    import asyncio

    dbs = [Database(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate.upgrade(d) for d in dbs))
        assert await migrate.current(dbs[0]) == migrate.head()
    finally:
        for d in dbs:
            await d.aclose()
