"""The slash commands, shared by both modes: how each is answered.

    HTTP interaction  \\                                   / edit the deferred response
                       -> Invocation -> CommandRunner.run
    gateway (tree)    /                                   \\ follow-ups for the rest

Each mode turns its interaction into an :class:`Invocation` and a :class:`Responder` (how to
edit the deferred response and post follow-ups); everything after that is the chat layer's
(``bot.chat``). What Discord is told about the commands is in ``adapters.discord.spec``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Coroutine
from typing import Any

import httpx

from adapters.discord.invocation import (
    ADMINISTRATOR,
    MANAGE_GUILD,
    PLATFORM,
    Invocation,
    file_hosts,
)
from adapters.discord.reply import InteractionReply, Offering, Responder
from adapters.discord.spec import MAX_CHOICES
from adapters.discord.texts import from_core, warn
from bot import messages, voice
from bot.budget.policy import Who
from bot.chat.answers import Chat, Deadline
from bot.chat.commands import Commands
from bot.chat.home import Home
from bot.chat.split import LIMIT
from bot.downloads import FileHosts
from bot.errors import QuotabotError
from bot.models import ChatRequest, Message
from bot.service import Service
from bot.store.events import EventLog

log = logging.getLogger(__name__)

EMBED_TEXT = 4096
"""Characters of an embed's description, at most."""
EMBED_COLOR = 0x5865F2
_CHANNEL = re.compile(r"^<#(\d{15,22})>$|^(\d{15,22})$")
"""``<#123…>`` as Discord writes a channel, or its snowflake."""


class CommandRunner:
    """Answers deferred commands; shared by the HTTP endpoint and the gateway."""

    def __init__(
        self,
        *,
        service: Service,
        commands: Commands,
        events: EventLog,
        admins: frozenset[str] = frozenset(),
        admin_roles: frozenset[str] = frozenset(),
        piece_limit: int = LIMIT,
        files: FileHosts | None = None,
        streaming: bool = True,
        edit_interval: float = 1.0,
    ):
        self.chat = Chat(PLATFORM, service=service, commands=commands, events=events)
        self.events = events
        self.piece_limit = piece_limit
        """Characters per message: Discord's 2,000 (smaller in tests of long answers)."""
        self.files = files or file_hosts()
        """Where recordings may be downloaded from: Discord's CDN, unless told otherwise."""
        self.admins = admins
        self.admin_roles = admin_roles
        self.streaming = streaming
        """Answers edited in as they are generated (QUOTABOT_DISCORD_STREAMING)."""
        self.edit_interval = edit_interval
        """Seconds between two edits of one message while streaming."""
        self.offers: Offering | None = None
        """Puts "Request more" under a refusal for a cap (set by ``adapters.discord.more``)."""

    @property
    def tasks(self) -> set[Any]:
        return self.chat.tasks

    def spawn(self, work: Coroutine[Any, Any, None]) -> Any:
        return self.chat.spawn(work)

    def track(self) -> None:
        self.chat.track()

    async def drain(self, grace: float | None = None) -> None:
        await self.chat.drain(grace)

    async def first(self, key: str, payload: dict[str, Any] | None = None) -> bool:
        return await self.chat.claims.first(key, payload)

    def may_set_budgets(self, inv: Invocation) -> bool:
        """Checked by the bot on every call, whatever the command's default permissions say."""
        if inv.user in self.admins:
            return True
        if inv.guild is None:
            return False
        if inv.permissions & (MANAGE_GUILD | ADMINISTRATOR):
            return True
        return bool(inv.roles & self.admin_roles)

    async def model_choices(self, who: Who, typed: str) -> list[str]:
        """What /ask's model option offers: the models ``who`` may use, matching ``typed``."""
        return await self.chat.model_choices(who, typed, most=MAX_CHOICES)

    async def run(self, inv: Invocation, out: Responder) -> None:
        """Answer one command whose response is deferred. Never raises: a failure becomes a
        message for the user, and the details go to the log."""
        self.chat.track()
        reply = InteractionReply(
            out,
            deadline=inv.deadline,
            limit=self.piece_limit,
            interval=self.edit_interval,
            streaming=self.streaming,
            more=self.offers,
        )
        try:
            if inv.name == "ask":
                await self._ask(inv, reply)
            elif inv.name == "transcribe":
                await self._transcribe(inv, reply)
            elif inv.name == "usage" and not inv.options.get("dashboard"):
                await out.show_embed(await self._usage(inv))
            elif (words := _words(inv)) is not None:
                name, args = words

                async def is_admin() -> bool:
                    return self.may_set_budgets(inv)

                text = await self.chat.command(
                    name, args, inv.who, is_admin=is_admin, channel_id=channel_id
                )
                await out.edit(from_core(text))
            else:
                await out.edit(warn(messages.DISCORD_UNKNOWN_COMMAND.format(name=inv.name)))
        except Exception as exc:
            if not isinstance(exc, QuotabotError):
                log.exception("answering Discord command %s (%s) failed", inv.name, inv.id)
            await reply.fail(messages.explain(exc))

    async def _usage(self, inv: Invocation) -> dict[str, Any]:
        """/usage as an embed only its asker sees: their own figures first, then the
        channel's and the server's today, and the budgets left here."""

        async def no() -> bool:
            return False

        mine = await Home(self.chat).usage(inv.who)
        here = await self.chat.command("usage", [], inv.who, is_admin=no, channel_id=channel_id)
        return {
            "title": messages.USAGE_TITLE,
            "description": from_core(f"{mine}\n\n{here}")[:EMBED_TEXT],
            "color": EMBED_COLOR,
        }

    async def _ask(self, inv: Invocation, reply: InteractionReply) -> None:
        prompt = str(inv.options.get("prompt", "")).strip()
        if not prompt:
            await reply.out.edit(messages.EMPTY_PROMPT)
            return
        model = inv.options.get("model")
        who = inv.who
        request = ChatRequest(
            platform=PLATFORM,
            workspace=who.workspace,
            channel=who.channel,
            user=who.user,
            thread=inv.id,
            messages=(Message("user", prompt),),
            model=str(model) if model else None,
        )
        image = inv.files.get("image")
        async with httpx.AsyncClient(timeout=60.0) as http:
            pictures = [image.image(http, self.files)] if image is not None else []
            await self.chat.answer(request, reply, deadline=_deadline(inv), pictures=pictures)

    async def _transcribe(self, inv: Invocation, reply: InteractionReply) -> None:
        """/transcribe: the transcript, then the answer to ``question`` when one was asked."""
        recording = inv.files.get("file")
        if recording is None:
            await reply.out.edit(warn(messages.NO_FILE))
            return
        who = inv.who
        where = voice_where(who, inv.id)
        async with httpx.AsyncClient(timeout=60.0) as http:
            await self.chat.transcribe(
                recording.attachment(http, self.files),
                where,
                reply,
                question=str(inv.options.get("question") or "").strip(),
                deadline=_deadline(inv),
            )


