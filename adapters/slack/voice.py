"""Slack's file objects as voice attachments, and the bot token kept to Slack's file host.

A voice clip or audio file arrives as ``files`` on a message (subtype ``file_share``) or an
``app_mention``, or as the message of the "Transcribe" shortcut. Its bytes are at
``url_private_download`` on ``files.slack.com``, readable with the bot token (scope
``files:read``), and answered there directly (``url_private`` may redirect elsewhere). A link
anywhere else, or a redirect off that host, is refused before a request (or the token)
leaves (bot.downloads). When ``SLACK_API_URL`` is set, its origin is allowed too: the tests'
fake Slack serves files there.

    message with a recording, or the "Transcribe" shortcut -> SlackVoice.transcribe
        -> "_Transcribing…_" in the thread, edited into the transcript
        -> the answer to what the message asked, as a reply of its own after it
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import IO, Any

import httpx
from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.config import PLATFORM
from adapters.slack.reply import Replies, SlackReply
from bot import audio, messages, voice
from bot.chat.answers import Chat
from bot.chat.claims import Kind
from bot.downloads import FileHosts, download
from bot.errors import AudioDownloadFailed
from bot.models import Message

log = logging.getLogger(__name__)

SHORTCUT = Kind(f"{PLATFORM}-shortcut:")
"""The "Transcribe" shortcut, once per trigger: ``slack-shortcut:TRIGGER``."""
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
            fetch=file_fetcher(f, name, http=http, token=token, hosts=hosts, limit=audio.MAX_BYTES),
            seconds=duration_ms / 1000 if isinstance(duration_ms, int | float) else None,
        )
        if voice.audio_attachments([found]):
            out.append(found)
    return out


def file_fetcher(
    f: dict[str, Any],
    name: str,
    *,
    http: httpx.AsyncClient,
    token: str | None,
    hosts: FileHosts,
    limit: int,
) -> voice.Fetch:
    """How a Slack file (a recording, an image) is read: from its private URL on Slack's
    file hosts, with the bot token, at most ``limit`` bytes."""
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
            limit=limit,
            headers={"Authorization": f"Bearer {token}"},
        )

    return fetch


class SlackVoice:
    def __init__(
        self,
        chat: Chat,
        replies: Replies,
        *,
        downloads: httpx.AsyncClient,
        hosts: FileHosts,
        token: str | None,
    ):
        """``downloads``: the client recordings are fetched with (never more than 25 MB each,
        each redirect checked by bot.downloads); ``token``: the bot token, when there is one
        for every workspace (with OAuth, each workspace's client carries its own)."""
        self.chat, self.replies = chat, replies
        self.downloads, self.hosts, self.token = downloads, hosts, token

    async def recordings(
        self, files: list[dict[str, Any]] | None, client: AsyncWebClient
    ) -> list[voice.Attachment]:
        """The message's audio files. Some events carry a file as its id only
        (``file_access: check_file_info``): files.info tells the rest."""
        full = []
        for f in files or []:
            if f.get("file_access") == "check_file_info" and f.get("id"):
                try:
                    f = (await client.files_info(file=f["id"]))["file"]
                except SlackApiError as exc:
                    log.warning("could not read file %s: %s", f["id"], exc)
                    continue
            full.append(f)
        return attachments(
            full, http=self.downloads, token=client.token or self.token, hosts=self.hosts
        )

    async def transcribe(
        self,
        client: AsyncWebClient,
        recording: voice.Attachment,
        where: voice.Where,
        question: str,
        history: tuple[Message, ...],
    ) -> None:
        """The transcript in the thread, then the answer to ``question`` (if any) after it.
        (One recording per message: a second one in the same post is left alone.)"""
        assert where.thread is not None
        thread = where.thread

        def reply() -> SlackReply:
            return self.replies.in_thread(
                client, where.channel, thread, team=where.workspace, user=where.user
            )

        async def then() -> SlackReply:
            return reply()

        await self.chat.transcribe(
            recording, where, reply(), question=question, history=history, then=then
        )

    async def on_shortcut(
        self,
        ack: Callable[..., Awaitable[None]],
        shortcut: dict[str, Any],
        respond: Callable[..., Awaitable[Any]],
        context: AsyncBoltContext,
    ) -> None:
        """The "Transcribe" message shortcut: the transcript in the message's thread."""
        await ack()
        message: dict[str, Any] = shortcut.get("message") or {}
        recordings = await self.recordings(message.get("files"), context.client)
        if not recordings:
            await respond(response_type="ephemeral", text=messages.NO_AUDIO)
            return
        if not await self.chat.claims.first(SHORTCUT.key(str(shortcut.get("trigger_id")))):
            return
        team = (shortcut.get("team") or {}).get("id") or context.team_id or ""
        where = voice.Where(
            platform=PLATFORM,
            workspace=team,
            channel=(shortcut.get("channel") or {}).get("id") or "",
            user=(shortcut.get("user") or {}).get("id") or "",
            thread=message.get("thread_ts") or message.get("ts") or shortcut.get("message_ts"),
        )
        await self.transcribe(context.client, recordings[0], where, "", ())
