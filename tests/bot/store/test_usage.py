from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.store import Database, UsageRow, UsageStore

T0 = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)


def row(call_id: str, **kw: object) -> UsageRow:
    fields: dict[str, object] = {
        "call_id": call_id,
        "request_id": f"req-{call_id}",
        "created_at": T0,
        "platform": "slack",
        "workspace": "T1",
        "channel": "C1",
        "user": "U1",
        "model": "gpt-3.5-turbo",
        "endpoint": "chat",
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "cost": Decimal("0.00025"),
        "outcome": "ok",
    }
    fields.update(kw)
    return UsageRow(**fields)  # type: ignore[arg-type]


async def test_a_replayed_call_is_stored_once(db: Database) -> None:
    store = UsageStore(db)
    assert await store.record(row("a")) is True
    assert await store.record(row("a")) is False
    assert len(await store.rows()) == 1


async def test_costs_add_up_exactly(db: Database) -> None:
    """Ten thousand calls of one cheap token each: floats would drift, Decimal must not."""
    store = UsageStore(db)
    tiny = Decimal("0.0000001")  # one gpt-4.1-nano input token
    for i in range(200):
        await store.record(row(f"c{i}", cost=tiny * 50, channel="C2"))
    await store.record(row("big", cost=Decimal("12345.6789012345"), channel="C3"))
    by_channel = {line.key: line for line in await store.report(by="channel")}
    assert by_channel["C2"].cost == Decimal("0.001")
    assert by_channel["C3"].cost == Decimal("12345.6789012345")
    stored = (await store.rows(request_id="req-big"))[0]
    assert stored.cost == Decimal("12345.6789012345")
    assert stored.created_at == T0


async def test_report_groups_and_counts(db: Database) -> None:
    store = UsageStore(db)
    await store.record(row("1", channel="C1", model="gpt-4", cost=Decimal("0.06")))
    await store.record(row("2", channel="C1", model="gpt-3.5-turbo"))
    await store.record(row("3", channel="C2", model="llama3", cost=None))
    await store.record(
        row(
            "4",
            channel="C2",
            prompt_tokens=0,
            completion_tokens=0,
            cost=None,
            outcome="RateLimited",
        )
    )
    await store.record(row("5", created_at=T0 + timedelta(hours=1)))  # next UTC day

    by_channel = await store.report(by="channel")
    assert [line.key for line in by_channel] == ["C1", "C2"]  # most expensive first
    c1, c2 = by_channel
    assert (c1.calls, c1.failed, c1.prompt_tokens, c1.completion_tokens) == (3, 0, 300, 150)
    assert c1.cost == Decimal("0.06") + 2 * Decimal("0.00025")
    assert (c2.calls, c2.failed, c2.unpriced_calls, c2.cost) == (2, 1, 1, Decimal(0))

    days = await store.report(by="day")
    assert [(d.key, d.calls) for d in days] == [("2026-11-24", 4), ("2026-11-25", 1)]

    since = await store.report(by="model", since=T0 + timedelta(minutes=31))
    assert [(m.key, m.calls) for m in since] == [("gpt-3.5-turbo", 1)]


async def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive"):
        await UsageStore(db).record(row("n", created_at=datetime(2026, 1, 1)))


async def test_a_burst_of_writes_is_stored_once_each(db: Database) -> None:
    """Answers arriving together share commits; each caller still learns whether its own row
    was new, and a replayed one is not stored twice."""
    import asyncio

    store = UsageStore(db)
    ids = [f"b{i}" for i in range(300)] + [f"b{i}" for i in range(0, 300, 30)]
    results = await asyncio.gather(*(store.record(row(i)) for i in ids))
    assert results.count(True) == 300
    assert results.count(False) == 10
    assert len(await store.rows()) == 300


async def test_the_same_call_twice_in_one_group_is_stored_once(db: Database) -> None:
    import asyncio

    store = UsageStore(db)
    first, second = await asyncio.gather(store.record(row("dup")), store.record(row("dup")))
    assert (first, second) == (True, False)
    assert len(await store.rows()) == 1
