"""Weekly and monthly reports beside the daily digest: what they cover (the last whole week
from Monday, or month, in the workspace's zone) and compare with (the one before), posted once
through the real Slack adapter to the fake Slack Web API, scheduled by the digest scheduler,
and set up with ``/digest``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from bot.app import App, open_app
from bot.chat.digest import DigestCommands
from bot.digest.window import previous_period
from bot.scheduler import DigestScheduler, scheduled_period
from bot.store import UsageRow
from bot.store.digests import ReportConfig
from fakes.slack_api import FakeSlackAPI
from tests.bot.digest.test_scheduler import CHANNEL, TEAM, settings_for, slack, wait_until

TZ = "Europe/Paris"


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        yield fake


async def spend(app: App, day: date, cost: str, n: int) -> None:
    """A call at local noon of ``day`` in Paris."""
    noon = datetime.combine(day, datetime.min.time()).replace(hour=12)
    at = noon.replace(tzinfo=ReportConfig("slack", TEAM, "week", tz=TZ).zone)
    await app.usage.record(
        UsageRow(
            call_id=f"call-{day}-{n}",
            request_id=f"r-{n}",
            created_at=at,
            platform="slack",
            workspace=TEAM,
            channel="C1",
            user="U1",
            model="gpt-4o",
            endpoint="chat",
            prompt_tokens=10,
            completion_tokens=5,
            cost=Decimal(cost),
            outcome="ok",
        )
    )


async def admin() -> bool:
    return True


async def digest(app: App, *words: str) -> str:
    commands = DigestCommands(app.digests)
    return await commands.handle(
        list(words),
        platform="slack",
        workspace=TEAM,
        channel=CHANNEL,
        user="UADMIN",
        is_admin=admin,
        channel_id=lambda v: v,
    )


async def test_a_weekly_report_covers_last_week_posted_once(
    db_url: str, api: FakeSlackAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_app(settings_for(db_url, monkeypatch), auto_migrate=True) as app:
        adapter = slack(app, api.url)
        assert "first" in await digest(app, "set", "weekly", "monday", "09:00", TZ)
        await digest(app, "set", CHANNEL, "09:00", TZ)
        said = await digest(app, "set", "weekly", "mon", "09:00", TZ)
        assert said.startswith("Done: the weekly report goes out every Monday at 09:00")
        report = await app.digests.reports.get("slack", TEAM, "week")  # type: ignore[union-attr]
        assert report is not None
        first = scheduled_period(report, datetime.now(UTC))
        assert first.weekday() == 0 and first < datetime.now(UTC).date()
        for n, (offset, cost) in enumerate([(0, "1"), (3, "1"), (6, "1"), (-1, "2"), (7, "5")]):
            await spend(app, first + timedelta(days=offset), cost, n)
        await app.usage.aclose()
        app.usage.start()

        outcome = await app.digests.send_scheduled("slack", TEAM, first, "week")
        again = await app.digests.send_scheduled("slack", TEAM, first, "week")
        await adapter.aclose()
    assert outcome.startswith("posted") and again.startswith("sent or being sent")
    (posted,) = api.history(CHANNEL)
    text = posted.text + str(posted.blocks)
    last = first + timedelta(days=6)
    assert f"weekly report: {first:%a %d %b} to {last:%a %d %b %Y}" in text
    assert "Spend $3.00" in text  # Monday to Sunday: not the Sunday before, not this week
    assert "vs the week before: ▲ 50% ($2.00" in text


async def test_a_monthly_report_covers_the_month_before(
    db_url: str, api: FakeSlackAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_app(settings_for(db_url, monkeypatch), auto_migrate=True) as app:
        adapter = slack(app, api.url)
        await digest(app, "set", CHANNEL, "09:00", TZ)
        said = await digest(app, "set", "monthly", "08:30", TZ)
        assert "on the 1st of every month at 08:30 Europe/Paris" in said
        first = previous_period(datetime.now(UTC).date(), "month")
        await spend(app, first, "4", 1)
        await spend(app, first + timedelta(days=20), "4", 2)
        await app.usage.aclose()
        app.usage.start()
        await app.digests.send_scheduled("slack", TEAM, first, "month")
        shown = await digest(app, "show")
        assert "The monthly report is on: on the 1st of every month" in shown
        assert (await digest(app, "monthly", "off")) == "The monthly report is off."
        assert await app.digests.send_scheduled("slack", TEAM, first, "week") == "off"
        await adapter.aclose()
    (posted,) = api.history(CHANNEL)
    assert f"monthly report: {first:%B %Y}" in posted.text + str(posted.blocks)
    assert "Spend $8.00" in posted.text + str(posted.blocks)


async def test_the_scheduler_fires_a_weekly_report_once(
    db_url: str, api: FakeSlackAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_app(settings_for(db_url, monkeypatch), auto_migrate=True) as app:
        adapter = slack(app, api.url)
        await digest(app, "set", CHANNEL, "09:00", TZ)
        await digest(app, "set", "weekly", "friday", "18:00", TZ)
        sched = DigestScheduler(app.digests, database_url=app.db.url, sweep_every=0)
        await sched.start(paused=True)
        job = sched.scheduler.get_job(f"report:week:slack:{TEAM}")  # type: ignore[union-attr]
        assert job is not None
        due = job.next_run_time.astimezone(ReportConfig("slack", TEAM, "week", tz=TZ).zone)
        assert (due.weekday(), due.hour, due.minute) == (4, 18, 0)
        job.modify(next_run_time=datetime.now(UTC) - timedelta(minutes=1))
        sched.resume()
        await wait_until(lambda: sched.runs)
        await asyncio.sleep(0.3)
        await sched.aclose()
        await adapter.aclose()
    ((jid, first, outcome),) = sched.runs
    assert jid == f"report:week:slack:{TEAM}" and outcome.startswith("posted")
    assert first.weekday() == 0  # the last whole week, from Monday
    assert len(api.history(CHANNEL)) == 1


def test_what_a_run_reports() -> None:
    week = ReportConfig("slack", TEAM, "week", weekday=0, at="09:00", tz=TZ)
    monday_morning = datetime(2026, 12, 7, 8, 5, tzinfo=UTC)  # 09:05 in Paris
    assert scheduled_period(week, monday_morning) == date(2026, 11, 30)
    month = ReportConfig("slack", TEAM, "month", at="09:00", tz=TZ)
    assert scheduled_period(month, datetime(2026, 12, 1, 8, 30, tzinfo=UTC)) == date(2026, 11, 1)
    assert scheduled_period(month, datetime(2026, 1, 1, 8, 30, tzinfo=UTC)) == date(2025, 12, 1)
