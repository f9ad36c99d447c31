"""Asking for more budget from Discord, end to end over signed HTTP interactions: the "Request
more" button under a refusal, its modal, the request in the admins' channel with Grant / Deny,
and the grant that lets the asker go on. The fake Discord API records what each person sees."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters.discord import CommandRunner, DiscordREST, InteractionsConfig, InteractionsEndpoint
from bot.app import App, open_app
from bot.config import load_settings
from bot.sandbox import SandboxConfig, SandboxServer
from bot.web import WebServer
from fakes.discord_api import (
    APPLICATION_ID,
    BOT_TOKEN,
    CHANNEL,
    GUILD,
    USER,
    FakeDiscordAPI,
    Sent,
    Signer,
    clicked,
    interaction,
    subcommand,
    submitted,
)
from tests.adapters.discord.test_discord_http import Rig, ask

ADMIN_CHANNEL = "1300000000000000050"
MANAGE_GUILD = 1 << 5
ADMIN = "1400000000000000002"
SOMEONE = "1400000000000000003"


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    """The HTTP endpoint as ``quotabot serve`` wires it: the app's commands (with its budget
    requests and digests) and a bot-token client to post in channels. This channel may ask
    once a day; the server's digest channel is where its admins read."""
    signer = Signer()
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox,
        FakeDiscordAPI() as api,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with (
            open_app(load_settings()) as app,
            DiscordREST(base_url=api.url) as rest,
            DiscordREST(base_url=api.url, token=BOT_TOKEN) as bot_rest,
        ):
            await app.limits.set(f"channel:{CHANNEL}", "rpd", "1", by="test")
            await app.budget.reload()
            runner = CommandRunner(
                service=app.service, commands=app.commands(), events=app.events, streaming=False
            )
            endpoint = InteractionsEndpoint(
                InteractionsConfig(application_id=APPLICATION_ID, public_key=signer.public_key),
                runner=runner,
                rest=rest,
                bot_rest=bot_rest,
            )
            server = WebServer(endpoint.routes(), host="127.0.0.1", port=0)
            await server.start()
            async with httpx.AsyncClient(timeout=10) as http:
                url = f"{server.url}/discord/interactions"
                yield Rig(app, api, sandbox, http, url, signer, runner, rest)
            await server.aclose()
            await endpoint.aclose()


async def admins_read_here(app: App) -> None:
    await app.digests.settings.set("discord", GUILD, channel=ADMIN_CHANNEL, by="test")


def button(sent: Sent) -> dict[str, Any]:
    (row,) = sent.components
    (only,) = row["components"]
    return dict(only)


async def refused(rig: Rig, **kw: Any) -> Sent:
    """/ask until refused: the refusal, as its asker sees it."""
    await rig.ask(ask("first", **kw))
    payload = ask("second", **kw)
    await rig.ask(payload)
    (refusal,) = rig.api.thread(payload["token"])
    assert "would go over this channel's requests per day" in refusal.content
    return refusal


async def respond(rig: Rig, payload: dict[str, Any]) -> dict[str, Any]:
    response = await rig.post(payload)
    assert response.status_code == 200
    return dict(response.json())


def modal(custom_id: str, amount: str, reason: str, **kw: Any) -> dict[str, Any]:
    return submitted(custom_id, {"amount": amount, "reason": reason}, **kw)


