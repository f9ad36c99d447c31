"""Budgets in this process: the default, for one quotabot process on its own."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.budget.limits import (
    Ask,
    Cap,
    CapState,
    Granted,
    Outcome,
    Rate,
    RateState,
    Refused,
    Wait,
    window,
    window_end,
)
from bot.lifecycle import AsyncResource

# Float refills land a hair under whole numbers: forgive that much.
_EPSILON = 1e-9


@dataclass(slots=True)
class _Bucket:
    level: float
    at: float
    learned: int | None = None
    blocked_until: float = 0.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MemoryBackend(AsyncResource):
    name = "memory"
    degraded = False
    """Nothing shared to lose."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = _utcnow,
    ):
        self._clock = clock
        self._wallclock = wallclock
        self._buckets: dict[str, _Bucket] = {}
        self._used: dict[tuple[str, str], int] = {}
        self._claims: dict[str, float] = {}

    def _bucket(self, rate: Rate, now: float) -> _Bucket:
        b = self._buckets.get(rate.key)
        if b is None:
            b = self._buckets[rate.key] = _Bucket(level=float(rate.limit), at=now)
        limit = b.learned or rate.limit
        if now > b.at:
            b.level = min(float(limit), b.level + (now - b.at) * limit / rate.period)
            b.at = now
        return b

    async def acquire(self, ask: Ask) -> Outcome:
        now, wall = self._clock(), self._wallclock()
        windows = []
        for cap, amount in ask.caps:
            w = window(cap.period, wall, cap.zone)
            used = self._used.get((cap.key, w), 0)
            if used + amount > cap.limit:
                return Refused(cap, used, window_end(cap.period, wall, cap.zone))
            windows.append(w)
        longest: Wait | None = None
        for rate, amount in ask.rates:
            b = self._bucket(rate, now)
            limit = b.learned or rate.limit
            if amount > limit:
                seconds = math.inf
            else:
                seconds = max(
                    b.blocked_until - now, (amount - b.level - _EPSILON) * rate.period / limit
                )
            if seconds > 0 and (longest is None or seconds > longest.seconds):
                longest = Wait(seconds, rate)
        if longest is not None:
            return longest
        for rate, amount in ask.rates:
            self._buckets[rate.key].level -= amount
        for (cap, amount), w in zip(ask.caps, windows, strict=True):
            self._used[cap.key, w] = self._used.get((cap.key, w), 0) + amount
        return Granted(tuple(windows))

    async def adjust(
        self, rates: Sequence[tuple[Rate, int]], caps: Sequence[tuple[Cap, str, int]]
    ) -> None:
        now = self._clock()
        for rate, amount in rates:
            b = self._bucket(rate, now)
            b.level = min(float(b.learned or rate.limit), b.level - amount)
        for cap, w, amount in caps:
            self._used[cap.key, w] = max(0, self._used.get((cap.key, w), 0) + amount)

    async def learn(self, rate: Rate, limit: int, remaining: int) -> None:
        b = self._bucket(rate, self._clock())
        old = b.learned or rate.limit
        b.learned = limit
        if limit > old:
            b.level += limit - old  # the room we did not know about
        b.level = min(b.level, float(remaining), float(limit))

    async def block(self, rates: Sequence[Rate], seconds: float) -> None:
        now = self._clock()
        for rate in rates:
            b = self._bucket(rate, now)
            b.blocked_until = max(b.blocked_until, now + seconds)

    async def claim(self, name: str, seconds: float) -> bool:
        now = self._clock()
        if self._claims.get(name, -math.inf) > now:
            return False
        self._claims[name] = now + seconds
        return True

    async def rate_state(self, rate: Rate) -> RateState:
        now = self._clock()
        b = self._bucket(rate, now)
        return RateState(b.learned or rate.limit, b.level, max(0.0, b.blocked_until - now))

    async def cap_state(self, cap: Cap) -> CapState:
        wall = self._wallclock()
        used = self._used.get((cap.key, window(cap.period, wall, cap.zone)), 0)
        return CapState(cap.limit, used, window_end(cap.period, wall, cap.zone))

    async def aclose(self) -> None:
        pass
