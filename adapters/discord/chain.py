"""Mentions and reply chains, on plain data: which messages the bot answers, and with what
conversation. The gateway turns discord.py's messages into :class:`Post`s; keeping these
rules apart from discord.py lets the tests check them without a gateway."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

from adapters.discord.invocation import File
from bot.models import Message

MAX_DEPTH = 25
"""Replies followed up the chain at most; the core trims what is left to fit the model."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Post:
    id: str
    author: str
    author_is_bot: bool
    content: str
    mentions: frozenset[str] = frozenset()
    """Users mentioned (a reply that pings its author lists that author too)."""
    reply_to: str | None = None
    """The message this one replies to."""
    reply_to_author: str | None = None
    direct: bool = False
    """In a direct message channel."""
    attachments: tuple[File, ...] = ()
    """Its image attachments: shown again with later questions."""


def addressed(post: Post, bot: str) -> bool:
    """Whether the bot should answer: never its own or other bots' messages; in DMs always;
    elsewhere when mentioned, or when replying to one of its messages."""
    if post.author_is_bot or post.author == bot:
        return False
    return post.direct or bot in post.mentions or post.reply_to_author == bot


def strip_mention(text: str, bot: str) -> str:
    """The question without the bot's ``<@id>`` / ``<@!id>`` mentions."""
    return re.sub(rf"<@!?{re.escape(bot)}>", "", text).strip()


Fetch = Callable[[str], Awaitable[Post | None]]


class Chain(NamedTuple):
    messages: tuple[Message, ...]
    """The reply chain above a message, oldest first, as the model should see it."""
    root: str
    """The id of the chain's first message: the conversation's id."""
    attachments: dict[int, tuple[File, ...]]
    """Per index into ``messages``: the images people attached to that message."""


async def conversation(post: Post, bot: str, fetch: Fetch, *, depth: int = MAX_DEPTH) -> Chain:
    """The reply chain above ``post``. A message that cannot be fetched, or the depth limit,
    ends the chain."""
    chain: list[tuple[Message, tuple[File, ...]]] = []
    root = post.id
    seen = {post.id}
    parent = post.reply_to
    while parent and parent not in seen and len(chain) < depth:
        seen.add(parent)
        found = await fetch(parent)
        if found is None:
            break
        root = found.id
        text = strip_mention(found.content, bot)
        mine = found.author == bot
        if text or (found.attachments and not mine):
            said = Message("assistant" if mine else "user", text)
            chain.append((said, () if mine else found.attachments))
        parent = found.reply_to
    chain.reverse()
    attachments = {i: a for i, (_, a) in enumerate(chain) if a}
    return Chain(tuple(m for m, _ in chain), root, attachments)
