"""Controls on an answer in Slack: Stop while it streams, 👍 and 👎 once it is finished
(the core: ``Chat.stop``, ``Chat.rate``; ratings kept by bot.store.feedback).

    SlackReply, while streaming -> the "Stop" button (the answer and its asker in its value)
    the asker clicks Stop -> Chat.stop -> the stream ends where it is, on whichever replica
                             streams it; what came stays, marked stopped, and is counted
    SlackReply.finish -> 👍 / 👎 under the answer (its request id in their value)
    anyone clicks one -> Chat.rate: one rating per person and answer; told so, privately

Someone else's Stop does nothing but tell them so.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks as bk
from adapters.slack.config import PLATFORM
from bot import messages
from bot.budget.policy import Who
from bot.chat.answers import Chat
from bot.chat.split import split
from bot.errors import StoreError
from bot.store.feedback import DOWN, UP

log = logging.getLogger(__name__)

STOP = "quotabot_answer_stop"
GOOD, BAD = "quotabot_answer_good", "quotabot_answer_bad"
ACTIONS = (STOP, GOOD, BAD)
Ack = Callable[..., Awaitable[None]]


def stop_blocks(text: str, answer: str, asker: str) -> list[bk.Block]:
    """``text`` (a placeholder, or the answer so far) with a Stop button under it."""
    return [
        *text_blocks(text),
        {
            "type": "actions",
            "elements": [bk.button(messages.STOP_BUTTON, STOP, f"{answer} {asker}")],
        },
    ]


def rating_blocks(answer: str) -> list[bk.Block]:
    """👍 and 👎 for the answer ``answer`` (a request id)."""
    return [
        {
            "type": "actions",
            "elements": [bk.button("👍", GOOD, answer), bk.button("👎", BAD, answer)],
        }
    ]


def text_blocks(text: str) -> list[bk.Block]:
    """A message's text (up to 4,000 characters) as section blocks: a message with blocks
    shows them instead of its text."""
    return [bk.section(piece or " ") for piece in split(text, bk.SECTION_TEXT)]


class SlackControls:
    def __init__(self, chat: Chat):
        self.chat = chat

    def register(self, app: AsyncApp) -> None:
        app.action(STOP)(self.on_stop)
        app.action(GOOD)(self.on_good)
        app.action(BAD)(self.on_bad)

    async def on_stop(self, ack: Ack, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        clicker = body["user"]["id"]
        answer, _, asker = str(body["actions"][0].get("value") or "").partition(" ")
        if not answer or clicker != asker:
            await _tell(context.client, body, clicker, messages.STOP_ONLY_ASKER)
            return
        try:
            await self.chat.stop(answer)
        except StoreError as exc:
            log.warning("could not stop answer %s: %s", answer, exc)
            await _tell(context.client, body, clicker, messages.STOP_FAILED)

    async def on_good(self, ack: Ack, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await self._rate(ack, body, context, UP)

    async def on_bad(self, ack: Ack, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await self._rate(ack, body, context, DOWN)

    async def _rate(
        self, ack: Ack, body: dict[str, Any], context: AsyncBoltContext, rating: int
    ) -> None:
        await ack()
        user, channel = body["user"]["id"], _channel(body)
        answer = str(body["actions"][0].get("value") or "")
        if not answer or channel is None:
            return
        team = (body.get("team") or {}).get("id") or context.team_id or ""
        try:
            await self.chat.rate(answer, rating, Who(PLATFORM, team, channel, user))
        except StoreError as exc:
            log.warning("could not keep a rating of %s: %s", answer, exc)
            await _tell(context.client, body, user, messages.RATING_FAILED)
            return
        await _tell(context.client, body, user, messages.RATED[rating])


def _channel(body: dict[str, Any]) -> str | None:
    where = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")
    return str(where) if where else None


async def _tell(client: AsyncWebClient, body: dict[str, Any], user: str, text: str) -> None:
    if (channel := _channel(body)) is None:
        return
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        log.warning("could not tell %s in %s: %s", user, channel, exc)
