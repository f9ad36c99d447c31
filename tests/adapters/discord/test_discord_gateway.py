"""Gateway mode without a gateway: discord.py's own client, logged in against the fake Discord
REST API (through ``DISCORD_API_URL``), is fed raw MESSAGE_CREATE and INTERACTION_CREATE
payloads through its own parsers, the way its websocket would. Everything after that is real:
discord.py builds its Message and Interaction objects, the CommandTree dispatches, replies and
interaction responses go over HTTP to the fake. Not covered: the websocket itself (identify,
heartbeats, resume), which is discord.py's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from sqlalchemy import text

from adapters.discord import COMMANDS, CommandRunner, DiscordGateway, GatewayConfig
from adapters.discord.gateway import intents
from adapters.discord.invocation import file_hosts
from bot import messages
from bot.app import App, open_app
from bot.chat.commands import Commands
from bot.config import load_settings
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.events import EventLog
from bot.takeover import Takeover
from fakes.discord_api import (
    APPLICATION_ID,
    BOT_ID,
    BOT_TOKEN,
    CHANNEL,
    DM_CHANNEL,
    GUILD,
    USER,
    FakeDiscordAPI,
    interaction,
    message,
    option,
    subcommand,
    user,
)

BOT = user(BOT_ID, name="quotabot", bot=True)
MENTION = f"<@{BOT_ID}>"


@dataclass
class Rig:
    app: App
    api: FakeDiscordAPI
    sandbox: SandboxServer
    client: DiscordGateway

    async def event(self, kind: str, payload: dict[str, Any]) -> None:
        """Hand discord.py a gateway event, then wait until it has been answered."""
        parse = getattr(self.client._connection, f"parse_{kind}")
        parse(payload)
        await asyncio.sleep(0)
        for _ in range(3):  # an event's task may start further work before it ends
            pending = [
                t
                for t in asyncio.all_tasks()
                if t.get_name().startswith(("discord.py: on_", "CommandTree-invoker"))
            ]
            await asyncio.gather(*pending, *self.client.runner.tasks)

    async def message(self, payload: dict[str, Any]) -> list[str]:
        """Post ``payload`` as a MESSAGE_CREATE; what the bot said in its channel since."""
        before = len(self.api.channels.get(payload["channel_id"], []))
        self.api.seed(payload)
        await self.event("message_create", payload)
        return [m.content for m in self.api.channels.get(payload["channel_id"], [])[before:]]


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)  # restored after
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox,
        FakeDiscordAPI() as api,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with open_app(load_settings()) as app:
            runner = CommandRunner(
                service=app.service,
                commands=Commands(usage=app.usage, budget=app.budget, limits=app.limits),
                events=EventLog(app.db),
                files=file_hosts(api.url),  # the fake serves attachments, as Discord's CDN
            )
            client = DiscordGateway(
                GatewayConfig(token=BOT_TOKEN, api_url=api.url), runner=runner, service=app.service
            )
            try:
                await client.login(BOT_TOKEN)  # GET /users/@me, /oauth2/applications/@me
                yield Rig(app, api, sandbox, client)
            finally:
                await client.aclose()


def _shape(command: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "type", "description", "required", "choices", "autocomplete")
    out = {k: command[k] for k in keep if k in command and command[k] not in (None, False)}
    if command.get("options"):
        out["options"] = [_shape(o) for o in command["options"]]
    return out


async def test_the_command_tree_offers_what_sync_commands_registers(rig: Rig) -> None:
    tree = [_shape(c.to_dict(rig.client.tree)) for c in rig.client.tree.get_commands()]
    assert tree == [_shape(c) for c in COMMANDS]


def test_only_the_intents_needed() -> None:
    wanted = intents()
    assert wanted.guilds and wanted.guild_messages and wanted.dm_messages
    assert not (wanted.message_content or wanted.members or wanted.presences)
    assert wanted.value == discord.Intents(guilds=True, guild_messages=True, dm_messages=True).value
    assert intents(message_content=True).message_content  # only when configured


async def test_discord_py_talks_to_discord_api_url(rig: Rig) -> None:
    assert rig.api.url == discord.http.Route.BASE
    assert [c.path for c in rig.api.calls] == ["/users/@me", "/oauth2/applications/@me"]
    assert rig.client.bot_id == BOT_ID


async def test_a_mention_is_answered_as_a_reply(rig: Rig) -> None:
    asked = message(f"{MENTION} what is jitter?", mentions=[BOT])
    (said,) = await rig.message(asked)
    assert said.startswith('Sandbox answer: you said "what is jitter"')  # mention stripped
    (reply,) = rig.api.channels[CHANNEL]
    assert reply.reply_to == asked["id"]
    send = next(c for c in rig.api.calls if c.path == f"/channels/{CHANNEL}/messages")
    assert send.body["allowed_mentions"]["parse"] == []  # the model never pings anyone
    assert rig.api.typing == [CHANNEL]  # "quotabot is typing…" meanwhile
    (row,) = await rig.app.usage.rows()
    assert (row.platform, row.workspace, row.channel, row.user, row.thread) == (
        "discord",
        GUILD,
        CHANNEL,
        USER,
        asked["id"],
    )


async def test_bots_itself_and_unaddressed_messages_are_ignored(rig: Rig) -> None:
    assert await rig.message(message(f"{MENTION} hi me", author=BOT, mentions=[BOT])) == []
    other_bot = user("1600000000000000001", name="otherbot", bot=True)
    assert await rig.message(message(f"{MENTION} hi", author=other_bot, mentions=[BOT])) == []
    assert await rig.message(message("people talking among themselves")) == []
    joined = {**message(f"{MENTION} joined"), "type": 7, "mentions": [BOT]}  # a system message
    assert await rig.message(joined) == []
    assert rig.sandbox.stats.total.requests == 0


async def test_a_direct_message_needs_no_mention(rig: Rig) -> None:
    (said,) = await rig.message(message("hello in private", channel=DM_CHANNEL, guild=None))
    assert "hello in private" in said
    (row,) = await rig.app.usage.rows()
    assert (row.workspace, row.channel) == ("@me", DM_CHANNEL)


async def test_replying_to_the_bot_continues_the_conversation(rig: Rig) -> None:
    first = message(f"{MENTION} name a colour", mentions=[BOT])
    await rig.message(first)
    bot_reply = rig.api.stored[rig.api.channels[CHANNEL][0].id]
    # A reply without the ping: addressed because it replies to the bot's message.
    follow = message("and another one?", reply_to=bot_reply)
    (second,) = await rig.message(follow)
    assert second.startswith('Sandbox answer: you said "and another one"')
    one, two = await rig.app.usage.rows()
    assert two.prompt_tokens > one.prompt_tokens + 20  # the chain went to the model
    assert two.thread == first["id"]  # the conversation is named by its first message


async def test_a_reply_without_text_is_not_answered(rig: Rig) -> None:
    # Without the Message Content intent, a reply to the bot with its ping off has no text.
    await rig.message(message(f"{MENTION} hi", mentions=[BOT]))
    bot_reply = rig.api.stored[rig.api.channels[CHANNEL][0].id]
    assert await rig.message(message("", reply_to=bot_reply)) == []
    assert rig.sandbox.stats.total.requests == 1
    (nudge,) = await rig.message(message(MENTION, mentions=[BOT]))  # a ping and nothing else
    assert nudge.startswith("Ask me something")


async def test_a_chain_older_than_the_cache_is_read_over_rest(rig: Rig) -> None:
    # Asked and answered before quotabot restarted: discord.py has neither message cached.
    question = rig.api.seed(message(f"{MENTION} name a colour", mentions=[BOT]))
    answer = rig.api.seed(message("Teal.", author=BOT, reply_to=question))
    await rig.message(message("why that one?", channel=DM_CHANNEL, guild=None))  # for scale
    (said,) = await rig.message(message("why that one?", reply_to=answer, mentions=[BOT]))
    assert "why that one" in said
    fetched = [c.path for c in rig.api.calls if c.method == "GET" and "/messages/" in c.path]
    assert fetched == [f"/channels/{CHANNEL}/messages/{question['id']}"]  # up the chain
    alone, chained = await rig.app.usage.rows()
    assert chained.prompt_tokens > alone.prompt_tokens + 8
    assert chained.thread == question["id"]


async def test_a_replayed_message_is_answered_once(rig: Rig) -> None:
    asked = message(f"{MENTION} once only", mentions=[BOT])
    assert len(await rig.message(asked)) == 1
    assert await rig.message(asked) == []  # a resume replays it: already answered
    assert rig.sandbox.stats.total.requests == 1


async def test_a_disabled_channel_is_not_answered(rig: Rig) -> None:
    await rig.app.channels.set("discord", GUILD, CHANNEL, enabled=False)
    assert await rig.message(message(f"{MENTION} hello?", mentions=[BOT])) == []
    assert rig.sandbox.stats.total.requests == 0


async def test_a_channel_whose_settings_cannot_be_read_gets_the_error_not_silence(
    rig: Rig,
) -> None:
    async with rig.app.db.session() as s, s.begin():
        await s.execute(text("DROP TABLE channel_settings"))
    (said,) = await rig.message(message(f"{MENTION} anyone there?", mentions=[BOT]))
    assert messages.INTERNAL in said
    assert rig.sandbox.stats.total.requests == 0


async def test_slash_ask_through_the_command_tree(rig: Rig) -> None:
    payload = interaction("ask", [option("prompt", "why queues?"), option("private", True, 5)])
    await rig.event("interaction_create", payload)
    deferred = rig.api.deferred(payload["token"])
    assert deferred == {"type": 5, "data": {"flags": 64}}  # thinking, privately
    (answer,) = rig.api.thread(payload["token"])
    assert answer.content.startswith('Sandbox answer: you said "why queues"')
    assert answer.ephemeral

    await rig.event("interaction_create", payload)  # replayed: no second answer
    callbacks = [c for c in rig.api.calls if c.path.endswith("/callback")]
    assert len(callbacks) == 1
    assert rig.sandbox.stats.total.requests == 1
    (row,) = await rig.app.usage.rows()
    assert (row.platform, row.workspace, row.user) == ("discord", GUILD, USER)


async def test_the_model_option_autocompletes_through_the_command_tree(rig: Rig) -> None:
    await rig.app.limits.set(f"channel:{CHANNEL}", "models", "gpt-4o-mini,gpt-5-mini", by="t")
    await rig.app.budget.reload()
    payload = interaction(
        "ask", [option("prompt", "x"), {**option("model", "mini"), "focused": True}]
    )
    payload["type"] = 4  # APPLICATION_COMMAND_AUTOCOMPLETE
    await rig.event("interaction_create", payload)
    result = rig.api.deferred(payload["token"])
    assert result == {
        "type": 8,
        "data": {
            "choices": [
                {"name": "gpt-4o-mini", "value": "gpt-4o-mini"},
                {"name": "gpt-5-mini", "value": "gpt-5-mini"},
            ]
        },
    }


async def test_slash_budget_set_checks_permissions(rig: Rig) -> None:
    options = [option("scope", "channel"), option("limit", "rpm"), option("value", "4")]
    denied = interaction("budget", [subcommand("set", *options)])
    await rig.event("interaction_create", denied)
    (said,) = rig.api.thread(denied["token"])
    assert "Manage Server" in said.content and said.ephemeral
    allowed = interaction("budget", [subcommand("set", *options)], permissions=1 << 5)
    await rig.event("interaction_create", allowed)
    (done,) = rig.api.thread(allowed["token"])
    assert f"channel:{CHANNEL}" in done.content
    assert await rig.app.limits.all() == {f"channel:{CHANNEL}": {"rpm": 4}}
    assert APPLICATION_ID in rig.api.calls[-1].path  # edited through the app's webhook


async def test_a_message_left_by_a_process_that_died_is_answered_after_the_restart(
    rig: Rig,
) -> None:
    """The process holding the gateway took a mention on and was killed before answering;
    Discord sends the new session nothing it missed. Once the claim's lease has run out, the
    new process reads the message again over REST and answers it, as a reply, once."""
    asked = message(f"{MENTION} still there?", mentions=[BOT])
    rig.api.seed(asked)
    key = f"discord:message:{asked['id']}"
    where = {"channel": asked["channel_id"], "message": asked["id"], "guild": GUILD}
    assert await EventLog(rig.app.db, lease=0.1).first(key, where)
    await asyncio.sleep(0.2)
    takeover = Takeover(rig.client.runner.events, wait=0)
    takeover.on("discord:message:", rig.client.resume)
    assert [o.key for o in await takeover.tick()] == [key]
    await asyncio.gather(*takeover.tasks)
    (reply,) = rig.api.channels[CHANNEL]
    assert reply.reply_to == asked["id"]
    assert reply.content.startswith('Sandbox answer: you said "still there"')
    (row,) = await rig.app.usage.rows()
    assert (row.workspace, row.channel) == (GUILD, CHANNEL)
    assert await rig.message(asked) == []  # and Discord replaying it gets no second answer
