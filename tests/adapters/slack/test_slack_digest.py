"""/digest over Slack's real HTTP endpoint (signed slash commands), and the digest as the fake
Slack Web API receives it: Block Kit message, then the chart uploaded into its thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from adapters.slack import SlackAdapter, SlackConfig
from bot.app import App, open_app
from bot.chat.commands import Commands
from bot.config import load_settings
from bot.digest.window import local_today
from bot.messages import format_cost
from bot.store import UsageRow
from bot.store.events import EventLog
from bot.web import WebServer
from fakes import slack_events as ev
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from fakes.slack_state import blocks_text
from fakes.slack_workspace import DEFAULT_CHANNEL, DEFAULT_WORKSPACE

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = DEFAULT_WORKSPACE.team_id
ADMIN = "UADMIN0001"
PNG = b"\x89PNG\r\n\x1a\n"
ZONE = ZoneInfo("America/New_York")


@dataclass
class Rig:
    app: App
    api: FakeSlackAPI
    http: httpx.AsyncClient
    url: str

    async def command(self, text: str, user: str, name: str) -> str:
        form = ev.slash_command(
            "/digest", text, user_id=user, response_url=self.api.response_url(name)
        )
        resp = await ev.post_command(self.http, self.url, form, SECRET)
        assert resp.status_code == 200
        (answer,) = await self.api.wait_for_responses(name)
        assert answer["response_type"] == "ephemeral"
        return str(answer["text"])


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with FakeSlackAPI() as api, open_app(load_settings()) as app:
        adapter = SlackAdapter(
            SlackConfig(
                bot_token=DEFAULT_TOKEN,
                signing_secret=SECRET,
                api_url=api.url,
                admins=frozenset({ADMIN}),
            ),
            service=app.service,
            commands=Commands(
                usage=app.usage,
                budget=app.budget,
                limits=app.limits,
                digests=app.digest_commands,
            ),
            events=EventLog(app.db),
        )
        app.digests.posters["slack"] = adapter
        server = WebServer(adapter.routes(), host="127.0.0.1", port=0)
        await server.start()
        async with httpx.AsyncClient(timeout=10) as http:
            yield Rig(app, api, http, f"{server.url}/slack/events")
        await server.aclose()
        await adapter.aclose()


def usage(n: int, at: datetime, cost: str, channel: str = DEFAULT_CHANNEL) -> UsageRow:
    return UsageRow(
        call_id=f"call-{n}",
        request_id=f"req-{n}",
        created_at=at,
        platform="slack",
        workspace=TEAM,
        channel=channel,
        user="U0QB0TUSER",
        model="gpt-4o" if n % 2 else "gpt-4o-mini",
        endpoint="chat",
        prompt_tokens=100,
        completion_tokens=20,
        cost=Decimal(cost),
        outcome="ok",
    )


async def test_admins_set_the_digest_and_it_is_posted_with_its_chart(rig: Rig) -> None:
    assert "Only admins" in await rig.command("set here 09:00 America/New_York", "U0NOBODY01", "a")
    assert "not a time zone" in await rig.command("set here 09:00 Mars/Base", ADMIN, "b")
    assert "not a time of day" in await rig.command("set here 9h America/New_York", ADMIN, "c")
    unescaped = await rig.command("set #general 09:00 UTC", ADMIN, "c2")
    assert "is not a channel quotabot can post to: pick it with #" in unescaped
    done = await rig.command(f"set <#{DEFAULT_CHANNEL}|general> 07:30 America/New_York", ADMIN, "d")
    assert f"<#{DEFAULT_CHANNEL}>" in done and "07:30 America/New_York" in done
    shown = await rig.command("", "U0NOBODY01", "e")
    assert "The daily digest is on" in shown and "07:30 America/New_York" in shown

    yesterday = local_today(ZONE) - timedelta(days=1)
    start = datetime.combine(yesterday, datetime.min.time(), tzinfo=ZONE)
    rows = [
        usage(1, start + timedelta(minutes=1), "0.1234567891"),
        usage(2, start + timedelta(hours=23, minutes=59), "2.5000000001"),
        usage(3, start - timedelta(minutes=1), "100"),  # the day before, in New York
    ]
    for r in rows:
        await rig.app.usage.record(r)
    outcome = await rig.app.digests.send_scheduled("slack", TEAM, yesterday)
    assert outcome.startswith("posted ")

    (posted,) = rig.api.history(DEFAULT_CHANNEL)
    text = blocks_text(posted.blocks)
    assert posted.blocks is not None and posted.blocks[0]["type"] == "header"
    assert f"Spend {format_cost(Decimal('2.6234567892'))}" in text
    assert "2 requests answered" in text
    assert f"<#{DEFAULT_CHANNEL}>" in text
    assert yesterday.strftime("%d %b %Y") in text
    (upload,) = rig.api.uploads.values()
    assert upload.content is not None and upload.content.startswith(PNG)
    assert upload.completed is not None
    assert upload.completed["channel_id"] == DEFAULT_CHANNEL
    assert upload.completed["thread_ts"] == posted.ts

    # Once per day: the same day again is not posted twice.
    again = await rig.app.digests.send_scheduled("slack", TEAM, yesterday)
    assert again == "sent or being sent by another process"
    assert len(rig.api.history(DEFAULT_CHANNEL)) == 1

    assert "Only admins" in await rig.command("now", "U0NOBODY01", "f")
    assert "Posted today's digest" in await rig.command("now", ADMIN, "g")
    assert len(rig.api.history(DEFAULT_CHANNEL)) == 2
    assert "The daily digest is off" in await rig.command("off", ADMIN, "h")
    assert await rig.app.digests.send_scheduled("slack", TEAM, date(2026, 1, 1)) == "off"


async def test_a_channel_the_bot_cannot_post_in_is_explained(rig: Rig) -> None:
    rig.api.fail("chat.postMessage", error="not_in_channel", status=200)
    await rig.command("set C0OTHER001 09:00 UTC", ADMIN, "a")
    answer = await rig.command("now", ADMIN, "b")
    assert "not_in_channel" in answer and "/invite @quotabot" in answer
    assert "Traceback" not in answer