async def test_a_refused_user_asks_an_admin_grants_and_they_go_on(rig: Rig) -> None:
    await admins_read_here(rig.app)
    refusal = await refused(rig)
    more = button(refusal)
    assert (more["type"], more["style"], more["label"]) == (2, 1, "Request more")
    assert len(more["custom_id"]) <= 100

    # Someone else's click changes nothing; the refused user's opens the form.
    other = await respond(rig, clicked(more["custom_id"], user_id=SOMEONE))
    assert other["type"] == 4 and other["data"]["flags"] == 64
    assert "Only the one this limit refused" in other["data"]["content"]
    form = await respond(rig, clicked(more["custom_id"]))
    assert form["type"] == 9 and form["data"]["title"] == "Ask for more budget"
    inputs = [row["components"][0] for row in form["data"]["components"]]
    assert [(i["custom_id"], i["style"]) for i in inputs] == [("amount", 1), ("reason", 2)]
    assert inputs[0]["label"] == "How much more (requests)"

    # A bad amount is told to the asker alone, and nothing reaches the admins.
    bad = await respond(rig, modal(form["data"]["custom_id"], "lots", "a demo"))
    assert bad["data"]["flags"] == 64 and "not an amount" in bad["data"]["content"]
    assert rig.api.channels.get(ADMIN_CHANNEL) is None
    sent = await respond(rig, modal(form["data"]["custom_id"], "2", "a customer demo at 3pm"))
    assert sent["data"]["flags"] == 64
    assert sent["data"]["content"].startswith("Your request for 2 requests more of this channel's")

    (asked,) = rig.api.channels[ADMIN_CHANNEL]
    assert asked.content.startswith(f"<@{USER}> asks for 2 requests more of this channel's")
    assert asked.content.endswith("because: a customer demo at 3pm")
    row = asked.components[0]["components"]
    assert [(b["label"], b["custom_id"].split(":")[0]) for b in row] == [
        ("Grant", "grant"),
        ("Deny", "deny"),
    ]
    grant = row[0]["custom_id"]
    message = rig.api.stored[asked.id]

    # Not an admin: refused, privately, and nothing is granted.
    nope = await respond(rig, clicked(grant, message, user_id=SOMEONE))
    assert nope["type"] == 4 and "Only admins can grant" in nope["data"]["content"]
    assert await rig.app.requests.in_force() == {}

    done = await respond(rig, clicked(grant, message, user_id=ADMIN, permissions=MANAGE_GUILD))
    assert done["type"] == 7 and done["data"]["components"] == []  # the buttons are gone
    assert f"<@{ADMIN}> granted 2 requests more" in done["data"]["content"]
    assert done["data"]["content"].startswith(asked.content)
    (told,) = rig.api.channels[CHANNEL]  # the asker hears it where they were refused
    assert told.content.startswith(f"<@{ADMIN}> granted 2 requests more of this channel's")
    assert f"to <@{USER}>, until 00:00 UTC" in told.content
    (granted,) = await rig.app.requests.active("discord", GUILD)
    assert (granted.requested_by, granted.decided_by, granted.status) == (USER, ADMIN, "granted")

    again = await respond(rig, clicked(grant, message, user_id=ADMIN, permissions=MANAGE_GUILD))
    assert again["type"] == 4 and f"already granted by {ADMIN}" in again["data"]["content"]

    for n in range(2):  # 1 + 2 granted
        (answer,) = await rig.ask(ask(f"after {n}"))
        assert answer.startswith("Sandbox answer"), answer
    assert "would go over" in (await rig.ask(ask("one too many")))[0]
    (shown,) = await rig.ask(interaction("budget", [subcommand("show")]))
    assert f"+2 requests on this channel's requests per day for <@{USER}>" in shown
    assert f"granted by <@{ADMIN}>" in shown


async def test_a_denied_request_tells_the_asker_and_grants_nothing(rig: Rig) -> None:
    await admins_read_here(rig.app)
    more = button(await refused(rig))["custom_id"]
    await respond(rig, modal(more, "5", "please"))
    (asked,) = rig.api.channels[ADMIN_CHANNEL]
    deny = asked.components[0]["components"][1]["custom_id"]
    done = await respond(
        rig, clicked(deny, rig.api.stored[asked.id], user_id=ADMIN, permissions=MANAGE_GUILD)
    )
    assert done["type"] == 7 and f"<@{ADMIN}> did not grant <@{USER}>" in done["data"]["content"]
    (told,) = rig.api.channels[CHANNEL]
    assert "did not grant" in told.content
    assert await rig.app.requests.in_force() == {}
    assert "would go over" in (await rig.ask(ask("third")))[0]


async def test_with_no_admin_channel_the_asker_is_told_so(rig: Rig) -> None:
    more = button(await refused(rig))["custom_id"]
    said = await respond(rig, modal(more, "2", "a demo"))
    assert said["data"]["flags"] == 64 and "No admin can be reached" in said["data"]["content"]
    assert rig.api.channels == {}
    assert await rig.app.requests.active("discord", GUILD) == []


async def test_an_answer_carries_no_button(rig: Rig) -> None:
    payload = ask("first")
    await rig.ask(payload)
    (answer,) = rig.api.thread(payload["token"])
    assert answer.components == []


async def test_a_broken_or_foreign_button_changes_nothing(rig: Rig) -> None:
    broken = await respond(rig, clicked("grant:not-a-number", user_id=ADMIN))
    assert broken["data"]["flags"] == 64 and "could not read" in broken["data"]["content"]
    foreign = await respond(rig, clicked("poll:42"))
    assert "does not handle" in foreign["data"]["content"]
    gone = await respond(rig, clicked("more:999999:1767225600"))
    assert "This limit has reset since" in gone["data"]["content"]
    # An old button whose offer lapsed, its id given again (SQLite) to a new offer: not that one.
    where = {"platform": "discord", "workspace": GUILD, "channel": CHANNEL, "user": USER}
    what = {"cap_key": f"ch:discord:{GUILD}:{CHANNEL}:rpd", "label": "x", "unit": "requests"}
    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    old = await rig.app.requests.offer(**where, **what, expires_at=lapsed)
    await rig.app.requests.offer(**where, **what, expires_at=lapsed + timedelta(days=1))
    stale = await respond(rig, clicked(f"more:{old}:{int(lapsed.timestamp())}"))
    assert "This limit has reset since" in stale["data"]["content"]
    assert rig.api.calls == [] and await rig.app.requests.active("discord", GUILD) == []
