"""The answer-once event log and the group commit under it, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from bot.errors import StoreError
from bot.store import Database
from bot.store.events import KEEP, MAX_TAKEOVERS, EventLog
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


# -- leases: a process that dies mid-answer -------------------------------------------------

EVENT = {"event": {"type": "app_mention", "text": "<@U0BOT> why?"}, "team": "T1"}


async def _columns(db: Database, key: str) -> tuple[str | None, datetime | None, str | None]:
    async with db.session() as s:
        row = (
            await s.execute(
                select(SeenEvent.owner, SeenEvent.lease_until, SeenEvent.payload).where(
                    SeenEvent.key == key
                )
            )
        ).one()
    return row[0], row[1], row[2]


async def test_an_event_of_a_process_that_died_is_taken_over_by_exactly_one_other(
    db: Database,
) -> None:
    """The dead process claimed ten events with their payloads and never finished them: once
    the lease has run out, two live replicas look at once, and each event goes to one."""
    dead = EventLog(db, lease=0.2)
    keys = [f"slack:T1:C1:{i}" for i in range(10)]
    assert all(await asyncio.gather(*(dead.first(k, EVENT) for k in keys)))
    one, two = EventLog(db, lease=30), EventLog(Database(db.url), lease=30)
    assert await one.orphans(["slack:"]) == []  # not before the lease has run out
    await asyncio.sleep(0.3)
    found = await asyncio.gather(one.orphans(["slack:"]), two.orphans(["slack:"]))
    taken = [o.key for batch in found for o in batch]
    assert sorted(taken) == sorted(keys)
    orphan = found[0][0] if found[0] else found[1][0]
    assert orphan.payload == EVENT and orphan.attempts == 1
    assert await one.orphans(["slack:"]) == await two.orphans(["slack:"]) == []
    await two.db.aclose()


async def test_a_done_event_keeps_nothing_and_is_never_taken_over(db: Database) -> None:
    log = EventLog(db, lease=0.1)
    assert await log.first("slack:T1:C1:1", EVENT)
    owner, lease_until, payload = await _columns(db, "slack:T1:C1:1")
    assert owner == log.owner and lease_until is not None and payload is not None
    await log.done("slack:T1:C1:1")
    assert await _columns(db, "slack:T1:C1:1") == (log.owner, None, None)  # no message text
    await asyncio.sleep(0.2)
    assert await EventLog(db).orphans(["slack:"]) == []
    assert await log.first("slack:T1:C1:1", EVENT) is False  # still answered once


async def test_renewed_leases_are_not_taken_over(db: Database) -> None:
    """A slow answer (queued for budget, say) outlives its first lease: its process renews it."""
    log, other = EventLog(db, lease=0.3), EventLog(db)
    assert await log.first("slack:T1:C1:slow", EVENT)
    for _ in range(4):
        await asyncio.sleep(0.15)
        await log.renew()
        assert await other.orphans(["slack:"]) == []
    await asyncio.sleep(0.4)  # then its process stops renewing: it dies
    assert [o.key for o in await other.orphans(["slack:"])] == ["slack:T1:C1:slow"]


async def test_only_the_platforms_asked_for_are_taken_over(db: Database) -> None:
    log = EventLog(db, lease=0.1)
    await log.first("slack:T1:C1:1", EVENT)
    await log.first("discord:message:2", EVENT)
    await asyncio.sleep(0.2)
    assert [o.key for o in await EventLog(db).orphans(["discord:"])] == ["discord:message:2"]


async def test_an_event_that_keeps_killing_its_processes_is_given_up(db: Database) -> None:
    await EventLog(db, lease=0.05).first("slack:T1:C1:poison", EVENT)
    for attempt in range(1, MAX_TAKEOVERS + 1):
        await asyncio.sleep(0.1)
        [orphan] = await EventLog(db, lease=0.05).orphans(["slack:"])
        assert orphan.attempts == attempt
    await asyncio.sleep(0.1)
    assert await EventLog(db, lease=0.05).orphans(["slack:"]) == []
    assert (await _columns(db, "slack:T1:C1:poison"))[1:] == (None, None)


async def test_with_no_lease_no_event_is_kept(db: Database) -> None:
    """``QUOTABOT_EVENT_LEASE=0``: only the key, as before takeovers existed."""
    log = EventLog(db, lease=0)
    assert await log.first("slack:T1:C1:1", EVENT)
    assert (await _columns(db, "slack:T1:C1:1"))[1:] == (None, None)
