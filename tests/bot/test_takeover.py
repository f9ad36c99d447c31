"""Taking over what a dead process left, and not what a database outage only delayed."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import StoreError
from bot.store import Database
from bot.store.events import EventLog, Orphan
from bot.takeover import Takeover

EVENT = {"event": {"text": "hello?"}}


async def test_an_outage_that_stopped_renewals_is_not_mistaken_for_a_death(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database was away longer than a lease: the owner could not renew, and its lease
    ran out while it was still answering. A process that saw the outage waits a lease of
    database contact before taking anything over; the owner renews meanwhile, so the event
    is answered once. When the owner then really dies, the event is taken over."""
    owner = EventLog(db, lease=0.3)
    assert await owner.first("slack:T1:C1:1", EVENT)
    answered: list[Orphan] = []

    async def resume(orphan: Orphan) -> None:
        answered.append(orphan)

    live = Takeover(EventLog(db, lease=0.3))
    live.on("slack:", resume)

    async def away() -> None:
        raise StoreError("the database does not answer")

    renew = live.events.renew
    monkeypatch.setattr(live.events, "renew", away)
    with pytest.raises(StoreError):
        await live.tick()  # the outage, as the live process sees it
    await asyncio.sleep(0.4)  # meanwhile the owner's lease ran out
    monkeypatch.setattr(live.events, "renew", renew)
    assert await live.tick() == []  # the database is back: wait a lease first
    await owner.renew()  # the owner is alive and renews
    await asyncio.sleep(0.2)
    assert await live.tick() == []
    assert answered == []

    await asyncio.sleep(0.4)  # the owner is gone: no renewal for a whole lease
    [orphan] = await live.tick()
    await asyncio.gather(*live.tasks)
    assert [o.key for o in answered] == ["slack:T1:C1:1"] == [orphan.key]
    assert await live.tick() == []  # done: never again


async def test_while_shutting_down_nothing_is_taken_over_but_leases_are_kept(
    db: Database,
) -> None:
    dead = EventLog(db, lease=0.1)
    await dead.first("slack:T1:C1:dead", EVENT)
    events = EventLog(db, lease=0.3)
    await events.first("slack:T1:C1:mine", EVENT)
    takeover = Takeover(events, wait=0)
    takeover.on("slack:", lambda orphan: asyncio.sleep(0))
    takeover.stop_taking()
    await asyncio.sleep(0.2)
    assert await takeover.tick() == []
    await asyncio.sleep(0.2)  # past the first lease of "mine": renewed by the tick
    assert [o.key for o in await EventLog(db).orphans(["slack:"])] == ["slack:T1:C1:dead"]


async def test_everything_a_dead_replica_left_is_taken_over_in_one_round(db: Database) -> None:
    """A busy replica dies with more events under way than one transaction takes over."""
    dead = EventLog(db, lease=0.1)
    keys = {f"slack:T1:C1:{i}" for i in range(Takeover.BATCH + 50)}
    await asyncio.gather(*(dead.first(key, EVENT) for key in keys))
    await asyncio.sleep(0.2)
    answered: list[str] = []

    async def resume(orphan: Orphan) -> None:
        answered.append(orphan.key)

    takeover = Takeover(EventLog(db), wait=0)
    takeover.on("slack:", resume)
    assert {o.key for o in await takeover.tick()} == keys
    await asyncio.gather(*takeover.tasks)
    assert set(answered) == keys
