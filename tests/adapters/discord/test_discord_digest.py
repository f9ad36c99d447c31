"""/digest over signed HTTP interactions, and the digest as the fake Discord REST API receives
it: one message, the digest as an embed, the chart attached (multipart) and shown in it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from adapters.discord import CommandRunner, DiscordREST, InteractionsConfig, InteractionsEndpoint
from adapters.discord.digest import DiscordDigestPoster
from bot.app import App, open_app
from bot.chat.commands import Commands
from bot.config import load_settings
from bot.digest.window import local_today
from bot.messages import format_cost
from bot.store import UsageRow
from bot.store.events import EventLog
from bot.web import WebServer
from fakes.discord_api import (
    APPLICATION_ID,
    BOT_TOKEN,
    CHANNEL,
    GUILD,
    FakeDiscordAPI,
    Signer,
    interaction,
    option,
    subcommand,
)

MANAGE_GUILD = 1 << 5
DIGEST_CHANNEL = "1300000000000000042"
PNG = b"\x89PNG\r\n\x1a\n"
ZONE = ZoneInfo("Europe/Berlin")


@dataclass
class Rig:
    app: App
    api: FakeDiscordAPI
    http: httpx.AsyncClient
    url: str
    signer: Signer
    runner: CommandRunner

    async def digest(self, sub: str, *options: dict[str, Any], **kw: Any) -> str:
        payload = interaction("digest", [subcommand(sub, *options)], **kw)
        response = await self.signer.post(self.http, self.url, payload)
        assert response.json()["type"] == 5
        self.api.acknowledged(payload, response.json())
        await self.runner.drain()
        (answer,) = self.api.thread(payload["token"])
        assert answer.ephemeral
        return answer.content


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    signer = Signer()
    async with (
        FakeDiscordAPI() as api,
        open_app(load_settings()) as app,
        DiscordREST(base_url=api.url) as rest,
        DiscordREST(base_url=api.url, token=BOT_TOKEN) as bot_rest,
    ):
        app.digests.posters["discord"] = DiscordDigestPoster(bot_rest)
        runner = CommandRunner(
            service=app.service,
            commands=Commands(
                usage=app.usage, budget=app.budget, limits=app.limits, digests=app.digest_commands
            ),
            events=EventLog(app.db),
        )
        endpoint = InteractionsEndpoint(
            InteractionsConfig(application_id=APPLICATION_ID, public_key=signer.public_key),
            runner=runner,
            rest=rest,
        )
        server = WebServer(endpoint.routes(), host="127.0.0.1", port=0)
        await server.start()
        async with httpx.AsyncClient(timeout=10) as http:
            yield Rig(app, api, http, f"{server.url}/discord/interactions", signer, runner)
        await server.aclose()
        await endpoint.aclose()


def set_options(channel: str, at: str, tz: str) -> list[dict[str, Any]]:
    return [option("channel", channel, 7), option("time", at), option("timezone", tz)]


async def test_admins_set_the_digest_and_it_is_posted_as_an_embed_with_its_chart(
    rig: Rig,
) -> None:
    nope = await rig.digest("set", *set_options(DIGEST_CHANNEL, "08:00", "Europe/Berlin"))
    assert "Only admins" in nope
    done = await rig.digest(
        "set", *set_options(DIGEST_CHANNEL, "08:00", "Europe/Berlin"), permissions=MANAGE_GUILD
    )
    assert f"<#{DIGEST_CHANNEL}>" in done and "08:00 Europe/Berlin" in done
    assert "08:00 Europe/Berlin" in await rig.digest("show")

    yesterday = local_today(ZONE) - timedelta(days=1)
    midnight = datetime.combine(yesterday, datetime.min.time(), tzinfo=ZONE)
    for n, (offset, cost) in enumerate(
        ((timedelta(minutes=5), "0.0100000001"), (timedelta(hours=-1), "7"))  # 2nd: day before
    ):
        await rig.app.usage.record(
            UsageRow(
                call_id=f"c{n}",
                request_id=f"r{n}",
                created_at=midnight + offset,
                platform="discord",
                workspace=GUILD,
                channel=CHANNEL,
                user="1400000000000000001",
                model="gpt-4o-mini",
                endpoint="chat",
                prompt_tokens=1000,
                completion_tokens=10,
                cost=Decimal(cost),
                outcome="ok",
            )
        )
    assert (await rig.app.digests.send_scheduled("discord", GUILD, yesterday)).startswith("posted")

    (sent,) = rig.api.channels[DIGEST_CHANNEL]
    (embed,) = sent.embeds
    assert yesterday.strftime("%d %b %Y") in embed["title"]
    assert f"Spend {format_cost(Decimal('0.0100000001'))}" in embed["description"]
    assert "▼" in embed["description"]  # down from $7 the day before
    assert embed["image"] == {"url": "attachment://spend-14-days.png"}
    assert list(sent.attachments) == ["spend-14-days.png"]
    assert sent.attachments["spend-14-days.png"].startswith(PNG)
    assert "Spend" in sent.content  # what a phone's notification shows
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert f"<#{CHANNEL}>" in fields["Top channels"]

    # What a take-over after a crash looks for: this day's digest, not another day's.
    poster = rig.app.digests.posters["discord"]
    cfg = await rig.app.digests.settings.get("discord", GUILD)
    assert cfg is not None
    message = await rig.app.digests.compose(cfg, yesterday)
    assert await poster.find_digest(GUILD, DIGEST_CHANNEL, message, "k") == sent.id
    older = await rig.app.digests.compose(cfg, yesterday - timedelta(days=1))
    assert await poster.find_digest(GUILD, DIGEST_CHANNEL, older, "k") is None

    assert "Only admins" in await rig.digest("now")
    posted = await rig.digest("now", permissions=MANAGE_GUILD)
    assert f"Posted today's digest so far in <#{DIGEST_CHANNEL}>" in posted
    assert len(rig.api.channels[DIGEST_CHANNEL]) == 2


async def test_admins_set_a_weekly_report_with_the_report_subcommand(rig: Rig) -> None:
    report = [option("period", "weekly"), option("day", "friday"), option("time", "17:00")]
    await rig.digest(
        "set", *set_options(DIGEST_CHANNEL, "08:00", "Europe/Berlin"), permissions=MANAGE_GUILD
    )
    nope = await rig.digest("report", *report, option("timezone", "Europe/Paris"))
    assert "Only admins" in nope
    bad = await rig.digest(
        "report", *report, option("timezone", "Mars/Base"), permissions=MANAGE_GUILD
    )
    assert "not a time zone" in bad
    done = await rig.digest(
        "report", *report, option("timezone", "Europe/Paris"), permissions=MANAGE_GUILD
    )
    assert "every Friday at 17:00 Europe/Paris" in done
    off = await rig.digest(
        "report", option("period", "weekly"), option("switch", "off"), permissions=MANAGE_GUILD
    )
    assert off == "The weekly report is off."
    assert "The weekly report is off: every Friday at 17:00" in await rig.digest("show")
