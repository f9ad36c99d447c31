"""Slack's file objects as voice attachments, and the bot token kept to Slack's own hosts.

A voice clip or audio file arrives as ``files`` on a message (subtype ``file_share``) or an
``app_mention``, or as the message of the "Transcribe" shortcut. Its bytes are at
``url_private_download``, readable with the bot token (scope ``files:read``). The token is
only ever sent to Slack (``*.slack.com``) or to the configured ``SLACK_API_URL``'s host.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot import voice
from bot.errors import AudioDownloadFailed

TRANSCRIBING = "_Transcribing…_"
NO_AUDIO = (
    "This message has no voice clip or audio file to transcribe "
    "(mp3, m4a, ogg/opus, wav, webm, flac)."
)


def attachments(
    files: list[dict[str, Any]] | None,
    *,
    http: httpx.AsyncClient,
    token: str | None,
    api_url: str | None,
) -> list[voice.Attachment]:
    """The audio among a message's files (others are left alone)."""
    out = []
    for f in files or []:
        name = str(f.get("name") or f.get("title") or "audio")
        found = voice.Attachment(
            name=name,
            media_type=f.get("mimetype"),
            size=f.get("size") if isinstance(f.get("size"), int) else None,
            fetch=_fetcher(f, name, http=http, token=token, api_url=api_url),
        )
        if voice.audio_attachments([found]):
            out.append(found)
    return out


def _fetcher(
    f: dict[str, Any], name: str, *, http: httpx.AsyncClient, token: str | None, api_url: str | None
) -> voice.Fetch:
    url = str(f.get("url_private_download") or f.get("url_private") or "")

    async def fetch() -> bytes:
        if not url:
            raise AudioDownloadFailed(name=name, why="Slack sent no download link")
        if not token or not slack_host(url, api_url):
            raise AudioDownloadFailed(name=name, why="its link does not lead to Slack")
        return await voice.download(http, url, name, headers={"Authorization": f"Bearer {token}"})

    return fetch


def slack_host(url: str, api_url: str | None) -> bool:
    """Whether the bot token may be sent to ``url``."""
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    host = target.host.lower()
    if target.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com")):
        return True
    if api_url:
        configured = httpx.URL(api_url)
        return (configured.scheme, configured.host, configured.port) == (
            target.scheme,
            target.host,
            target.port,
        )
    return False
