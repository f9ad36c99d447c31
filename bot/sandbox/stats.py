"""What the sandbox did, per model: benchmarks compare it with what the bot believes it spent."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(slots=True)
class ModelStats:
    requests: int = 0
    """Requests answered with a completion (HTTP 200)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rate_limited: int = 0
    """Every 429: rate limits, requests too large for the TPM limit, and exhausted quota."""
    failures: int = 0
    """Faults injected: 500s, 503s and dropped connections."""
    audio_seconds: int = 0
    """Seconds of audio transcribed (billed: each file rounded up to a whole second)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: ModelStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "total_tokens": self.total_tokens}


@dataclass(slots=True)
class SandboxStats:
    models: dict[str, ModelStats] = field(default_factory=dict)
    """Keyed by the model name as requested, so snapshots are counted apart."""

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
