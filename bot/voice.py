"""A voice message or audio file from chat, the same on every platform: refused early when
it cannot work, else downloaded, measured, transcribed and, when its message asks
something, answered with the transcript as context.

    Attachment (name, size, media type, stated length, how to fetch it)
        -> over 25 MB? a cap with no room, a channel switched off? refused before downloading
        -> fetch into a temporary file (bot.downloads: the platform's hosts, 25 MB at most)
        -> bot.audio.clip (format, measured length) -> Service.transcribe -> Transcript
        -> question? Service.handle(transcript + question) -> Reply

Adapters turn their platform's file objects into :class:`Attachment` and post what comes
back; nothing here knows about Slack or Discord. The temporary file (in ``TMPDIR``) is
deleted once the transcript is back, whatever happened.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bot import audio
from bot.budget.policy import Who
from bot.budget.tickets import OnQueued
from bot.messages import format_cost
from bot.models import ChatRequest, Message, Reply, Transcript, TranscriptionRequest
from bot.service import Service

Fetch = Callable[[IO[bytes]], Awaitable[object]]
"""Writes the file's bytes into the file object it is given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    name: str
    media_type: str | None
    size: int | None
    """What the platform says; the real size is checked again as the bytes arrive."""
    fetch: Fetch
    seconds: float | None = None
    """The length the platform states (Discord's voice messages carry one): only for the
    budget's check before the download. What is reserved and billed is measured."""


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
    anything is spent, or what Service.transcribe raises: a recording the budget would refuse
    anyway (Service.check_transcription) is refused before it is downloaded. Waits for a
    turn first, as an answer does (``QUOTABOT_CONCURRENT_ANSWERS``): a download and a
    provider call each."""
    if attachment.size is not None:
        audio.check_size(attachment.size)
    who = Who(where.platform, where.workspace, where.channel, where.user)
    await service.check_transcription(who, seconds=attachment.seconds)
    key = (where.platform, where.workspace, where.channel)
    async with service.admission.turn(key) as turn:
        with tempfile.NamedTemporaryFile(prefix="quotabot-audio-") as file:
            await attachment.fetch(file)
            file.flush()
            recording = await asyncio.to_thread(audio.clip, attachment.name, Path(file.name))
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