def voice_where(who: Who, thread: str | None) -> voice.Where:
    return voice.Where(
        platform=who.platform,
        workspace=who.workspace,
        channel=who.channel,
        user=who.user,
        thread=thread,
    )


def channel_id(value: str) -> str | None:
    """A channel as a Discord option carries it: its snowflake (or ``<#123…>``)."""
    found = _CHANNEL.match(value)
    return (found.group(1) or found.group(2)) if found else None


def _deadline(inv: Invocation) -> Deadline:
    return Deadline(inv.deadline, messages.DISCORD_CUT_OFF)


def _words(inv: Invocation) -> tuple[str, list[str]] | None:
    """``/usage``, ``/budget`` and ``/digest`` as the words the chat layer reads; None for a
    command quotabot does not know."""
    if inv.name == "usage":
        return "usage", ["dashboard"] if inv.options.get("dashboard") else []
    if inv.name == "budget show":
        return "budget", ["show"]
    if inv.name == "budget set":
        return "budget", [
            "set",
            *(str(inv.options.get(k, "")) for k in ("scope", "limit", "value")),
        ]
    if inv.name == "digest report":
        period, o = str(inv.options.get("period", "")), inv.options
        if o.get("switch"):
            return "digest", [period, str(o["switch"])]
        day = [str(o.get("day", ""))] if period == "weekly" else []
        return "digest", ["set", period, *day, str(o.get("time", "")), str(o.get("timezone", ""))]
    if inv.name.startswith("digest "):
        verb = inv.name.split(" ", 1)[1]
        rest = ("channel", "time", "timezone") if verb == "set" else ()
        return "digest", [verb, *(str(inv.options.get(k, "")) for k in rest)]
    return None
