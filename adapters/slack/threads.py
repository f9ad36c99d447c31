"""Reading a Slack thread back: the conversation so far, and what a stopped process left.

Slack's thread is the record: a takeover (``bot.takeover``) finds there what the process it
replaces had posted, and reuses or removes it instead of posting twice.
"""

from __future__ import annotations

import logging
import re
from typing import Any, NamedTuple

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.models import Message

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[A-Z0-9]+>")


def without_mentions(text: str) -> str:
    return _MENTION.sub("", text).strip()


_NOT_SAID = (messages.THINKING, messages.TRANSCRIBING, messages.ASSISTANT_GREETING)
"""The bot's messages that are not part of the conversation the model is shown."""


class Thread(NamedTuple):
    messages: tuple[Message, ...]
    """The conversation so far, as the model should see it."""
    files: dict[int, list[dict[str, Any]]]
    """Per index into ``messages``: the files people attached to that message."""


async def history(
    client: AsyncWebClient, channel: str, thread_ts: str, ts: str, bot_user: str | None
) -> Thread:
    """The thread so far (without the message being answered), and its files."""
    if thread_ts == ts:
        return Thread((), {})
    out: list[Message] = []
    files: dict[int, list[dict[str, Any]]] = {}
    for m in await _replies(client, channel, thread_ts):
        attached = [f for f in m.get("files") or [] if isinstance(f, dict)]
        if (not m.get("text") and not attached) or m.get("text") in _NOT_SAID:
            continue
        if ts_order(m.get("ts")) >= ts_order(ts):
            continue  # the message itself, and what came after it (a takeover's leftovers)
        mine = posted_by_bot(m, bot_user)
        if attached and not mine:
            files[len(out)] = attached
        out.append(
            Message("assistant" if mine else "user", without_mentions(str(m.get("text") or "")))
        )
    return Thread(tuple(out), files)


async def leftovers(
    client: AsyncWebClient, channel: str, thread_ts: str, ts: str, bot_user: str | None
) -> list[str]:
    """What the bot posted after the message ``ts`` before anyone else spoke: a stopped
    process's placeholder or partial answer."""
    out = []
    for m in await _replies(client, channel, thread_ts):
        if ts_order(m.get("ts")) <= ts_order(ts):
            continue
        if not posted_by_bot(m, bot_user):
            break
        out.append(str(m["ts"]))
    return out


async def posted(
    client: AsyncWebClient, channel: str, text: str, bot_user: str | None
) -> str | None:
    """The ts of the bot's latest message ``text`` in ``channel``: a question a stopped
    process posted for its ``/ask`` before it could answer."""
    try:
        response = await client.conversations_history(channel=channel, limit=100)
    except SlackApiError as exc:
        log.warning("could not read %s: %s", channel, exc)
        return None
    m: dict[str, Any]
    for m in response.get("messages", []):  # newest first
        if m.get("text") == text and posted_by_bot(m, bot_user):
            return str(m["ts"])
    return None


async def _replies(client: AsyncWebClient, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    try:
        response = await client.conversations_replies(channel=channel, ts=thread_ts, limit=200)
    except SlackApiError as exc:
        log.warning("could not read thread %s in %s: %s", thread_ts, channel, exc)
        return []
    return list(response.get("messages", []))


def posted_by_bot(message: dict[str, Any], bot_user: str | None) -> bool:
    """Whether the bot posted ``message`` (a ``conversations.replies`` message)."""
    return message.get("user") == bot_user or bool(
        message.get("bot_id") and message.get("user") in (None, bot_user)
    )


def ts_order(ts: Any) -> tuple[int, int]:
    """Slack's ``ts`` ("1712345678.000200") in time order; anything else first."""
    seconds, _, micros = str(ts).partition(".")
    try:
        return int(seconds), int(micros or 0)
    except ValueError:
        return (-1, 0)
