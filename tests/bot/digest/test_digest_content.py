"""Digest figures against totals computed here, independently, from the rows we wrote."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from adapters.discord.digest import discord_embed
from adapters.slack.digest import slack_blocks
from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy
from bot.digest.content import DigestBuilder
from bot.digest.render import to_text
from bot.store import Database, UsageRow, UsageStore
from bot.store.digests import DigestConfig, RequestEvents

MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo")
CHANNELS = ("C1", "C2", "C3", "C4", "C5", "C6", "C7")
USERS = ("U1", "U2", "U3", "U4", "U5", "U6")
OUTCOMES = ("ok",) * 8 + ("RateLimited", "ServerError")


def make_rows(start: datetime, hours: int, n: int, seed: int) -> list[UsageRow]:
    """``n`` calls spread over ``hours`` from ``start``, two workspaces, odd costs."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        at = start + timedelta(seconds=rng.randrange(hours * 3600))
        outcome = rng.choice(OUTCOMES)
        ok = outcome == "ok"
        priced = rng.random() > 0.05
        rows.append(
            UsageRow(
                call_id=f"{seed}-{i}",
                request_id=f"r{seed}-{i}",
                created_at=at,
                platform="slack",
                workspace=rng.choice(("T1", "T1", "T1", "T2")),
                channel=rng.choice(CHANNELS),
                user=rng.choice(USERS),
                model=rng.choice(MODELS),
                endpoint="chat",
                prompt_tokens=rng.randrange(1, 3000) if ok else 0,
                completion_tokens=rng.randrange(0, 900) if ok else 0,
                cost=Decimal(rng.randrange(1, 10**9)) / 10**10 if ok and priced else None,
                outcome=outcome,
                retries=rng.choice((0, 0, 0, 1, 2)),
            )
        )
    return rows


async def store_rows(db: Database, rows: list[UsageRow]) -> None:
    store = UsageStore(db)  # all at once: group-committed, a few statements in all
    assert all(await asyncio.gather(*(store.record(r) for r in rows)))


def local_day(r: UsageRow, zone: ZoneInfo) -> date:
    return r.created_at.astimezone(zone).date()


def spend(rows: list[UsageRow]) -> Decimal:
    return sum((r.cost or Decimal(0) for r in rows), Decimal(0))


@pytest.mark.parametrize(
    ("tz", "day", "hours", "rollups"),
    [
        ("Europe/Berlin", date(2026, 3, 29), 23, True),  # spring forward: a 23-hour day
        ("Europe/Berlin", date(2026, 10, 25), 25, True),  # fall back: a 25-hour day
        ("America/New_York", date(2026, 11, 24), 24, True),
        ("Asia/Kolkata", date(2026, 11, 24), 24, True),  # UTC+05:30: partial hours from raw rows
        ("Asia/Kolkata", date(2026, 11, 24), 24, False),  # the naive reading agrees
    ],
)
async def test_figures_match_independent_totals(
    db: Database, tz: str, day: date, hours: int, rollups: bool
) -> None:
    zone = ZoneInfo(tz)
    # 20 days of calls ending two days after the digest's day, denser near its midnights.
    begin = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=17)
    rows = make_rows(begin, 20 * 24, 500, seed=1)
    edges = datetime.combine(day, datetime.min.time(), tzinfo=zone).astimezone(UTC)
    rows += make_rows(edges - timedelta(hours=2), 4, 120, seed=2)
    rows += make_rows(edges + timedelta(hours=hours - 2), 4, 120, seed=3)
    await store_rows(db, rows)
    events = RequestEvents(db)
    await events.note(
        platform="slack", workspace="T1", channel="C1", user="U1", model="gpt-4o", kind="queued"
    )

    cfg = DigestConfig("slack", "T1", "C9", "09:00", tz)
    d = await DigestBuilder(db, rollups=rollups).build(cfg, day)

    mine = [r for r in rows if r.workspace == "T1" and r.platform == "slack"]
    days = {r.call_id: local_day(r, zone) for r in mine}
    today = [r for r in mine if days[r.call_id] == day]
    ok = [r for r in today if r.outcome == "ok"]
    assert d.end - d.start == timedelta(hours=hours)
    assert d.cost == spend(today)
    assert d.requests == len(ok)
    assert d.calls == len(today)
    assert d.failed == len(today) - len(ok)
    assert d.rate_limited == sum(r.outcome == "RateLimited" for r in today)
    assert d.retries == sum(r.retries > 0 for r in today)
    assert d.prompt_tokens == sum(r.prompt_tokens for r in today)
    assert d.completion_tokens == sum(r.completion_tokens for r in today)
    assert d.unpriced == sum(r.cost is None for r in ok)
    assert {ln.key: ln.cost for ln in d.by_model} == {
        m: spend([r for r in today if r.model == m]) for m in {r.model for r in today}
    }
    channel_spend = {c: spend([r for r in today if r.channel == c]) for c in CHANNELS}
    top = sorted(channel_spend.items(), key=lambda kv: -kv[1])[:5]
    assert [(ln.key, ln.cost) for ln in d.top_channels] == top
    user_spend = {u: spend([r for r in today if r.user == u]) for u in USERS}
    assert [ln.cost for ln in d.top_users] == sorted(user_spend.values(), reverse=True)[:5]

    by_day = {
        day - timedelta(days=n): spend(
            [r for r in mine if local_day(r, zone) == day - timedelta(n)]
        )
        for n in range(14)
    }
    assert d.previous_day == by_day[day - timedelta(days=1)]
    week = sum((by_day[day - timedelta(days=n)] for n in range(1, 8)), Decimal(0))
    assert d.week_average == (week / 7).quantize(Decimal("1e-10"))
    assert d.series_days[-1] == day and len(d.series_days) == 14
    for n, when in enumerate(d.series_days):
        assert sum((v[n] for v in d.series.values()), Decimal(0)) == by_day[when]
    month = [r for r in mine if days[r.call_id] <= day and days[r.call_id].month == day.month]
    assert d.month_to_date == spend([r for r in month if days[r.call_id].year == day.year])


