"""Pacing: a model's account-wide buckets are handed out over a couple of seconds, not at once.

Otherwise the first channel of a burst to reach the budget takes the whole minute's quota, fair
queue or not (bot.budget.lane serves the queue).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from bot.budget.limits import Ask


class Pacer:
    """Hands out a model's account-wide buckets no faster than all of them in ``spread``
    seconds, holding at most ``burst`` (a share of each bucket) for immediate grants.

    Requests of a burst that arrive within ``spread`` then meet in the fair queue and are
    served in fair order instead of arrival order. No quota is lost: the provider's buckets
    refill from the first grant on, and ``spread`` is far shorter than their period. Small
    buckets are not paced: a request that takes over 1% of one (3 RPM, say) goes at once.
    """

    def __init__(self, spread: float, clock: Callable[[], float], *, burst: float = 0.1):
        self.burst = burst
        self.rate = 1.0 / spread if spread > 0 else math.inf
        self.clock = clock
        self.level = burst
        self._at = clock()

    def delay(self, ask: Ask) -> float:
        """Seconds until ``ask`` may go; 0 when it may go now."""
        self._refill()
        missing = self._share(ask) - self.level
        return 0.0 if missing <= 0 or math.isinf(self.rate) else missing / self.rate

    def take(self, ask: Ask) -> None:
        self._refill()
        self.level -= self._share(ask)

    def try_take(self, ask: Ask) -> bool:
        """Take ``ask``'s share if it may go now. (Taken before the backend is asked: many
        requests check at once while the backend's answer is awaited.)"""
        if self.delay(ask):
            return False
        self.take(ask)
        return True

    def give_back(self, ask: Ask) -> None:
        self.level += self._share(ask)

    def full(self) -> bool:
        """No burst under way: nothing was granted for a while."""
        self._refill()
        return self.level >= self.burst

    def _share(self, ask: Ask) -> float:
        shares = (amount / rate.limit for rate, amount in ask.rates if rate.shared and rate.limit)
        share = max(shares, default=0.0)
        return 0.0 if share > self.burst / 10 else share

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self._at) * self.rate)
        self._at = now
