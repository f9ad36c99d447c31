"""Answers in Discord: the chat layer's Surface, for a slash command and for a message.

InteractionReply: the deferred response edited (queue notices, "Thinking…", the answer's
                  first piece), the rest as follow-ups until the token expires
MessageReply:     "typing…" meanwhile; a queue notice as a reply, edited into the answer;
                  each further piece a reply to the one before, so the chain continues
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

import discord

from adapters.discord.texts import from_core, warn
from bot import messages
from bot.budget.tickets import QueueInfo
from bot.chat.split import LIMIT, split

log = logging.getLogger(__name__)


class Responder(Protocol):
    """How a command's answer reaches the user: the deferred response, then follow-ups."""

    async def edit(self, text: str) -> None: ...

    async def follow_up(self, text: str) -> None: ...


class InteractionReply:
    streaming = False

    def __init__(self, out: Responder, *, deadline: float, limit: int = LIMIT):
        """``deadline``: loop time after which nothing more can be posted with the token."""
        self.out, self.deadline, self.limit = out, deadline, limit

    async def placeholder(self, text: str) -> None:
        if text != messages.THINKING:  # Discord shows "thinking…" on a deferred response
            await self.out.edit(from_core(text))

    async def queued(self, info: QueueInfo) -> None:
        await self.out.edit(messages.queued_notice(info))

    async def delta(self, text: str) -> None:
        raise NotImplementedError("InteractionReply does not stream")

    async def finish(self, text: str) -> None:
        await deliver(from_core(text), self.out, deadline=self.deadline, limit=self.limit)

    async def fail(self, text: str) -> None:
        try:
            await self.out.edit(warn(text))
        except Exception as exc:
            log.warning("could not tell the user of a failure: %s", exc)


async def deliver(text: str, out: Responder, *, deadline: float, limit: int = LIMIT) -> None:
    """The answer in pieces: the first edits the deferred response, the rest follow. Whatever
    would go out after ``deadline`` is replaced by one note that the answer was cut off."""
    loop = asyncio.get_running_loop()
    first, *rest = split(text, limit)
    await out.edit(first or messages.EMPTY_ANSWER)
    for piece in rest:
        if loop.time() >= deadline:
            await out.follow_up(messages.DISCORD_CUT_OFF_REST)
            return
        await out.follow_up(piece)


class MessageReply:
    streaming = False

    def __init__(self, message: discord.Message, *, limit: int = LIMIT):
        self.message, self.limit = message, limit
        self.notice: discord.Message | None = None
        """The bot's reply so far (a queue notice), edited into the answer."""
        self._typing: Any = None

    async def placeholder(self, text: str) -> None:
        """ "quotabot is typing…" while the answer is made; never fails an answer."""
        if self._typing is not None:
            return
        typing = self.message.channel.typing()
        try:
            await typing.__aenter__()
        except discord.HTTPException as exc:
            log.info("could not show typing in %s: %s", self.message.channel.id, exc)
            return
        self._typing = typing

    async def queued(self, info: QueueInfo) -> None:
        line = messages.queued_notice(info)
        if self.notice is None:
            self.notice = await self.message.reply(line, mention_author=False)
        else:
            await self.notice.edit(content=line)

    async def delta(self, text: str) -> None:
        raise NotImplementedError("MessageReply does not stream")

    async def finish(self, text: str) -> None:
        await self._stop_typing()
        first, *rest = split(from_core(text), self.limit)
        if self.notice is not None:
            await self.notice.edit(content=first or messages.EMPTY_ANSWER)
            last = self.notice
        else:
            last = await self.message.reply(first or messages.EMPTY_ANSWER, mention_author=False)
        for piece in rest:
            last = await last.reply(piece, mention_author=False)

    async def fail(self, text: str) -> None:
        await self.finish(f":warning: {text}")

    async def _stop_typing(self) -> None:
        typing, self._typing = self._typing, None
        if typing is not None:
            with contextlib.suppress(Exception):
                await typing.__aexit__(None, None, None)
