"""The answer-once event log and the group commit under it, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from bot.errors import StoreError
from bot.store import Database
from bot.store.events import KEEP, EventLog
from bot.store.group import GroupWriter
from bot.store.schema import SeenEvent


async def test_a_burst_of_events_each_claimed_once_across_two_replicas(db: Database) -> None:
    """Slack's retries and the app_mention/message twins of 300 posts reach two replicas at
    once: each post is taken on by exactly one caller."""
    one, two = EventLog(db), EventLog(Database(db.url))
    keys = [f"slack:T1:C1:{i}" for i in range(300)]
    calls = [log.first(key) for key in keys for log in (one, two, one)]
    claimed = await asyncio.gather(*calls)
    asked = [key for key in keys for _ in range(3)]
    taken = [key for key, won in zip(asked, claimed, strict=True) if won]
    assert sorted(taken) == sorted(keys)
    assert await one.first(keys[0]) is False  # and later too
    await two.db.aclose()


async def test_claims_share_transactions(db: Database) -> None:
    log = EventLog(db)
    groups: list[int] = []
    claim = log._claim

    async def counted(keys: list[str]) -> list[bool]:
        groups.append(len(keys))
        return await claim(keys)

    log._group = GroupWriter(counted, max_batch=1000)
    assert all(await asyncio.gather(*(log.first(f"k{i}") for i in range(500))))
    assert sum(groups) == 500 and len(groups) <= 3


async def test_old_claims_are_pruned(db: Database) -> None:
    log = EventLog(db)
    log.PRUNE_EVERY = 10
    await asyncio.gather(*(log.first(f"old{i}") for i in range(5)))
    async with db.session() as s, s.begin():
        await s.execute(update(SeenEvent).values(created_at=datetime.now(UTC) - KEEP * 2))
    await asyncio.gather(*(log.first(f"new{i}") for i in range(6)))  # crosses 10 claims
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(SeenEvent)) == 6


async def test_a_database_that_fails_fails_every_caller_of_that_group() -> None:
    db = Database("sqlite:////nonexistent-dir/quotabot.db")
    log = EventLog(db)
    results = await asyncio.gather(*(log.first(f"k{i}") for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results)
    assert "Could not record events k0" in str(results[0])
    await db.aclose()


async def test_group_writer_goes_on_after_a_failed_group() -> None:
    seen: list[list[int]] = []

    async def write(items: list[int]) -> list[int]:
        seen.append(items)
        await asyncio.sleep(0)
        if 0 in items:
            raise ValueError("group with 0")
        return [i * 2 for i in items]

    group: GroupWriter[int, int] = GroupWriter(write, max_batch=2)
    results = await asyncio.gather(*(group.submit(i) for i in range(5)), return_exceptions=True)
    assert isinstance(results[0], ValueError) and isinstance(results[1], ValueError)
    assert results[2:] == [4, 6, 8]
    assert seen == [[0, 1], [2, 3], [4]]


async def test_a_caller_that_gives_up_does_not_cancel_the_others() -> None:
    release = asyncio.Event()

    async def write(items: list[str]) -> list[str]:
        await release.wait()
        return items

    group: GroupWriter[str, str] = GroupWriter(write, max_batch=10)
    first = asyncio.create_task(group.submit("a"))
    await asyncio.sleep(0)
    second = asyncio.create_task(group.submit("b"))
    impatient = asyncio.create_task(group.submit("c"))
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await first == "a" and await second == "b"
    with pytest.raises(asyncio.CancelledError):
        await impatient
