"""One slash command in the core's terms, whichever way it arrived (HTTP or the gateway)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import httpx

from bot import audio, images, voice
from bot.budget.policy import Who
from bot.chat.claims import Kind
from bot.downloads import FileHosts, download

PLATFORM = "discord"
DM_WORKSPACE = "@me"
"""The workspace of direct messages, which belong to no server (Discord's own name for them)."""
EPHEMERAL = 1 << 6
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
INTERACTION = Kind(f"{PLATFORM}:interaction:")
"""A slash command to answer: ``discord:interaction:ID``."""
MESSAGE = Kind(f"{PLATFORM}:message:")
"""A message addressed to the bot (gateway): ``discord:message:ID``."""
TOKEN_TTL = 15 * 60.0
"""Seconds an interaction token can edit its response and post follow-ups."""

FILE_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")
"""Where attachments' ``url`` (and ``proxy_url``) lead, over HTTPS."""


def file_hosts(api_url: str | None = None) -> FileHosts:
    """Discord's file hosts; with ``DISCORD_API_URL`` set, its origin too (the tests' fake
    serves attachments there)."""
    return FileHosts.of("Discord", FILE_HOSTS, api_url=api_url)


@dataclass(frozen=True, slots=True, kw_only=True)
class File:
    """An attachment as Discord describes it (an option of type 11, or on a message)."""

    name: str
    url: str
    size: int | None = None
    media_type: str | None = None
    seconds: float | None = None
    """``duration_secs``, which voice messages carry."""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> File:
        size, seconds = raw.get("size"), raw.get("duration_secs")
        return cls(
            name=str(raw.get("filename") or "audio"),
            url=str(raw["url"]),
            size=size if isinstance(size, int) else None,
            media_type=raw.get("content_type"),
            seconds=float(seconds) if isinstance(seconds, int | float) else None,
        )

    def attachment(self, http: httpx.AsyncClient, hosts: FileHosts) -> voice.Attachment:
        """Discord's attachment URLs are signed links: no token goes with them. Only links
        to ``hosts`` are fetched (an interaction or message names any URL it likes)."""

        async def fetch(into: IO[bytes]) -> int:
            return await download(
                http, self.url, into, name=self.name, hosts=hosts, limit=audio.MAX_BYTES
            )

        return voice.Attachment(
            name=self.name,
            media_type=self.media_type,
            size=self.size,
            fetch=fetch,
            seconds=self.seconds,
        )

    def image(self, http: httpx.AsyncClient, hosts: FileHosts) -> images.ImageFile:
        """The same, as an image for the model (20 MB at most)."""

        async def fetch(into: IO[bytes]) -> int:
            return await download(
                http, self.url, into, name=self.name, hosts=hosts, limit=images.MAX_BYTES
            )

        return images.ImageFile(
            name=self.name, media_type=self.media_type, size=self.size, fetch=fetch
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Invocation:
    """One slash command, in the core's terms, whichever way it arrived."""

    id: str
    name: str
    """``ask``, ``usage``, ``budget show`` or ``budget set`` (or an unknown one)."""
    options: Mapping[str, str | bool] = field(default_factory=dict)
    guild: str | None
    channel: str
    user: str
    permissions: int = 0
    """The member's permissions in the channel, as Discord resolved them."""
    roles: frozenset[str] = frozenset()
    deadline: float
    """Loop time by which the last message must be on its way (the token expires soon after)."""
    files: Mapping[str, File] = field(default_factory=dict)
    """Attachment options, by option name."""

    @property
    def who(self) -> Who:
        return Who(PLATFORM, self.guild or DM_WORKSPACE, self.channel, self.user)

    @property
    def private(self) -> bool:
        """/usage and /budget are only for the one who asked; /ask when asked to be."""
        return self.name not in ("ask", "transcribe") or bool(self.options.get("private"))

    @property
    def dedupe_key(self) -> str:
        return INTERACTION.key(self.id)


def deadline_for(
    created_at: float, now: float, loop_now: float, *, ttl: float, margin: float
) -> float:
    """The loop time to be done by, for a token created at ``created_at`` (Unix time) and
    received at ``now``. A clock behind Discord's must not stretch the deadline."""
    created = min(created_at, now)
    return loop_now + (created + ttl - now) - margin
