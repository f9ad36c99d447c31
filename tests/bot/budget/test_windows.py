"""Caps count the days, weeks and months of their zone: local midnights (daylight saving
included), weeks from Monday, on both backends, restarts included; and their resets are told
in local time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

import bot.budget.redis as redis_backend
from bot.app import cap_seed
from bot.budget.backend import BudgetBackend
from bot.budget.limits import (
    Ask,
    Cap,
    Granted,
    Refused,
    local_time,
    reset_text,
    window,
    window_end,
    window_start,
    windows_around,
)
from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy, Who
from bot.catalog import Catalog, ModelInfo, ModelOverride
from bot.errors import BudgetExceeded
from bot.store import Database, UsageStore
from bot.store.rows import UsageRow

PARIS = "Europe/Paris"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("zone", "at", "name", "start", "end"),
    [
        # 23:30 UTC on Dec 5 is already Dec 6 in Paris.
        ("UTC", utc(2026, 12, 5, 23, 30), "2026-12-05", utc(2026, 12, 5), utc(2026, 12, 6)),
        (PARIS, utc(2026, 12, 5, 23, 30), "2026-12-06", utc(2026, 12, 5, 23), utc(2026, 12, 6, 23)),
        # The spring-forward day lasts 23 hours, the autumn one 25.
        (PARIS, utc(2026, 3, 29, 12), "2026-03-29", utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        (PARIS, utc(2026, 10, 25, 12), "2026-10-25", utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
        # Half an hour off UTC.
        (
            "Asia/Kolkata",
            utc(2026, 12, 5, 18, 45),
            "2026-12-06",
            utc(2026, 12, 5, 18, 30),
            utc(2026, 12, 6, 18, 30),
        ),
    ],
)
def test_a_day_is_the_zone_s_day(
    zone: str, at: datetime, name: str, start: datetime, end: datetime
) -> None:
    assert window("day", at, zone) == name
    assert window_start("day", at, zone) == start
    assert window_end("day", at, zone) == end
    assert window_end("day", at, zone).tzinfo == ZoneInfo(zone)


def test_weeks_run_from_monday_and_months_from_the_first_in_the_zone() -> None:
    sunday_night = utc(2026, 12, 6, 23, 30)  # Sunday in UTC, Monday 00:30 in Paris
    assert window("week", sunday_night) == "2026-W49"
    assert window("week", sunday_night, PARIS) == "2026-W50"
    assert window_start("week", sunday_night, PARIS) == utc(2026, 12, 6, 23)
    assert window_end("week", sunday_night, PARIS) == utc(2026, 12, 13, 23)
    # The ISO year: the week of Dec 31, 2026 is 2026-W53 and runs into January.
    assert window("week", utc(2027, 1, 2, 12)) == "2026-W53"
    assert window_end("week", utc(2027, 1, 2, 12)) == utc(2027, 1, 4)
    new_year = utc(2026, 12, 31, 23, 30)
    assert (window("month", new_year), window("month", new_year, PARIS)) == ("2026-12", "2027-01")
    assert window_end("month", new_year, PARIS) == utc(2027, 1, 31, 23)


def test_the_windows_around_now_for_redis_are_consecutive() -> None:
    around = windows_around("week", utc(2026, 12, 5, 12), PARIS)
    assert [name for name, _ in around] == ["2026-W48", "2026-W49", "2026-W50"]
    ends = [datetime.fromtimestamp(end, UTC) for _, end in around]
    assert ends == [utc(2026, 11, 29, 23), utc(2026, 12, 6, 23), utc(2026, 12, 13, 23)]


def test_resets_are_told_in_the_zone_s_own_time() -> None:
    ends = window_end("day", utc(2026, 12, 5, 12), PARIS)
    assert reset_text(ends) == "00:00 Europe/Paris on Dec 06"
    assert local_time(window_end("day", utc(2026, 12, 5, 12))) == "00:00 UTC"
    # A bare offset (as parsed back from ISO text) is shown in UTC, not mislabelled.
    assert local_time(datetime.fromisoformat("2026-12-06T00:00:00+01:00")) == "23:00 UTC"


def cap(period: str = "day", zone: str = PARIS, limit: int = 100) -> Cap:
    return Cap(
        key=f"cap:{uuid.uuid4().hex[:6]}",
        limit=limit,
        period=period,  # type: ignore[arg-type]
        unit="tokens",
        label="tokens per day",
        zone=zone,
    )


async def test_a_local_day_cap_starts_again_at_local_midnight_not_utc() -> None:
    clock = [utc(2026, 12, 5, 22, 50)]  # 23:50 in Paris
    backend = MemoryBackend(wallclock=lambda: clock[0])
    paris, london = cap(zone=PARIS), cap(zone="UTC")
    both = Ask(caps=((paris, 80), (london, 80)))
    assert isinstance(await backend.acquire(both), Granted)
    refused = await backend.acquire(Ask(caps=((paris, 30),)))
    assert isinstance(refused, Refused)
    assert refused.resets_at == utc(2026, 12, 5, 23)
    assert reset_text(refused.resets_at) == "00:00 Europe/Paris on Dec 06"

    clock[0] = utc(2026, 12, 5, 23, 10)  # 00:10 on Dec 6 in Paris, still Dec 5 in UTC
    assert isinstance(await backend.acquire(Ask(caps=((paris, 30),))), Granted)
    assert (await backend.cap_state(paris)).used == 30
    still = await backend.acquire(Ask(caps=((london, 30),)))
    assert isinstance(still, Refused) and local_time(still.resets_at) == "00:00 UTC"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[BudgetBackend]:
    from bot.budget.redis import RedisBackend

    backend = RedisBackend(redis_url, prefix=f"qbtest:{uuid.uuid4().hex[:8]}")
    await backend.start()
    yield backend
    await backend.delete_all()
    await backend.aclose()


@pytest.mark.parametrize("skew", [timedelta(hours=-23), timedelta(0), timedelta(hours=23)])
async def test_redis_charges_the_window_of_the_server_s_clock(
    redis: BudgetBackend, skew: timedelta, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica whose clock is most of a day off still charges today's counter, and says
    today's window ends when it does: the script picks among the windows the replica sends
    (its day, the one before and the one after; 25 hours off crossed two midnights in the
    hour before one, and the test failed then)."""

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: object = None) -> Skewed:  # type: ignore[override]
            return super().now(tz) + skew  # type: ignore[arg-type, return-value]

    monkeypatch.setattr(redis_backend, "datetime", Skewed)
    c = cap(period="day", zone="Asia/Kolkata", limit=100)
    now = datetime.now(UTC)
    granted = await redis.acquire(Ask(caps=((c, 70),)))
    assert isinstance(granted, Granted)
    assert granted.windows == (window("day", now, "Asia/Kolkata"),)
    state = await redis.cap_state(c)
    assert state.used == 70
    assert state.resets_at == window_end("day", now, "Asia/Kolkata")
    assert state.resets_at.tzinfo == ZoneInfo("Asia/Kolkata")
    refused = await redis.acquire(Ask(caps=((c, 40),)))
    assert isinstance(refused, Refused) and refused.resets_at == state.resets_at


