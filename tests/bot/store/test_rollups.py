"""Hourly rollups: backfilled by the migration, kept equal to the raw rows as they are
written, and still answering after the raw rows are pruned."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import MetaData, Table, func, insert, select, text

from bot.digest.content import DigestBuilder
from bot.store import Database, UsageStore, migrate
from bot.store.digests import DigestConfig
from bot.store.schema import UsageHourly, UsageRecord
from tests.bot.digest.test_digest_content import make_rows

START = datetime(2026, 10, 1, tzinfo=UTC)


async def test_the_migration_backfills_rollups_from_existing_rows(db_url: str) -> None:
    rows = make_rows(START, 24 * 5, 300, seed=11)
    async with Database(db_url) as db:
        await migrate.upgrade(db, "0003")
        async with db.session() as s, s.begin():
            # Rows as 0003 knew them: the later columns came with 0006, 0008 and 0014.
            old = Table(
                "usage",
                MetaData(),
                *(c._copy() for c in UsageRecord.__table__.columns if c.key not in _LATER),
            )
            await s.execute(insert(old), [_fields(r) for r in rows])
        await migrate.upgrade(db)
        store = UsageStore(db)
        rolled = await store.report(by="model")
        async with db.session() as s:
            assert (await s.execute(select(func.count()).select_from(UsageHourly))).scalar()
        by_model: dict[str, Decimal] = {}
        for r in rows:
            by_model[r.model] = by_model.get(r.model, Decimal(0)) + (r.cost or 0)
        assert {line.key: line.cost for line in rolled} == by_model
        assert sum(line.calls for line in rolled) == len(rows)


_LATER = ("audio_seconds", "cached_tokens", "reasoning_tokens", "provider")


def _fields(r: object) -> dict[str, object]:
    names = [c.key for c in UsageRecord.__table__.columns if c.key not in ("id", *_LATER)]
    return {n: getattr(r, n) for n in names}


async def test_reports_and_digests_survive_pruning(db: Database) -> None:
    rows = make_rows(START, 24 * 40, 1200, seed=12)
    store = UsageStore(db)
    assert all(await asyncio.gather(*(store.record(r) for r in rows)))
    cfg = DigestConfig("slack", "T1", "C1", tz="America/New_York")
    day = date(2026, 10, 12)
    before = (await store.report(by="day"), await store.report(by="user"))
    digest_before = await DigestBuilder(db).build(cfg, day)

    cutoff = START + timedelta(days=30)
    deleted = await store.prune(cutoff, batch=100)
    assert deleted == sum(r.created_at < cutoff for r in rows)
    async with db.session() as s:
        left = (await s.execute(select(func.count()).select_from(UsageRecord))).scalar()
    assert left == len(rows) - deleted
    assert (await store.report(by="day"), await store.report(by="user")) == before
    digest_after = await DigestBuilder(db).build(cfg, day)
    assert digest_after.cost == digest_before.cost
    assert digest_after.top_users == digest_before.top_users
    assert await store.total(unit="usd", where=(), since=START) == sum(
        (r.cost or Decimal(0) for r in rows if r.outcome == "ok"), Decimal(0)
    )


async def test_retention_prunes_at_most_hourly(db: Database) -> None:
    from bot.scheduler import Retention

    now = datetime.now(UTC)
    rows = make_rows(now - timedelta(days=40), 24 * 10, 200, seed=13)  # all older than 30 days
    store = UsageStore(db)
    assert all(await asyncio.gather(*(store.record(r) for r in rows)))
    retention = Retention(store, 30)
    assert await retention.maybe_prune() == len(rows)
    assert await retention.maybe_prune() == 0  # not again within the hour
    assert sum(line.calls for line in await store.report(by="model")) == len(rows)


async def test_usage_is_rolled_up_per_provider_and_merged_again_on_downgrade(
    db_url: str,
) -> None:
    """One model at two providers is two providers' usage; going back to 0013 adds their
    rollup rows together again, losing nothing."""
    rows = [
        replace(r, model="gpt-4o", provider="azure" if n % 2 else "default")
        for n, r in enumerate(make_rows(START, 3, 40, seed=5))
    ]
    async with Database(db_url) as db:
        await migrate.upgrade(db)
        store = UsageStore(db)
        for r in rows:
            assert await store.record(r)
        by_provider = {line.key: line.calls for line in await store.report(by="provider")}
        assert by_provider == {
            "azure": sum(r.provider == "azure" for r in rows),
            "default": sum(r.provider == "default" for r in rows),
        }
        cost = sum((r.cost or Decimal(0) for r in rows), Decimal(0))
        await migrate.downgrade(db, "0013")
        async with db.session() as s:
            calls = (await s.execute(text("SELECT sum(calls) FROM usage_hourly"))).scalar()
        assert int(calls) == len(rows)
        await migrate.upgrade(db)
        (line,) = await UsageStore(db).report(by="provider")
        assert (line.key, line.calls, line.cost) == ("default", len(rows), cost)
