"""Slack's image files as images for the model (bot.images), fetched like voice clips: from
``url_private_download`` on Slack's file hosts only, with the bot token, 20 MB at most
(adapters.slack.voice, bot.downloads)."""

from __future__ import annotations

from typing import Any

import httpx

from adapters.slack.voice import file_fetcher
from bot import images
from bot.downloads import FileHosts


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
        out.append(
            images.ImageFile(
                name=name,
                media_type=f.get("mimetype"),
                size=f.get("size") if isinstance(f.get("size"), int) else None,
                fetch=file_fetcher(
                    f, name, http=http, token=token, hosts=hosts, limit=images.MAX_BYTES
                ),
            )
        )
    return out