def priced() -> ModelInfo:
    name = f"m-{uuid.uuid4().hex[:6]}"
    catalog = Catalog.build(
        overrides={name: ModelOverride(input_price=Decimal("0.001"), output_price=Decimal("0.002"))}
    )
    return catalog.get(name)


async def test_a_workspace_s_week_cap_counts_its_zone_and_says_when_it_resets() -> None:
    m = priced()
    who = Who("slack", "T1", "C1", "U1")
    policy = Policy({"workspace": {"timezone": "America/New_York"}, "user": {"tokens_week": 1_000}})
    budget = Budget(MemoryBackend(), policy)
    far = 1e12
    ticket = await budget.acquire(who, m, tokens=900, cost=None, deadline=far)
    await budget.settle(ticket, tokens=900, cost=None)
    with pytest.raises(BudgetExceeded) as refused:
        await budget.acquire(who, m, tokens=200, cost=None, deadline=far)
    monday = window_end("week", datetime.now(UTC), "America/New_York")
    assert monday.weekday() == 0 and (monday.hour, monday.minute) == (0, 0)
    assert f"It resets at 00:00 America/New_York on {monday:%b %d}" in str(refused.value)
    (standing,) = await budget.status(who, m)
    assert standing.label == "this user's tokens per week" and standing.resets_at == monday
    assert await budget.zone("T1") == "America/New_York"
    assert await budget.zone("T2") == "America/New_York"  # the default for every workspace


def zone_past_midnight() -> str:
    """A whole-hour zone where it is now between 01:00 and 02:00: its day began an hour or
    two ago, so usage from three hours ago belongs to its yesterday, whatever UTC says."""
    now = datetime.now(UTC)
    offset = (1 - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    # Etc/GMT-5 is UTC+5: the sign is POSIX's, the other way round.
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


async def test_after_a_restart_a_cap_is_rebuilt_from_its_local_window(db: Database) -> None:
    usage = UsageStore(db)
    zone = zone_past_midnight()
    now = datetime.now(UTC)
    assert window("day", now, zone) != window("day", now - timedelta(hours=3), zone)
    for n, (hours_ago, tokens) in enumerate(((3, 500), (0.5, 70))):
        row = UsageRow(
            call_id=f"call-{n}",
            request_id=f"req-{n}",
            created_at=now - timedelta(hours=hours_ago),
            platform="slack",
            workspace="T1",
            channel="C1",
            user="U1",
            model="gpt-4o-mini",
            endpoint="chat",
            prompt_tokens=tokens,
            completion_tokens=0,
            cost=Decimal(0),
            outcome="ok",
        )
        assert await usage.record(row)
    catalog = Catalog.build()
    policy = Policy({"workspace": {"timezone": zone, "tokens_day": 10_000}})
    budget = Budget(MemoryBackend(), policy, seed=cap_seed(usage))
    standings = await budget.status(Who("slack", "T1", "C9", "U9"), catalog.get("gpt-4o-mini"))
    (standing,) = [s for s in standings if s.resets_at is not None]
    assert standing.used == 70, "only today's usage in the workspace's zone counts"
