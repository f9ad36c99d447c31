"""A voice message or audio file from chat, the same on every platform: refused early when
it cannot work, else downloaded, measured, transcribed and, when its message asks
something, answered with the transcript as context.

    Attachment (name, size, media type, how to fetch it)
        -> over 25 MB? refused before downloading -> fetch (stops at 25 MB)
        -> bot.audio.clip (format, measured length) -> Service.transcribe -> Transcript
        -> question? Service.handle(transcript + question) -> Reply

Adapters turn their platform's file objects into :class:`Attachment` and post what comes
back; nothing here knows about Slack or Discord.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

from bot import audio
from bot.budget.tickets import OnQueued
from bot.errors import AudioDownloadFailed, AudioTooLarge
from bot.messages import format_cost
from bot.models import ChatRequest, Message, Reply, Transcript, TranscriptionRequest
from bot.service import Service

Fetch = Callable[[], Awaitable[bytes]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    name: str
    media_type: str | None
    size: int | None
    """What the platform says; the real size is checked again as the bytes arrive."""
    fetch: Fetch


@dataclass(frozen=True, slots=True, kw_only=True)
class Where:
    platform: str
    workspace: str
    channel: str
    user: str
    thread: str | None = None


def audio_attachments(attachments: list[Attachment]) -> list[Attachment]:
    return [a for a in attachments if audio.looks_like_audio(a.name, a.media_type)]


async def transcribe(
    service: Service,
    attachment: Attachment,
    where: Where,
    *,
    on_queued: OnQueued | None = None,
) -> Transcript:
    """Raises AudioRejected (too large, not audio, unreadable, not downloadable) before
    anything is spent, or what Service.transcribe raises. Waits for a turn first, as an
    answer does (``QUOTABOT_CONCURRENT_ANSWERS``): a download and a provider call each."""
    if attachment.size is not None:
        audio.check_size(attachment.size)
    key = (where.platform, where.workspace, where.channel)
    async with service.admission.turn(key) as turn:
        data = await attachment.fetch()
        recording = audio.clip(attachment.name, data)
        return await service.transcribe(
            TranscriptionRequest(
                platform=where.platform,
                workspace=where.workspace,
                channel=where.channel,
                user=where.user,
                thread=where.thread,
                clip=recording,
            ),
            on_queued=on_queued,
            turn=turn,
        )


async def answer(
    service: Service,
    transcript: Transcript,
    question: str,
    where: Where,
    *,
    history: tuple[Message, ...] = (),
    on_queued: OnQueued | None = None,
) -> Reply:
    """The question asked with the voice message, answered by the channel's chat model."""
    return await service.handle(
        ChatRequest(
            platform=where.platform,
            workspace=where.workspace,
            channel=where.channel,
            user=where.user,
            thread=where.thread,
            messages=(*history, Message("user", question_prompt(transcript, question))),
        ),
        on_queued=on_queued,
    )


def question_prompt(transcript: Transcript, question: str) -> str:
    return f"Transcript of the voice message:\n\n{transcript.text}\n\n{question}"


def transcript_text(t: Transcript) -> str:
    """What the user reads: the transcript under a line with its length, cost and model."""
    minutes, seconds = divmod(t.seconds, 60)
    header = f"**Transcript** ({minutes}:{seconds:02d} · {format_cost(t.cost)} · {t.model})"
    return f"{header}\n{t.text.strip() or '_(no speech found)_'}"


async def download(
    http: httpx.AsyncClient,
    url: str,
    name: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The file's bytes, read no further than the provider's 25 MB limit (a file that
    claimed to be smaller is refused as soon as it is not). Raises AudioDownloadFailed."""
    try:
        async with http.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                raise AudioDownloadFailed(name=name, why=f"HTTP {response.status_code}")
            kind = response.headers.get("content-type", "")
            if kind.startswith("text/html"):
                # Slack answers a download without a valid token with its sign-in page.
                raise AudioDownloadFailed(name=name, why="the platform sent a web page instead")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > audio.MAX_BYTES:
                    raise AudioTooLarge(size=size, limit=audio.MAX_BYTES)
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise AudioDownloadFailed(name=name, why=type(exc).__name__) from exc
    return b"".join(chunks)
