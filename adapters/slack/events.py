"""Mentions, direct messages and replies in the bot's threads: which to answer, claimed once.

    event -> route (mention / im / thread / none) -> claimed with the event, as the ack goes
          -> the thread read back -> a recording? transcribed (adapters.slack.voice)
          -> Chat.answer, in the thread (adapters.slack.reply; in the assistant pane,
             adapters.slack.assistant), with the message's images (adapters.slack.images)

Bolt acknowledges every event before our listener runs, so the ack never waits for the
provider. Each message is answered once: the event log makes Slack's retries (same event,
``X-Slack-Retry-Num``), a second replica, and the ``app_mention`` plus ``message`` pair that
one mention produces come to one answer. With ``QUOTABOT_ACK_AFTER_CLAIM`` the ack waits for
the claim: Slack sends nothing twice that it got a 200 for, so if this process dies before
answering, another one answers from the claim (``bot.takeover``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import threads
from adapters.slack.assistant import AssistantReply, in_assistant_thread
from adapters.slack.config import PLATFORM
from adapters.slack.images import image_files
from adapters.slack.reply import Replies, SlackReply
from adapters.slack.voice import SlackVoice
from bot import voice
from bot.chat.answers import Chat
from bot.chat.claims import Kind
from bot.ids import usable_id
from bot.images import ImageFile
from bot.models import ChatRequest, Message
from bot.store.events import Orphan

log = logging.getLogger(__name__)

MESSAGE = Kind(f"{PLATFORM}:")
"""A message to answer: ``slack:TEAM:CHANNEL:TS``."""
_EVENT_IDS = ("channel", "ts", "user")
_OPTIONAL_IDS = ("thread_ts", "team", "channel_type")


class SlackEvents:
    def __init__(self, chat: Chat, replies: Replies, voice: SlackVoice, *, assistant: bool = True):
        """``assistant``: messages in DM threads are answered as the assistant pane's
        (adapters.slack.assistant)."""
        self.chat, self.replies, self.voice = chat, replies, voice
        self.assistant = assistant

    async def claim(
        self,
        context: AsyncBoltContext,
        body: dict[str, Any],
        next: Callable[[], Awaitable[None]],  # bolt passes it by this name
    ) -> BoltResponse | None:
        """Global middleware, before the ack: a message the bot will take on is claimed, with
        the event, so that whoever answers it, here or after a crash elsewhere, answers once."""
        event = body.get("event") if body.get("type") == "event_callback" else None
        how = route(event, context.bot_user_id) if isinstance(event, dict) else None
        if event is None or how is None:
            await next()
            return None
        team = context.team_id or event.get("team") or ""
        key = MESSAGE.key(team, event["channel"], event["ts"])
        payload = {"event": event, "team": team, "bot_user_id": context.bot_user_id}
        claim = await self.chat.claims.at_ack(key, payload)
        if claim.done() and not claim.result():
            # Slack's retry, the app_mention/message twin, or another replica's: acked, no more.
            return BoltResponse(status=200, body="")
        context["quotabot_claim"] = (key, claim, how)
        await next()
        return None

    async def on_event(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """app_mention and message: those to answer were claimed by ``claim``."""
        taken = context.get("quotabot_claim")
        if taken is None:
            return  # edits, joins, bots (ourselves too), channel chatter: never answered
        key, claim, how = taken
        take = functools.partial(
            self.take,
            event,
            context.team_id or event.get("team") or "",
            context.client,
            context.bot_user_id,
            only_if_bot_in_thread=how == "thread",
        )
        self.chat.spawn(self.chat.claims.once(key, claim, take))

    async def resume(self, orphan: Orphan, client: AsyncWebClient) -> None:
        """A message a stopped process claimed and did not answer: what it posted already is
        reused or removed, not posted twice."""
        event, bot_user = orphan.payload["event"], orphan.payload.get("bot_user_id")
        await self.take(
            event,
            orphan.payload["team"],
            client,
            bot_user,
            only_if_bot_in_thread=route(event, bot_user) == "thread",
            resumed=True,
        )

    async def take(
        self,
        event: dict[str, Any],
        team: str,
        client: AsyncWebClient,
        bot_user: str | None,
        *,
        only_if_bot_in_thread: bool = False,
        resumed: bool = False,
    ) -> None:
        channel, ts, user = event["channel"], event["ts"], event["user"]
        thread_ts = event.get("thread_ts") or ts
        thread = await threads.history(client, channel, thread_ts, ts, bot_user)
        history = thread.messages
        if only_if_bot_in_thread and not any(m.role == "assistant" for m in history):
            return
        text = threads.without_mentions(event.get("text", ""))
        recordings = await self.voice.recordings(event.get("files"), client)

        def files(attached: list[dict[str, Any]] | None) -> list[ImageFile]:
            return image_files(
                attached,
                http=self.voice.downloads,
                token=client.token or self.voice.token,
                hosts=self.voice.hosts,
            )

        pictures = files(event.get("files"))
        earlier = {i: files(f) for i, f in thread.files.items()}
        if not recordings and not pictures and not text and event.get("files"):
            return  # a file without words, and not audio or an image: nothing to answer
        if not await self.chat.enabled(team, channel):
            return
        if recordings:
            where = voice.Where(
                platform=PLATFORM, workspace=team, channel=channel, user=user, thread=thread_ts
            )
            await self.voice.transcribe(client, recordings[0], where, text, history)
            return
        request = ChatRequest(
            platform=PLATFORM,
            workspace=team,
            channel=channel,
            thread=thread_ts,
            user=user,
            messages=(*history, Message("user", text)),
        )
        left = await threads.leftovers(client, channel, thread_ts, ts, bot_user) if resumed else []
        reply: SlackReply
        if self.assistant and in_assistant_thread(event):
            reply = AssistantReply(
                client,
                channel,
                thread_ts,
                team=team,
                user=user,
                streams=self.replies.streams,
                statuses=self.replies.statuses,
                interval=self.replies.interval,
                leftovers=left,
            )
            if not any(m.role == "user" for m in history):
                await reply.title(text)
        else:
            reply = self.replies.in_thread(
                client, channel, thread_ts, team=team, user=user, leftovers=left
            )
        await self.chat.answer(request, reply, pictures=pictures, earlier=earlier)


def route(event: dict[str, Any], bot_user: str | None) -> str | None:
    """How the bot takes on a message event: "mention", "im" (a direct message), "thread" (a
    reply in a thread, answered when the bot is part of it); None: not at all."""
    if event.get("type") == "app_mention":
        return None if _malformed(event) else "mention"
    if event.get("type") != "message":
        return None
    if event.get("subtype") not in (None, "file_share") or event.get("bot_id"):
        return None  # edits, joins, other bots (and ourselves): never answered
    if _malformed(event):
        return None
    if event.get("channel_type") == "im":
        return "im"
    if event.get("thread_ts") and f"<@{bot_user}>" not in event.get("text", ""):
        return "thread"  # (a reply that mentions the bot arrives as app_mention too)
    return None


def _malformed(event: dict[str, Any]) -> bool:
    """Whether a person's message event lacks what answering it needs, or has a field of
    another shape than Slack sends (bot.ids): logged and ignored, before anything is
    written."""
    bad = [k for k in _EVENT_IDS if not usable_id(event.get(k))]
    bad += [k for k in _OPTIONAL_IDS if k in event and not usable_id(event[k])]
    bad += [] if isinstance(event.get("text", ""), str) else ["text"]
    if bad:
        log.warning("Slack %s event without a usable %s ignored", event.get("type"), bad)
    return bool(bad)
