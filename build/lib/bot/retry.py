"""When to try a failed provider call again, and after how long.

Exponential backoff with full jitter (AWS's "Exponential Backoff And Jitter"): the n-th retry
waits a random time between 0 and min(cap, base * 2**n), so that many clients that failed
together do not come back together. A server's hint (``retry-after``, ``retry-after-ms``,
``x-ratelimit-reset-*``) is a floor: never come back before the server said.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bot.errors import ProviderError, RateLimited


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_attempts: int = 5
    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, exc: ProviderError, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``; None: do not retry."""
        if not exc.retryable or attempt + 1 >= self.max_attempts:
            return None
        jitter = self.rng.uniform(0.0, min(self.cap, self.base * 2**attempt))
        hint = exc.retry_after if isinstance(exc, RateLimited) else None
        return max(jitter, hint or 0.0)
