"""Answers in Discord: the chat layer's Surface, for a slash command and for a message.

InteractionReply: the deferred response edited (queue notices, "Thinking…", the answer's
                  first piece), the rest as follow-ups until the token expires
MessageReply:     "typing…" meanwhile; a queue notice as a reply, edited into the answer;
                  each further piece a reply to the one before, so the chain continues

Both stream (``adapters.discord.live``): the answer so far is edited into those messages as
it is generated, at most once per ``interval`` seconds each, then the final text is written.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import discord

from adapters.discord.live import Live
from adapters.discord.rest import DiscordREST
from adapters.discord.texts import from_core, warn
from bot import messages
from bot.budget.tickets import QueueInfo
from bot.chat.split import LIMIT, split
from bot.chat.surface import MoreBudget

log = logging.getLogger(__name__)


class Responder(Protocol):
    """How a command's answer reaches the user: the deferred response, then follow-ups."""

    async def edit(self, text: str, message: str | None = None) -> None:
        """Edit the deferred response, or the follow-up ``message`` (its id)."""

    async def follow_up(self, text: str) -> str:
        """Post a follow-up; its id."""

    async def show_embed(self, embed: dict[str, Any]) -> None:
        """The deferred response made one embed (Discord's JSON shape), with no text."""


Offering = Callable[[MoreBudget], Awaitable[list[dict[str, Any]]]]
"""Keeps an offer of more budget; the components (a "Request more" button) that carry it."""


@runtime_checkable
class ShowsButtons(Protocol):
    """A responder that can put message components on the deferred response (HTTP mode)."""

    async def show_buttons(self, components: list[dict[str, Any]]) -> None: ...


class InteractionReply:
    def __init__(
        self,
        out: Responder,
        *,
        deadline: float,
        limit: int = LIMIT,
        interval: float = 1.0,
        streaming: bool = True,
        more: Offering | None = None,
    ):
        """``deadline``: loop time after which nothing more can be posted with the token.
        ``interval``: seconds between two edits of one message while the answer streams.
        ``more``: how a refusal for a cap gets its "Request more" button (None: it does not)."""
        self.out, self.deadline, self.limit = out, deadline, limit
        self.more = more
        self.streaming = streaming
        self.follow_ups: list[str] = []
        """The ids of the follow-ups posted so far, in order."""
        self.live = Live(self, interval=interval, limit=limit, until=deadline)

    async def placeholder(self, text: str) -> None:
        if text != messages.THINKING:  # Discord shows "thinking…" on a deferred response
            await self.out.edit(from_core(text))

    async def queued(self, info: QueueInfo) -> None:
        await self.out.edit(messages.queued_notice(info))

    async def delta(self, text: str) -> None:
        self.live.add(text)

    async def finish(self, text: str) -> None:
        """The answer in pieces: the first edits the deferred response, the rest follow.
        Whatever would go out after the deadline is replaced by one note that the answer was
        cut off."""
        first, *rest = split(from_core(text), self.limit)
        await self.live.finish(
            [first or messages.EMPTY_ANSWER, *rest],
            deadline=self.deadline,
            note=messages.DISCORD_CUT_OFF_REST,
        )

    async def fail(self, text: str) -> None:
        await self.live.stop()
        try:
            await self.out.edit(warn(text))
        except Exception as exc:
            log.warning("could not tell the user of a failure: %s", exc)

    async def offer_more(self, offer: MoreBudget) -> None:
        """The "Request more" button under the refusal, where the responder can show one."""
        if self.more is not None and isinstance(self.out, ShowsButtons):
            await self.out.show_buttons(await self.more(offer))

    async def show(self, index: int, text: str) -> None:
        if index == 0:
            await self.out.edit(text)
        elif index <= len(self.follow_ups):
            await self.out.edit(text, self.follow_ups[index - 1])
        else:
            self.follow_ups.append(await self.out.follow_up(text))


class MessageReply:
    def __init__(
        self,
        message: discord.Message,
        *,
        limit: int = LIMIT,
        interval: float = 1.0,
        streaming: bool = True,
        more: Offering | None = None,
        rest: DiscordREST | None = None,
    ):
        """``interval``: seconds between two edits of one message while the answer streams.
        ``more`` and ``rest``: the "Request more" button under a refusal (plain components,
        which discord.py's Message.edit does not take)."""
        self.message, self.limit = message, limit
        self.more, self.rest = more, rest
        self.streaming = streaming
        self.sent: list[discord.Message] = []
        """The bot's replies so far (a queue notice first), edited into the answer."""
        self.live = Live(self, interval=interval, limit=limit)
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
        await self.show(0, messages.queued_notice(info))

    async def delta(self, text: str) -> None:
        self.live.add(text)

    async def finish(self, text: str) -> None:
        await self._stop_typing()
        first, *rest = split(from_core(text), self.limit)
        await self.live.finish([first or messages.EMPTY_ANSWER, *rest])

    async def fail(self, text: str) -> None:
        await self.finish(f":warning: {text}")

    async def offer_more(self, offer: MoreBudget) -> None:
        """The "Request more" button, on the refusal."""
        if self.more is None or self.rest is None or not self.sent:
            return
        await self.rest.request(
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            json={"components": await self.more(offer)},
            channel_id=str(self.message.channel.id),
            message_id=str(self.sent[-1].id),
        )

    async def show(self, index: int, text: str) -> None:
        """Each piece a reply to the one before, so that the chain continues."""
        if index < len(self.sent):
            await self.sent[index].edit(content=text)
            return
        await self._stop_typing()
        parent = self.sent[-1] if self.sent else self.message
        self.sent.append(await parent.reply(text, mention_author=False))

    async def _stop_typing(self) -> None:
        typing, self._typing = self._typing, None
        if typing is not None:
            with contextlib.suppress(Exception):
                await typing.__aexit__(None, None, None)