async def test_queued_and_refused_counts_and_budgets(db: Database) -> None:
    zone = ZoneInfo("Europe/Berlin")
    day = date(2026, 11, 24)
    start = datetime(2026, 11, 24, 8, tzinfo=zone).astimezone(UTC)
    rows = make_rows(start, 6, 200, seed=7)
    await store_rows(db, rows)
    events = RequestEvents(db)
    for kind, n in (("queued", 3), ("refused", 2), ("fallback", 4)):
        for _ in range(n):
            await events.note(
                platform="slack",
                workspace="T1",
                channel="C1",
                user="U1",
                model="m",
                kind=kind,
                at=start,
            )
    await events.note(
        platform="slack",
        workspace="T2",
        channel="C1",
        user="U1",
        model="m",
        kind="refused",
        at=start,
    )
    await events.note(  # the day after: not counted
        platform="slack",
        workspace="T1",
        channel="C1",
        user="U1",
        model="m",
        kind="refused",
        at=start + timedelta(days=1),
    )
    mine_ok = [r for r in rows if r.workspace == "T1" and r.outcome == "ok"]
    ws_spend = spend(mine_ok)
    c1_tokens = sum(r.prompt_tokens + r.completion_tokens for r in mine_ok if r.channel == "C1")
    budget = Budget(
        MemoryBackend(),
        Policy(
            {
                "workspace": {"spend_month": ws_spend / Decimal("0.9")},  # 90% used
                "channel:C1": {"tokens_day": c1_tokens},  # exactly 100%
            }
        ),
    )
    try:
        d = await DigestBuilder(db, budget).build(
            DigestConfig("slack", "T1", "C9", "09:00", "Europe/Berlin"), day
        )
    finally:
        await budget.aclose()
    assert (d.queued, d.refused, d.fell_back) == (3, 2, 4)
    uses = {b.label: b for b in d.budgets}
    assert uses["channel C1 tokens per day"].used == c1_tokens
    assert uses["channel C1 tokens per day"].share == 1.0
    assert uses["workspace spend per month"].used == ws_spend
    assert round(uses["workspace spend per month"].share, 6) == 0.9
    assert d.month_cap == ws_spend / Decimal("0.9")

    text = to_text(d)
    assert "🛑 channel C1 tokens per day" in text
    assert "⚠️ workspace spend per month" in text
    assert "queued 3 · refused by a cap 2 · answered by a fallback 4" in text
    blocks, fallback = slack_blocks(d)
    assert blocks[0]["type"] == "header" and "2026" in fallback
    assert any("<#C1>" in b.get("text", {}).get("text", "") for b in blocks)
    embed = discord_embed(d, chart=True)
    assert embed["image"]["url"] == "attachment://spend-14-days.png"
    assert embed["color"] == 0xD93025
    assert len(embed["title"]) <= 256 and all(len(f["value"]) <= 1024 for f in embed["fields"])


