"""What the sandbox did, per model: benchmarks compare it with what the bot believes it spent."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field, fields

from bot.models import Usage

KEEP_RESPONSES = 100_000
"""Served responses kept for ``GET /sandbox/responses``; older ones are forgotten."""


@dataclass(slots=True)
class ModelStats:
    requests: int = 0
    """Requests answered with a completion (HTTP 200)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Of ``prompt_tokens``, those read from the prompt cache."""
    reasoning_tokens: int = 0
    """Of ``completion_tokens``, those a reasoning model spent thinking."""
    rate_limited: int = 0
    """Every 429: rate limits, requests too large for the TPM limit, and exhausted quota."""
    failures: int = 0
    """Faults injected: 500s, 503s and dropped connections."""
    audio_seconds: int = 0
    """Seconds of audio transcribed (billed: each file rounded up to a whole second)."""
    images: int = 0
    """Images in the prompts answered (their tokens are in ``prompt_tokens``)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: ModelStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "total_tokens": self.total_tokens}


@dataclass(frozen=True, slots=True)
class Served:
    """One completion answered, under the ``x-request-id`` its response carried."""

    request_id: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    admitted_at: float = 0.0
    """Unix time at which its tokens were taken: when the provider took the call, which a
    benchmark compares with the time its client sent it."""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(slots=True)
class SandboxStats:
    models: dict[str, ModelStats] = field(default_factory=dict)
    """Keyed by the model name as requested, so snapshots are counted apart."""
    responses: deque[Served] = field(default_factory=lambda: deque(maxlen=KEEP_RESPONSES))
    """The latest served completions, so fault tests can match each to the bot's usage row."""

    def serve(self, request_id: str, model: str, usage: Usage, *, admitted_at: float) -> None:
        stats = self.model(model)
        stats.requests += 1
        stats.prompt_tokens += usage.prompt_tokens
        stats.completion_tokens += usage.completion_tokens
        stats.cached_tokens += usage.cached_tokens
        stats.reasoning_tokens += usage.reasoning_tokens
        self.responses.append(
            Served(
                request_id,
                model,
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
                usage.reasoning_tokens,
                admitted_at,
            )
        )

    def model(self, name: str) -> ModelStats:
        return self.models.setdefault(name, ModelStats())

    @property
    def total(self) -> ModelStats:
        out = ModelStats()
        for stats in self.models.values():
            out.add(stats)
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "models": {name: s.to_json() for name, s in sorted(self.models.items())},
            "total": self.total.to_json(),
        }
