"""What the sandbox serves and how strict it is, in one frozen object."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.catalog import Catalog

FAULT_KINDS = ("500", "503", "drop")


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """Limits apply per model, as OpenAI's do; None switches a limit off.

    ``clock`` drives the rate-limit buckets and the prompt cache's expiry only, so tests can
    move time without sleeping.
    """

    rpm: int | None = 60
    tpm: int | None = 150_000
    rpd: int | None = 6_000
    quota_tokens: int | None = None
    audio_rpm: int | None = None
    """Requests per minute of each transcription model; None: the catalog's (3 on the free
    tier, as OpenAI's Whisper)."""
    audio_rpd: int | None = None
    api_key: str | None = field(default=None, repr=False)
    require_key: bool = True
    """As OpenAI: a request without a key gets 401. ``quotabot sandbox`` turns it off, so that
    a client pointed at it with no key set (OPENAI_BASE_URL alone) is answered."""
    latency: float = 0.0
    chunk_interval: float = 0.0
    """Seconds between a stream's chunks (three tokens each): 0.04 streams about 75 tokens a
    second, as hosted models do, so that a client shows the answer as it is generated. A
    whole (not streamed) answer takes as long to come."""
    reply_tokens: int | None = None
    """Every reply about this many tokens (a benchmark's fixed length); None: 20 to 80, picked
    by the request's hash."""
    failure_rate: float = 0.0
    failures: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    catalog: Catalog = field(default_factory=Catalog.build, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "rpd", "quota_tokens", "audio_rpm", "audio_rpd"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, or None for no limit; got {value}")
        for name in ("latency", "chunk_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative; got {getattr(self, name)}")
        if self.reply_tokens is not None and self.reply_tokens < 1:
            raise ValueError(f"reply_tokens must be at least 1; got {self.reply_tokens}")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be between 0 and 1; got {self.failure_rate}")
        unknown = [kind for kind in self.failures if kind not in FAULT_KINDS]
        if unknown or (self.failure_rate > 0 and not self.failures):
            raise ValueError(f"failures must be chosen among {FAULT_KINDS}; got {self.failures}")
