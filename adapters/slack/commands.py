"""Slack's slash commands: ``/ask`` answered in a thread under the question, and ``/usage``,
``/budget``, ``/digest`` answered by the chat layer, for the asker only."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import threads
from adapters.slack.config import PLATFORM
from adapters.slack.mrkdwn import to_mrkdwn
from adapters.slack.reply import Replies
from bot import messages
from bot.budget.policy import Who
from bot.chat.answers import Chat
from bot.chat.claims import Kind
from bot.ids import usable_id
from bot.models import ChatRequest, Message
from bot.store.events import Orphan

log = logging.getLogger(__name__)

ASK = Kind(f"{PLATFORM}-cmd:")
"""An ``/ask`` to answer: ``slack-cmd:TRIGGER``."""
Ack = Callable[..., Awaitable[None]]
Respond = Callable[..., Awaitable[Any]]
Payload = dict[str, Any]
Ctx = AsyncBoltContext
_MENTIONED = re.compile(r"&lt;@([UW][A-Z0-9]{2,30})&gt;")
_COMMAND_IDS = ("user_id", "channel_id", "trigger_id")
_CHANNEL = re.compile(r"^<#([A-Za-z0-9]+)(?:\|[^>]*)?>$|^([CGD](?=[A-Z0-9]*\d)[A-Z0-9]{6,})$")
"""``<#C0123|name>`` as Slack sends it with escaping on, or an ID (C/G/D, with digits)."""


class SlackCommands:
    def __init__(self, chat: Chat, replies: Replies, *, admins: frozenset[str]):
        """``admins``: user IDs allowed to change budgets, besides the workspace's admins."""
        self.chat, self.replies, self.admins = chat, replies, admins

    def register(self, app: AsyncApp) -> None:
        app.command("/ask")(self.on_ask)
        app.command("/usage")(self.on_usage)
        app.command("/budget")(self.on_budget)
        app.command("/digest")(self.on_digest)

    async def on_ask(
        self,
        ack: Callable[..., Awaitable[None]],
        command: dict[str, Any],
        context: AsyncBoltContext,
    ) -> None:
        if _incomplete(command):
            await ack()
            return
        text = (command.get("text") or "").strip()
        if not text:
            await ack(text=messages.EMPTY_ASK)
            return
        team = command.get("team_id") or context.team_id or ""
        key = ASK.key(command["trigger_id"])
        payload = {"command": command, "team": team, "bot_user_id": context.bot_user_id}
        claim = await self.chat.claims.at_ack(key, payload)
        await ack(response_type="in_channel", text=_asked(command))
        ask = functools.partial(self.ask, command, team, context.client, context.bot_user_id)
        self.chat.spawn(self.chat.claims.once(key, claim, ask))

    async def resume(self, orphan: Orphan, client: AsyncWebClient) -> None:
        """An ``/ask`` a stopped process claimed and did not answer: the question it posted
        already is reused, and what it posted of the answer reused or removed."""
        p = orphan.payload
        await self.ask(p["command"], p["team"], client, p.get("bot_user_id"), resumed=True)

    async def ask(
        self,
        command: dict[str, Any],
        team: str,
        client: AsyncWebClient,
        bot_user: str | None,
        *,
        resumed: bool = False,
    ) -> None:
        """``/ask``'s answer, in a thread under the question, like a mention's."""
        channel, user = command["channel_id"], command["user_id"]
        request = ChatRequest(
            platform=PLATFORM,
            workspace=team,
            channel=channel,
            user=user,
            messages=(Message("user", (command.get("text") or "").strip()),),
        )
        asked = _asked(command)
        root = await threads.posted(client, channel, asked, bot_user) if resumed else None
        if root is None:
            root = str((await client.chat_postMessage(channel=channel, text=asked))["ts"])
        left = await threads.leftovers(client, channel, root, root, bot_user) if resumed else []
        reply = self.replies.in_thread(client, channel, root, team=team, user=user, leftovers=left)
        await self.chat.answer(request, reply)

    # bolt passes a listener the arguments its parameters name: one listener per command.
    async def on_usage(self, ack: Ack, command: Payload, respond: Respond, context: Ctx) -> None:
        await self.run("usage", ack, command, respond, context)

    async def on_budget(self, ack: Ack, command: Payload, respond: Respond, context: Ctx) -> None:
        await self.run("budget", ack, command, respond, context)

    async def on_digest(self, ack: Ack, command: Payload, respond: Respond, context: Ctx) -> None:
        await self.run("digest", ack, command, respond, context)

    async def run(
        self, name: str, ack: Ack, command: Payload, respond: Respond, context: Ctx
    ) -> None:
        """``/usage``, ``/budget`` and ``/digest``: the answer only the asker sees."""
        await ack()
        if _incomplete(command):
            return
        team = command.get("team_id") or context.team_id or ""
        user = command["user_id"]
        who = Who(PLATFORM, team, command["channel_id"], user)

        async def is_admin() -> bool:
            return await self._is_admin(context.client, user)

        text = await self.chat.command(
            name,
            (command.get("text") or "").split(),
            who,
            is_admin=is_admin,
            channel_id=channel_id,
        )
        # /digest's text is written for mrkdwn already (<#C123> links must not be escaped).
        await respond(response_type="ephemeral", text=text if name == "digest" else _shown(text))

    async def _is_admin(self, client: AsyncWebClient, user: str) -> bool:
        """Checked on every call: someone who stopped being an admin stops at once."""
        if user in self.admins:
            return True
        try:
            info = (await client.users_info(user=user))["user"]
        except SlackApiError as exc:
            log.warning("could not check whether %s is an admin: %s", user, exc)
            return False
        return bool(info.get("is_admin") or info.get("is_owner"))


def _shown(text: str) -> str:
    """A command's text in mrkdwn, its mentions of people kept (quotabot wrote them, from the
    IDs it stores; a model's answer never goes through here)."""
    return _MENTIONED.sub(r"<@\1>", to_mrkdwn(text))


def channel_id(value: str) -> str | None:
    """A channel as a Slack command's text carries it: ``<#C0123|general>``, or its ID."""
    found = _CHANNEL.match(value)
    return (found.group(1) or found.group(2)) if found else None


def _asked(command: dict[str, Any]) -> str:
    """``/ask``'s question as the channel sees it."""
    return f"<@{command['user_id']}> asked: {(command.get('text') or '').strip()}"


def _incomplete(command: dict[str, Any]) -> bool:
    """Whether a slash command lacks an ID it needs, or has one of another shape than Slack
    sends (its ``team_id`` may come from the context instead): logged and ignored."""
    bad = [k for k in _COMMAND_IDS if not usable_id(command.get(k))]
    bad += [k for k in ("team_id",) if k in command and not usable_id(command[k])]
    if bad:
        log.warning("Slack command %r without %s ignored", command.get("command"), bad)
    return bool(bad)