async def test_week_caps_are_shown_for_the_workspace_s_own_week(db: Database) -> None:
    """A weekly cap in Berlin counts from Monday 00:00 Berlin up to the digest's day, and says
    when it resets: the next Monday, Berlin time."""
    berlin = ZoneInfo("Europe/Berlin")
    rows = make_rows(datetime(2026, 11, 21, tzinfo=berlin).astimezone(UTC), 24 * 6, 400, seed=3)
    await store_rows(db, rows)
    day = date(2026, 11, 25)  # a Wednesday; its week began on Monday the 23rd
    week = [
        r for r in rows if r.workspace == "T1" and date(2026, 11, 23) <= local_day(r, berlin) <= day
    ]
    assert week and len(week) < len([r for r in rows if r.workspace == "T1"])
    budget = Budget(
        MemoryBackend(),
        Policy({"workspace": {"timezone": "Europe/Berlin", "spend_week": Decimal(1000)}}),
    )
    try:
        d = await DigestBuilder(db, budget).build(
            DigestConfig("slack", "T1", "C9", "09:00", "Europe/Berlin"), day
        )
    finally:
        await budget.aclose()
    (use,) = d.budgets
    assert use.label == "workspace spend per week"
    assert use.used == spend([r for r in week if r.outcome == "ok"])
    assert use.window == "Europe/Berlin week 2026-W48"
    assert use.resets_at == datetime(2026, 11, 30, tzinfo=berlin)


async def test_an_empty_day_is_a_digest_too(db: Database) -> None:
    d = await DigestBuilder(db).build(DigestConfig("discord", "G1", "1"), date(2026, 11, 24))
    assert d.cost == 0 and d.requests == 0 and not d.has_chart_data
    assert "Spend $0" in to_text(d)


async def test_grants_made_that_day_are_in_the_digest(db: Database) -> None:
    """Every grant of more budget is shown in the digest of the day it was made: who asked,
    who granted, how much, of what and why; not those of another day or workspace."""
    from bot.store.grants import BudgetRequests

    requests = BudgetRequests(db)
    day = date.today()
    until = datetime.now(UTC) + timedelta(hours=3)
    made = []
    for workspace, amount in (("T1", "0.5"), ("T2", "9")):
        made.append(
            await requests.ask(
                platform="slack",
                workspace=workspace,
                channel="C1",
                user="U1",
                cap_key="ch:slack:T1:C1:spend_day",
                label="this channel's spend per day",
                unit="usd",
                amount=Decimal(amount),
                reason="a customer demo",
                expires_at=until,
            )
        )
    await requests.decide(made[0].id, grant=True, by="UADMIN")
    await requests.decide(made[1].id, grant=True, by="UADMIN")
    budget = Budget(MemoryBackend(), Policy({}))
    try:
        d = await DigestBuilder(db, budget).build(
            DigestConfig("slack", "T1", "C9", "00:00", "UTC"), day
        )
        before = await DigestBuilder(db, budget).build(
            DigestConfig("slack", "T1", "C9", "00:00", "UTC"), day - timedelta(days=1)
        )
    finally:
        await budget.aclose()
    assert [(g.requested_by, g.decided_by, g.amount) for g in d.grants] == [
        ("U1", "UADMIN", Decimal("0.5"))
    ]
    assert before.grants == []
    text = to_text(d)
    assert "Granted on request" in text
    assert "+$0.50 on this channel's spend per day for U1, by UADMIN: a customer demo" in text
    blocks, _ = slack_blocks(d)  # Slack mentions the people
    assert any("for <@U1>, by <@UADMIN>" in b.get("text", {}).get("text", "") for b in blocks)
