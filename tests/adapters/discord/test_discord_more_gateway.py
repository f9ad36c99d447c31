"""Asking for more budget in gateway mode: the "Request more" button under a refused mention
and a refused /ask, and the clicks and the form as INTERACTION_CREATE events fed to
discord.py, answered at the interaction callback over REST, as over HTTP interactions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest

from adapters.discord import CommandRunner, DiscordGateway, DiscordREST, GatewayConfig
from bot.app import open_app
from bot.config import load_settings
from bot.sandbox import SandboxConfig, SandboxServer
from fakes.discord_api import (
    BOT_ID,
    BOT_TOKEN,
    CHANNEL,
    GUILD,
    FakeDiscordAPI,
    Sent,
    clicked,
    interaction,
    message,
    option,
    submitted,
    user,
)
from tests.adapters.discord.test_discord_gateway import Rig
from tests.adapters.discord.test_discord_more import ADMIN, ADMIN_CHANNEL, MANAGE_GUILD, SOMEONE

BOT = user(BOT_ID, name="quotabot", bot=True)


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    """The gateway as ``quotabot serve`` wires it, with the bot-token REST client; this
    channel may ask once a day, and the server's admins read its digest channel."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox,
        FakeDiscordAPI() as api,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with (
            open_app(load_settings()) as app,
            DiscordREST(base_url=api.url, token=BOT_TOKEN) as rest,
        ):
            await app.limits.set(f"channel:{CHANNEL}", "rpd", "1", by="test")
            await app.budget.reload()
            await app.digests.settings.set("discord", GUILD, channel=ADMIN_CHANNEL, by="test")
            runner = CommandRunner(
                service=app.service, commands=app.commands(), events=app.events, streaming=False
            )
            client = DiscordGateway(
                GatewayConfig(token=BOT_TOKEN, api_url=api.url),
                runner=runner,
                service=app.service,
                rest=rest,
            )
            try:
                await client.login(BOT_TOKEN)
                yield Rig(app, api, sandbox, client)
            finally:
                await client.aclose()


def only_button(sent: Sent) -> dict[str, Any]:
    (row,) = sent.components
    (button,) = row["components"]
    return dict(button)


async def click(rig: Rig, payload: dict[str, Any]) -> dict[str, Any]:
    """An INTERACTION_CREATE over the gateway; how quotabot answered it (the callback)."""
    await rig.event("interaction_create", payload)
    answered = rig.api.deferred(payload["token"])
    assert answered is not None, "no interaction callback"
    return answered


async def test_a_refused_mention_carries_request_more_and_an_admin_grants_over_the_gateway(
    rig: Rig,
) -> None:
    await rig.message(message(f"<@{BOT_ID}> first", mentions=[BOT]))
    (refusal,) = await rig.message(message(f"<@{BOT_ID}> second", mentions=[BOT]))
    assert "would go over this channel's requests per day" in refusal
    sent = rig.api.channels[CHANNEL][-1]
    more = only_button(sent)
    assert more["label"] == "Request more"

    other = await click(rig, clicked(more["custom_id"], user_id=SOMEONE))
    assert other["type"] == 4 and "Only the one this limit refused" in other["data"]["content"]
    form = await click(rig, clicked(more["custom_id"]))
    assert form["type"] == 9
    values = {"amount": "2", "reason": "a demo at 3pm"}
    done = await click(rig, submitted(form["data"]["custom_id"], values))
    assert done["data"]["content"].startswith("Your request for 2 requests")

    (asked,) = rig.api.channels[ADMIN_CHANNEL]
    grant = asked.components[0]["components"][0]["custom_id"]
    message_json = rig.api.stored[asked.id]
    nope = await click(rig, clicked(grant, message_json, user_id=SOMEONE))
    assert "Only admins can grant" in nope["data"]["content"]
    granted = await click(
        rig, clicked(grant, message_json, user_id=ADMIN, permissions=MANAGE_GUILD)
    )
    assert granted["type"] == 7 and granted["data"]["components"] == []
    assert len(await rig.app.requests.in_force()) == 1
    (answer,) = await rig.message(message(f"<@{BOT_ID}> third", mentions=[BOT]))
    assert answer.startswith("Sandbox answer")


async def test_a_refused_slash_ask_over_the_gateway_carries_the_button(rig: Rig) -> None:
    for n in range(2):
        payload = interaction("ask", [option("prompt", f"q{n}")])
        await rig.event("interaction_create", payload)
    (refusal,) = rig.api.thread(payload["token"])
    assert "would go over" in refusal.content
    assert only_button(refusal)["custom_id"].startswith("more:")


async def test_other_components_are_left_to_others(rig: Rig) -> None:
    payload = clicked("someone-elses:button")
    await rig.event("interaction_create", payload)
    assert rig.api.deferred(payload["token"]) is None  # not quotabot's: not answered
