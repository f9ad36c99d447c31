"""One answer in a Slack thread: the chat layer's Surface, as Slack messages.

placeholder -> "_Thinking…_" posted in the thread (or a stopped process's, reused)
queued      -> the placeholder edited: position and expected wait
delta       -> chat.startStream/appendStream where the workspace has them (the placeholder
               says "Answering…" over a Stop button), else the placeholder edited, no
               faster than chat.update allows, with the Stop button under it
finish      -> the stream stopped (and the placeholder removed), or the placeholder edited
               into the answer's first piece, the rest posted after it; 👍 / 👎 under the
               answer's last message (adapters.slack.controls)
fail        -> ":warning: sentence" in the same place
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import controls, more
from adapters.slack.blocks import Block
from adapters.slack.mrkdwn import to_mrkdwn
from bot import messages
from bot.budget.tickets import QueueInfo
from bot.chat.split import split
from bot.chat.surface import MoreBudget

log = logging.getLogger(__name__)

LIMIT = 3_900
"""Characters per message: Slack shows about 4,000 of a message's text without cutting it."""


class SlackReply:
    """Where the workspace has Slack's streaming methods, the answer streams into a message of
    its own and the placeholder goes; elsewhere the placeholder is edited."""

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        *,
        team: str,
        user: str,
        streams: dict[str, bool],
        interval: float,
        leftovers: list[str] | None = None,
    ):
        """``streams``: per workspace, whether streaming works there (shared by replies; a
        workspace not in it is tried). ``leftovers``: what a stopped process posted for this
        answer (a placeholder, part of the answer): the first is reused, the others go."""
        self.client, self.channel, self.thread_ts = client, channel, thread_ts
        self.team, self.user, self.can_stream = team, user, streams
        self.interval = interval
        self.leftovers = list(leftovers or [])
        self.ts: str | None = None
        self.text = ""
        self._stream: AsyncChatStream | None = None
        self._tried_stream = False
        self._last_edit = 0.0
        self._editing: asyncio.Task[None] | None = None
        self.answer: str | None = None
        """The answer's id once the chat layer gave it: its messages get Stop, 👍 and 👎."""

    def controls(self, answer: str) -> None:
        self.answer = answer

    streaming = True
    """The answer shows as it is generated: streamed, or edited into the placeholder."""

    @property
    def streams_here(self) -> bool:
        return self.can_stream.get(self.team, True)

    async def placeholder(self, text: str) -> None:
        if self.ts is not None:
            await self._edit(text)
            return
        for ts in self.leftovers[1:]:
            with contextlib.suppress(SlackApiError):
                await self.client.chat_delete(channel=self.channel, ts=ts)
        if self.leftovers:
            self.ts = self.leftovers[0]
            await self._edit(text)
            return
        posted = await self.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=text
        )
        self.ts = str(posted["ts"])

    async def queued(self, info: QueueInfo) -> None:
        await self._edit(messages.queued_notice(info))

    async def delta(self, delta: str) -> None:
        self.text += delta
        if not self._tried_stream and self.streams_here:
            self._tried_stream = True
            self._stream = await self.client.chat_stream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                recipient_team_id=self.team,
                recipient_user_id=self.user,
            )
            if self._stream is not None and self.answer is not None:
                # The Stop button stays in the placeholder, above the streaming answer.
                await self._edit(messages.ANSWERING, self._stop(messages.ANSWERING))
        if self._stream is not None:
            try:
                await self._stream.append(markdown_text=delta)
                return
            except SlackApiError as exc:
                self._no_streaming(exc)
        now = time.monotonic()
        if now - self._last_edit >= self.interval and (
            self._editing is None or self._editing.done()
        ):
            self._last_edit = now
            preview = split(to_mrkdwn(self.text), LIMIT)[0] + " …"
            # Not awaited: the model's stream never waits for Slack.
            edit = self._edit(preview, self._stop(preview))
            self._editing = asyncio.get_running_loop().create_task(edit)

    def _stop(self, text: str) -> list[Block] | None:
        if self.answer is None:
            return None
        return controls.stop_blocks(text, self.answer, self.user)

    def _no_streaming(self, exc: SlackApiError) -> None:
        if self.streams_here:
            log.info("Slack streaming is not available in %s (%s): editing instead", self.team, exc)
        self.can_stream[self.team] = False
        self._stream = None

    async def finish(self, text: str) -> None:
        rating = controls.rating_blocks(self.answer) if self.answer is not None else None
        if self._stream is not None:
            try:
                if text.endswith(messages.STOPPED):  # the answer so far is shown already
                    await self._stream.stop(markdown_text=f"\n\n{messages.STOPPED}", blocks=rating)
                else:
                    await self._stream.stop(blocks=rating)
            except SlackApiError as exc:
                self._no_streaming(exc)
            else:
                await self._delete_placeholder()
                return
        if self._editing is not None:
            await asyncio.gather(self._editing, return_exceptions=True)
        pieces = split(to_mrkdwn(text), LIMIT)
        pieces[0] = pieces[0] or messages.EMPTY_ANSWER
        # Ratings under the last message (a message with blocks shows them, not its text).
        blocks = [] if rating is None else [*controls.text_blocks(pieces[-1]), *rating]
        last = len(pieces) - 1
        for n, piece in enumerate(pieces):
            mine = blocks if n == last else []
            if n == 0:  # the placeholder, its Stop button gone
                await self._edit(piece, mine if self.answer is not None else None)
            else:
                await self.client.chat_postMessage(
                    channel=self.channel, thread_ts=self.thread_ts, text=piece, blocks=mine or None
                )

    async def fail(self, text: str) -> None:
        text = f":warning: {text}"
        if self._stream is not None:
            try:
                await self._stream.stop(markdown_text=f"\n\n{text}")
                await self._delete_placeholder()
                return
            except SlackApiError as exc:
                self._no_streaming(exc)
        if self._editing is not None:
            await asyncio.gather(self._editing, return_exceptions=True)
        await self._edit(text, [] if self.answer is not None else None)

    async def offer_more(self, offer: MoreBudget) -> None:
        """Under a refusal for a cap: the "Request more" button (adapters.slack.more)."""
        await self.client.chat_postMessage(
            channel=self.channel,
            thread_ts=self.thread_ts,
            text=messages.REQUEST_MORE,
            blocks=more.offer_blocks(offer),
        )

    async def _delete_placeholder(self) -> None:
        if self.ts is None:
            return
        try:
            await self.client.chat_delete(channel=self.channel, ts=self.ts)
        except SlackApiError as exc:
            log.warning("could not remove the placeholder in %s: %s", self.channel, exc)

    async def _edit(self, text: str, blocks: list[Block] | None = None) -> None:
        """Edit the placeholder (``blocks``: its buttons; [] removes them); before there is
        one (a shutdown while waiting for a turn), post the text as a message of its own."""
        try:
            if self.ts is None:
                posted = await self.client.chat_postMessage(
                    channel=self.channel, thread_ts=self.thread_ts, text=text, blocks=blocks
                )
                self.ts = str(posted["ts"])
            else:
                await self.client.chat_update(
                    channel=self.channel, ts=self.ts, text=text, blocks=blocks
                )
        except SlackApiError as exc:
            log.warning("could not edit the answer in %s: %s", self.channel, exc)


class Replies:
    """Makes each answer's :class:`SlackReply`: one place for the pace of edits, and for
    which workspaces turned out to lack streaming (learned once, for every answer)."""

    def __init__(self, interval: float):
        self.interval = interval
        self.streams: dict[str, bool] = {}
        self.statuses: dict[str, bool] = {}
        """Per workspace, whether assistant threads' statuses work (adapters.slack.assistant)."""

    def in_thread(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        *,
        team: str,
        user: str,
        leftovers: list[str] | None = None,
    ) -> SlackReply:
        return SlackReply(
            client,
            channel,
            thread_ts,
            team=team,
            user=user,
            streams=self.streams,
            interval=self.interval,
            leftovers=leftovers,
        )
