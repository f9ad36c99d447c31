"""Digests and budget alerts in Slack: Block Kit from the core's layout, posted once.

A bot.digest.send.DigestPoster: the scheduler posts through it; ``find_digest`` finds a digest
already posted (its key rides in the message's metadata), so that a retry never doubles one.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from adapters.slack.config import PLATFORM
from adapters.slack.oauth import client_for
from bot.digest.content import Digest
from bot.digest.render import CHART_NAME, layout
from bot.digest.send import DigestMessage
from bot.errors import DigestError

log = logging.getLogger(__name__)


def slack_blocks(d: Digest) -> tuple[list[dict[str, Any]], str]:
    """Block Kit blocks and the notification text (also what screen readers use)."""
    lay = layout(d, channel=lambda c: f"<#{c}>", user=lambda u: f"<@{u}>")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": lay.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lay.summary)}},
    ]
    for sec in lay.sections:
        body = "\n".join(f"• {ln}" for ln in sec.lines)
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{sec.title}*\n{body}"[:3000]}}
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": lay.footer}]})
    return blocks, f"{lay.title}: {lay.summary[0]}"


class SlackDigestPoster:
    platform = PLATFORM

    def __init__(self, app: AsyncApp):
        self.app = app

    async def post_digest(
        self, workspace: str, channel: str, message: DigestMessage, *, key: str | None = None
    ) -> str:
        """Block Kit message, then the chart uploaded into its thread (files upload v2).
        Returns the message's ts. A failed chart upload does not fail the digest: it was
        posted, and posting it again would double it. ``key`` rides in the message's
        metadata, for ``find_digest``."""
        blocks, text = slack_blocks(message.digest)
        client = await client_for(self.app, workspace)
        metadata = {"event_type": _DIGEST_EVENT, "event_payload": {"key": key}} if key else None
        try:
            posted = await client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, unfurl_links=False, metadata=metadata
            )
        except SlackApiError as exc:
            raise DigestError(_CANNOT_POST.format(channel=channel, error=_error(exc))) from exc
        ts = str(posted["ts"])
        if message.chart is not None:
            try:
                await client.files_upload_v2(
                    channel=channel,
                    thread_ts=ts,
                    file=message.chart,
                    filename=CHART_NAME,
                    title="Spend by model, last 14 days",
                    alt_txt="Stacked bar chart of spend by model over the last 14 days",
                )
            except SlackApiError as exc:
                log.warning("the digest's chart could not be uploaded to %s: %s", channel, exc)
        return ts

    async def find_digest(
        self, workspace: str, channel: str, message: DigestMessage, key: str
    ) -> str | None:
        """The ts of a message posted since the digest's day ended whose metadata carries
        ``key``. Raises DigestError when the channel cannot be read (better no digest than
        two: the claim is then given back, and the next attempt looks again)."""
        client = await client_for(self.app, workspace)
        cursor = None
        for _ in range(20):  # pages of 200: a busy channel's day, and more
            try:
                page = await client.conversations_history(
                    channel=channel,
                    oldest=f"{message.digest.end.timestamp():.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            except SlackApiError as exc:
                raise DigestError(_CANNOT_READ.format(channel=channel, error=_error(exc))) from exc
            m: dict[str, Any]
            for m in page.get("messages", []):
                meta: dict[str, Any] = m.get("metadata") or {}
                if meta.get("event_type") == _DIGEST_EVENT and (
                    (meta.get("event_payload") or {}).get("key") == key
                ):
                    return str(m["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def post_alert(self, workspace: str, channel: str, text: str) -> str:
        client = await client_for(self.app, workspace)
        try:
            posted = await client.chat_postMessage(channel=channel, text=text)
        except SlackApiError as exc:
            raise DigestError(_CANNOT_POST.format(channel=channel, error=_error(exc))) from exc
        return str(posted["ts"])


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") if exc.response is not None else exc)


_DIGEST_EVENT = "quotabot_digest"
_CANNOT_READ = (
    "quotabot cannot read <#{channel}> ({error}) to check whether a digest is already there: "
    "it needs the channels:history (or groups:history) scope and to be in the channel."
)
_CANNOT_POST = (
    "Slack refused to post in <#{channel}> ({error}): invite quotabot to that channel "
    "(`/invite @quotabot`), or choose another with `/digest set`."
)
