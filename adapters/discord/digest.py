"""Posting digests and budget alerts into a Discord channel, over REST with the bot token.

Works in both modes (the gateway is not needed to post): one message with the digest as an
embed, the chart attached and shown inside it, and a one-line summary as the message text,
which is what a phone's notification shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from adapters.discord.invocation import PLATFORM
from adapters.discord.rest import DiscordAPIError, DiscordREST
from adapters.discord.texts import from_core
from bot.digest.content import WARN_AT, Digest
from bot.digest.render import CHART_NAME, layout
from bot.digest.send import DigestMessage
from bot.errors import DigestError

DISCORD_EPOCH_MS = 1_420_070_400_000


def snowflake_at(at: datetime) -> str:
    """The smallest Discord id of a moment: ``after=`` it lists what came later."""
    return str((int(at.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22)


_NO_MENTIONS: dict[str, list[str]] = {"parse": []}
_CANNOT_POST = (
    "Discord refused the {what} for channel {channel}: {error}. Check that quotabot can see "
    "that channel and may Send Messages, Embed Links and Attach Files there."
)


class DiscordDigestPoster:
    """A :class:`bot.digest.send.DigestPoster` for Discord."""

    platform = PLATFORM

    def __init__(self, rest: DiscordREST):
        self.rest = rest

    async def post_digest(
        self, workspace: str, channel: str, message: DigestMessage, *, key: str | None = None
    ) -> str:
        lay = layout(message.digest)
        payload = {
            "content": f"**{lay.title}**: {lay.summary[0]}"[:2000],
            "embeds": [discord_embed(message.digest, chart=message.chart is not None)],
            "allowed_mentions": _NO_MENTIONS,
        }
        files = [(CHART_NAME, message.chart, "image/png")] if message.chart else []
        return await self._post(channel, payload, files, "digest")

    async def find_digest(
        self, workspace: str, channel: str, message: DigestMessage, key: str
    ) -> str | None:
        """A message by a bot, posted since the digest's day ended, whose embed has this
        digest's title (workspace's day and zone). Raises DigestError if it cannot look."""
        title = discord_embed(message.digest, chart=False)["title"]
        after = snowflake_at(message.digest.end)
        for _ in range(20):  # pages of 100
            try:
                page = await self.rest.request(
                    "GET",
                    "/channels/{channel_id}/messages?after={after}&limit=100",
                    channel_id=channel,
                    after=after,
                )
            except DiscordAPIError as exc:
                raise DigestError(
                    f"quotabot cannot read channel {channel} to check whether a digest is "
                    f"already there: {exc}. It needs Read Message History there."
                ) from exc
            for m in page or []:
                embeds = m.get("embeds") or []
                if (m.get("author") or {}).get("bot") and any(
                    e.get("title") == title for e in embeds
                ):
                    return str(m["id"])
            if len(page or []) < 100:
                return None
            after = max(str(m["id"]) for m in page)
        return None

    async def post_alert(self, workspace: str, channel: str, text: str) -> str:
        payload = {"content": from_core(text)[:2000], "allowed_mentions": _NO_MENTIONS}
        return await self._post(channel, payload, [], "budget alert")

    async def _post(
        self,
        channel: str,
        payload: Mapping[str, object],
        files: list[tuple[str, bytes, str]],
        what: str,
    ) -> str:
        try:
            sent = await self.rest.request(
                "POST",
                "/channels/{channel_id}/messages",
                channel_id=channel,
                json=payload,
                files=files,
            )
        except DiscordAPIError as exc:
            raise DigestError(_CANNOT_POST.format(what=what, channel=channel, error=exc)) from exc
        return str(sent["id"])


def discord_embed(d: Digest, *, chart: bool) -> dict[str, Any]:
    """One embed (Discord's limits: 25 fields of 1,024 characters, 6,000 in all)."""
    lay = layout(d, channel=lambda c: f"<#{c}>", user=lambda u: f"<@{u}>")
    embed: dict[str, Any] = {
        "title": lay.title[:256],
        "description": "\n".join(lay.summary)[:4096],
        "color": _colour(d),
        "fields": [
            {"name": sec.title[:256], "value": "\n".join(f"• {ln}" for ln in sec.lines)[:1024]}
            for sec in lay.sections[:25]
        ],
        "footer": {"text": lay.footer[:2048]},
    }
    if chart:
        embed["image"] = {"url": f"attachment://{CHART_NAME}"}
    return embed


def _colour(d: Digest) -> int:
    worst = max((b.share for b in d.budgets), default=0.0)
    if worst >= 1:
        return 0xD93025  # red
    if worst >= WARN_AT:
        return 0xF9AB00  # amber
    return 0x1A73E8
