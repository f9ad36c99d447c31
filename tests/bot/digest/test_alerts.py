"""Budget alerts: 80% and 100%, once per cap and window, from two replicas at once, posted to
the workspace's digest channel on the fake Slack Web API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.app import open_app
from bot.config import load_settings
from bot.digest.alerts import BudgetAlerts
from bot.digest.send import Digests
from bot.store import UsageRow
from bot.store.digests import Claims
from fakes.slack_api import FakeSlackAPI
from tests.bot.digest.test_scheduler import slack

TEAM, CHANNEL = "T0QB0TTEST", "C0ALERTS01"


def spend(n: int, cost: str, channel: str = "C1") -> UsageRow:
    return UsageRow(
        call_id=f"a{n}",
        request_id=f"r{n}",
        created_at=datetime.now(UTC),
        platform="slack",
        workspace=TEAM,
        channel=channel,
        user="U1",
        model="gpt-4o",
        endpoint="chat",
        prompt_tokens=10,
        completion_tokens=10,
        cost=Decimal(cost),
        outcome="ok",
    )


async def test_each_threshold_is_announced_once_across_replicas(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTABOT_DATABASE_URL", db_url)
    async with FakeSlackAPI() as api, open_app(load_settings(), auto_migrate=True) as app:
        adapter = slack(app, api.url)
        await app.digests.settings.set("slack", TEAM, channel=CHANNEL, at="09:00", tz="UTC")
        await app.limits.set(f"workspace:{TEAM}", "spend_day", "10", by="test")
        await app.limits.set("channel:C2", "spend_month", "1", by="test")
        replicas = [
            BudgetAlerts(
                Digests(
                    builder=app.digests.builder,
                    settings=app.digests.settings,
                    claims=Claims(app.db, owner=name),
                    posters=app.digests.posters,
                )
            )
            for name in ("a", "b")
        ]

        async def check_both() -> list[str]:
            found = await asyncio.gather(*(r.check() for r in replicas))
            return [key for keys in found for key in keys]

        await app.usage.record(spend(1, "7.9999999999"))
        assert await check_both() == []  # 79.99...%: nothing yet
        await app.usage.record(spend(2, "0.0000000001"))  # exactly 80%
        (first,) = await check_both()
        assert first.endswith(":80")
        assert await check_both() == []
        await app.usage.record(spend(3, "2.5", channel="C2"))  # C2 jumps past its cap
        sent = sorted(await check_both())
        assert [k.rsplit(":", 1)[1] for k in sent] == ["100", "100"]  # the workspace and C2
        assert await check_both() == []
        await adapter.aclose()
    texts = api.messages(CHANNEL)
    assert len(texts) == 3
    assert "workspace spend per day has passed 80%" in texts[0]
    assert sum("Budget reached" in t for t in texts) == 2
    assert any("channel C2 spend per month" in t and "250%" in t for t in texts)
    assert not any("channel C2" in t and "passed 80%" in t for t in texts)  # superseded
