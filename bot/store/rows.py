"""One provider call as the usage store records it: what the service builds, the store writes,
and the spool keeps while the database is away."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

ANSWERED = ("ok", "stopped")
"""Outcomes of a call that answered: "stopped" is an answer its asker stopped while it
streamed (its tokens, counted from the text that came, are spent all the same). Every other
outcome names the error the call failed with."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRow:
    """What is recorded for one provider call. ``call_id`` makes the write idempotent."""

    call_id: str
    request_id: str
    created_at: datetime
    platform: str
    workspace: str
    channel: str
    user: str
    model: str
    endpoint: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal | None
    outcome: str
    cached_tokens: int = 0
    """Of ``prompt_tokens``, those read from the provider's cache."""
    reasoning_tokens: int = 0
    """Of ``completion_tokens``, a reasoning model's hidden reasoning."""
    audio_seconds: float = 0.0
    """Seconds of audio transcribed (transcription calls); 0 for everything else."""
    thread: str | None = None
    usage_estimated: bool = False
    latency_ms: int = 0
    retries: int = 0
    provider_request_id: str | None = None
    prompt_text: str | None = None
    reply_text: str | None = None
    provider: str = "default"
    """The provider that served the call (bot.provider.router)."""
