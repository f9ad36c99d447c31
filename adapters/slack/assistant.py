"""Slack's AI-app surfaces ("Agents & AI Apps"): the assistant pane, through slack-bolt's
``AsyncAssistant`` middleware.

    assistant_thread_started -> suggested prompts (assistant.threads.setSuggestedPrompts)
                                and a greeting in the thread
    a message in an assistant thread -> claimed and answered like any direct message
        (adapters.slack.events), with an AssistantReply:
        - its thread titled after the first question (setTitle)
        - "is thinking…", and while it waits for budget its place in the queue and the
          expected wait, as the thread's status (setStatus) instead of a placeholder message
        - the answer streamed into the thread; Stop, 👍 and 👎 as anywhere (.controls)

Where the app lacks the feature (Slack refuses setStatus, say for want of ``assistant:write``)
an AssistantReply falls back to a placeholder message, learned once per workspace: classic
DMs keep working. ``QUOTABOT_SLACK_ASSISTANT=false`` leaves DM threads to them entirely.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAssistant, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.reply import SlackReply
from bot import messages
from bot.budget.tickets import QueueInfo
from bot.ids import usable_id

log = logging.getLogger(__name__)

TITLE_MOST = 80
"""Characters of the first question kept as the thread's title."""


def in_assistant_thread(event: dict[str, Any]) -> bool:
    """A person's message in a thread of the app's DM: what the assistant pane sends (bolt's
    ``is_user_message_event_in_assistant_thread``)."""
    return (
        event.get("type") == "message"
        and event.get("channel_type") == "im"
        and event.get("subtype") in (None, "file_share")
        and event.get("bot_id") is None
        and event.get("thread_ts") is not None
    )


class AssistantReply(SlackReply):
    """A SlackReply whose "thinking" and queue notices are the thread's status."""

    def __init__(self, *args: Any, statuses: dict[str, bool], **kwargs: Any):
        """``statuses``: per workspace, whether setStatus works there (shared by replies)."""
        super().__init__(*args, **kwargs)
        self.statuses = statuses

    async def placeholder(self, text: str) -> None:
        if self.ts is not None or not await self._status(messages.ASSISTANT_THINKING):
            await super().placeholder(text)

    async def queued(self, info: QueueInfo) -> None:
        if self.ts is not None or not await self._status(messages.assistant_waiting(info)):
            await super().queued(info)

    async def title(self, question: str) -> None:
        """The thread's title, from its first question."""
        if not self.statuses.get(self.team, True):
            return
        title = " ".join(question.split())[:TITLE_MOST] or messages.ASSISTANT_UNTITLED
        try:
            await self.client.assistant_threads_setTitle(
                channel_id=self.channel, thread_ts=self.thread_ts, title=title
            )
        except SlackApiError as exc:
            log.info("could not title the assistant thread in %s: %s", self.channel, exc)

    async def _status(self, status: str) -> bool:
        """Show ``status`` on the thread; False where the workspace has no assistant pane."""
        if not self.statuses.get(self.team, True):
            return False
        try:
            await self.client.assistant_threads_setStatus(
                channel_id=self.channel, thread_ts=self.thread_ts, status=status
            )
        except SlackApiError as exc:
            log.info(
                "assistant threads are not available in %s (%s): placeholder messages instead",
                self.team,
                exc,
            )
            self.statuses[self.team] = False
            return False
        return True


OnMessage = Callable[[dict[str, Any], AsyncBoltContext], Awaitable[None]]


def assistant(on_message: OnMessage) -> AsyncAssistant:
    """The middleware: new threads get prompts; messages in them go to ``on_message``
    (``SlackEvents.on_event``), as direct messages do."""
    pane = AsyncAssistant(logger=logging.getLogger("slack_bolt"))

    @pane.thread_started
    async def started(payload: dict[str, Any], context: AsyncBoltContext) -> None:
        thread = payload.get("assistant_thread")
        if not isinstance(thread, dict):
            return
        channel, ts = thread.get("channel_id"), thread.get("thread_ts")
        if not (usable_id(channel) and usable_id(ts)):
            log.warning("assistant_thread_started without a usable thread ignored")
            return
        await greet(context.client, str(channel), str(ts))

    @pane.thread_context_changed
    async def context_changed() -> None:
        """What channel the person looks at: quotabot does not use it (bolt's default
        would store it in the thread, a Web API call for nothing)."""

    @pane.user_message
    async def message(payload: dict[str, Any], context: AsyncBoltContext) -> None:
        await on_message(payload, context)

    return pane


async def greet(client: AsyncWebClient, channel: str, thread_ts: str) -> None:
    try:
        await client.assistant_threads_setSuggestedPrompts(
            channel_id=channel,
            thread_ts=thread_ts,
            prompts=[{"title": t, "message": m} for t, m in messages.ASSISTANT_PROMPTS],
        )
    except SlackApiError as exc:
        log.info("could not suggest prompts in %s: %s", channel, exc)
    try:
        await client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=messages.ASSISTANT_GREETING
        )
    except SlackApiError as exc:
        log.warning("could not greet in the assistant thread in %s: %s", channel, exc)
