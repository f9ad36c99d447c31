"""Slack's image files as images for the model (bot.images), fetched like voice clips: from
``url_private_download`` on Slack's file hosts only, with the bot token, 20 MB at most
(adapters.slack.voice, bot.downloads)."""

from __future__ import annotations

from typing import IO, Any

import httpx

from bot import images
from bot.downloads import FileHosts, download
from bot.errors import AudioDownloadFailed


def image_files(
    files: list[dict[str, Any]] | None,
    *,
    http: httpx.AsyncClient,
    token: str | None,
    hosts: FileHosts,
) -> list[images.ImageFile]:
    """The images among a message's files (``image/*``; others are left alone)."""
    out = []
    for f in files or []:
        if not images.is_image(f.get("mimetype")):
            continue
        name = str(f.get("name") or f.get("title") or "image")
        url = str(f.get("url_private_download") or f.get("url_private") or "")
        out.append(
            images.ImageFile(
                name=name,
                media_type=f.get("mimetype"),
                size=f.get("size") if isinstance(f.get("size"), int) else None,
                fetch=_fetcher(url, name, http=http, token=token, hosts=hosts),
            )
        )
    return out


def _fetcher(
    url: str, name: str, *, http: httpx.AsyncClient, token: str | None, hosts: FileHosts
) -> images.Fetch:
    async def fetch(into: IO[bytes]) -> int:
        # bot.images tells these as an image's failures.
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
            limit=images.MAX_BYTES,
            headers={"Authorization": f"Bearer {token}"},
        )

    return fetch
