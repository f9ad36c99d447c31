"""Slack's file objects as voice attachments, and the bot token kept to Slack's file host.

A voice clip or audio file arrives as ``files`` on a message (subtype ``file_share``) or an
``app_mention``, or as the message of the "Transcribe" shortcut. Its bytes are at
``url_private_download`` on ``files.slack.com``, readable with the bot token (scope
``files:read``), and answered there directly (``url_private`` may redirect elsewhere). A link
anywhere else, or a redirect off that host, is refused before a request (or the token)
leaves (bot.downloads). When ``SLACK_API_URL`` is set, its origin is allowed too: the tests'
fake Slack serves files there.
"""

from __future__ import annotations

from typing import IO, Any

import httpx

from bot import audio, voice
from bot.downloads import FileHosts, download
from bot.errors import AudioDownloadFailed

TRANSCRIBING = "_Transcribing…_"
NO_AUDIO = (
    "This message has no voice clip or audio file to transcribe "
    "(mp3, m4a, ogg/opus, wav, webm, flac)."
)
FILE_HOSTS = ("files.slack.com",)
"""Where ``url_private_download`` links lead (over HTTPS)."""


def file_hosts(api_url: str | None) -> FileHosts:
    return FileHosts.of("Slack", FILE_HOSTS, api_url=api_url)


def attachments(
    files: list[dict[str, Any]] | None,
    *,
    http: httpx.AsyncClient,
    token: str | None,
    hosts: FileHosts,
) -> list[voice.Attachment]:
    """The audio among a message's files (others are left alone)."""
    out = []
    for f in files or []:
        name = str(f.get("name") or f.get("title") or "audio")
        duration_ms = f.get("duration_ms")
        found = voice.Attachment(
            name=name,
            media_type=f.get("mimetype"),
            size=f.get("size") if isinstance(f.get("size"), int) else None,
            fetch=_fetcher(f, name, http=http, token=token, hosts=hosts),
            seconds=duration_ms / 1000 if isinstance(duration_ms, int | float) else None,
        )
        if voice.audio_attachments([found]):
            out.append(found)
    return out


def _fetcher(
    f: dict[str, Any], name: str, *, http: httpx.AsyncClient, token: str | None, hosts: FileHosts
) -> voice.Fetch:
    url = str(f.get("url_private_download") or f.get("url_private") or "")

    async def fetch(into: IO[bytes]) -> int:
        if not url:
            raise AudioDownloadFailed(name=name, why="Slack sent no download link")
        if not token:
            raise AudioDownloadFailed(name=name, why="quotabot has no Slack token to read it")
        return await download(
            http,
            url,
            into,
            name=name,
            hosts=hosts,
            limit=audio.MAX_BYTES,
            headers={"Authorization": f"Bearer {token}"},
        )

    return fetch
