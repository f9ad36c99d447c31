"""The core: one chat request in, one reply out, with its usage recorded.

    adapter -> Service.handle(request) -> budget -> the model's provider -> usage store -> Reply
    adapter -> Service.transcribe(request) -> the same budget, provider and store -> Transcript

Adapters call :class:`Service`; they never talk to the provider or the store directly.
quotabot owns every retry: the provider client sends each call exactly once.

    core.py           Service: what the adapters call; builds a job, runs it, counts it
    prepare.py        a chat request's channel settings, allowed model, trimmed context
    attempts.py       the one budgeted attempt loop: acquire, call, settle, record, retry
    chat.py           ChatJob: chat, streamed chat, legacy completions alone or batched
    transcription.py  TranscriptionJob: a recording, reserved at its length's price
    rows.py           the usage row of each call, and storing it without failing the reply
"""

from __future__ import annotations

from bot.service.core import Service

__all__ = ["Service"]
