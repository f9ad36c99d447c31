"""Per-model token buckets that refuse and report the way OpenAI's rate limiter does.

Each limit is a bucket holding up to ``limit`` units that refills continuously (``limit`` per
minute, or per day for RPD) rather than resetting at the top of the minute: that is how OpenAI
describes its limiter, and it is what makes ``x-ratelimit-reset-*`` a duration, not a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# Float refills land a hair under whole numbers (20 s x 3/60 per s): forgive that much.
_EPSILON = 1e-9


def format_duration(seconds: float) -> str:
    """Go's duration format, which OpenAI uses: "20ms", "1s", "1.5s", "6m0s", "1h2m3s".

    Rounded up to the millisecond, so a client that waits this long is never early.
    """
    ms = max(0, math.ceil(seconds * 1000 - 1e-6))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, frac = divmod(rest, 1000)
    s = f"{secs}.{frac:03d}".rstrip("0") if frac else str(secs)
    if hours:
        return f"{hours}h{minutes}m{s}s"
    if minutes:
        return f"{minutes}m{s}s"
    return f"{s}s"


class TokenBucket:
    def __init__(self, limit: int, period: float, now: float):
        self.limit = limit
        self.rate = limit / period
        self._level = float(limit)
        self._at = now

    def level(self, now: float) -> float:
        if now > self._at:
            self._level = min(float(self.limit), self._level + (now - self._at) * self.rate)
            self._at = now
        return self._level

    def remaining(self, now: float) -> int:
        return max(0, math.floor(self.level(now) + _EPSILON))

    def wait(self, amount: int, now: float) -> float:
        """Seconds until ``amount`` fits; 0 when it fits now."""
        missing = amount - self.level(now) - _EPSILON
        return max(0.0, missing / self.rate)

    def until_full(self, now: float) -> float:
        return max(0.0, (self.limit - self.level(now) - _EPSILON) / self.rate)

    def take(self, amount: int, now: float) -> None:
        self._level = self.level(now) - amount

    def give(self, amount: int, now: float) -> None:
        self._level = min(float(self.limit), self.level(now) + amount)


@dataclass(frozen=True, slots=True)
class Kind:
    type: str
    """The error's ``type``: "requests" or "tokens"."""
    label: str
    period: float


RPM = Kind("requests", "requests per min (RPM)", 60.0)
TPM = Kind("tokens", "tokens per min (TPM)", 60.0)
RPD = Kind("requests", "requests per day (RPD)", 86_400.0)


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: Kind
    limit: int
    used: int
    requested: int
    wait: float
    """Seconds until the request would fit; 0 when it never can (bigger than the limit)."""

    @property
    def too_large(self) -> bool:
        return self.requested > self.limit


class ModelLimits:
    """The three buckets of one model. Callers check and take without awaiting in between,
    so concurrent requests on the one event loop cannot both squeeze into the last slot."""

    def __init__(
        self, *, rpm: int | None, tpm: int | None, rpd: int | None, clock: Callable[[], float]
    ):
        now = clock()
        self._clock = clock
        self.rpm = TokenBucket(rpm, RPM.period, now) if rpm else None
        self.tpm = TokenBucket(tpm, TPM.period, now) if tpm else None
        self.rpd = TokenBucket(rpd, RPD.period, now) if rpd else None

    def _costs(self, tokens: int) -> list[tuple[Kind, TokenBucket, int]]:
        out = []
        for kind, bucket, amount in (
            (RPM, self.rpm, 1),
            (RPD, self.rpd, 1),
            (TPM, self.tpm, tokens),
        ):
            if bucket is not None:
                out.append((kind, bucket, amount))
        return out

    def refusal(self, tokens: int) -> Refusal | None:
        """Why a request costing ``tokens`` cannot run now, or None if it fits.

        A request bigger than the TPM limit is refused as such first: waiting would not help.
        Otherwise, of the limits that refuse, the one with the longest wait is reported, so the
        retry-after a client obeys is enough for every limit.
        """
        now = self._clock()
        if self.tpm is not None and tokens > self.tpm.limit:
            return Refusal(TPM, self.tpm.limit, 0, tokens, 0.0)
        worst: Refusal | None = None
        for kind, bucket, amount in self._costs(tokens):
            wait = bucket.wait(amount, now)
            if wait > 0 and (worst is None or wait > worst.wait):
                used = bucket.limit - bucket.remaining(now)
                worst = Refusal(kind, bucket.limit, used, amount, wait)
        return worst

    def take(self, tokens: int) -> None:
        now = self._clock()
        for _, bucket, amount in self._costs(tokens):
            bucket.take(amount, now)

    def refund_tokens(self, tokens: int) -> None:
        if self.tpm is not None and tokens > 0:
            self.tpm.give(tokens, self._clock())

    def headers(self) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers; RPD has none, as at OpenAI."""
        now = self._clock()
        out = {}
        for name, bucket in (("requests", self.rpm), ("tokens", self.tpm)):
            if bucket is not None:
                out[f"x-ratelimit-limit-{name}"] = str(bucket.limit)
                out[f"x-ratelimit-remaining-{name}"] = str(bucket.remaining(now))
                out[f"x-ratelimit-reset-{name}"] = format_duration(bucket.until_full(now))
        return out


class Limiter:
    """Every model gets its own buckets, made at its first request."""

    def __init__(
        self, *, rpm: int | None, tpm: int | None, rpd: int | None, clock: Callable[[], float]
    ):
        self._limits = {"rpm": rpm, "tpm": tpm, "rpd": rpd}
        self._clock = clock
        self._models: dict[str, ModelLimits] = {}

    def for_model(
        self, name: str, *, rpm: int | None = None, rpd: int | None = None
    ) -> ModelLimits:
        """``rpm``/``rpd`` given: the model's own request limits and no TPM (transcription
        models), instead of the sandbox-wide ones."""
        if name not in self._models:
            limits = (
                self._limits
                if rpm is None and rpd is None
                else {"rpm": rpm, "tpm": None, "rpd": rpd}
            )
            self._models[name] = ModelLimits(**limits, clock=self._clock)
        return self._models[name]

    def headers(self, name: str | None) -> dict[str, str]:
        """Headers for ``name``'s buckets; a model never used (or none) has full ones."""
        limits = self._models.get(name) if name is not None else None
        return (limits or ModelLimits(**self._limits, clock=self._clock)).headers()
