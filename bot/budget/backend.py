"""The seam between the budget logic and where its counters live (this process, or Redis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.budget.limits import Ask, Cap, CapState, Outcome, Rate, RateState


class BudgetBackend(Protocol):
    """Counters for rates and caps. Every method is atomic: with several processes on one
    backend, N of them never let N times a limit through."""

    name: str

    @property
    def degraded(self) -> bool:
        """Answering from a local share because the shared store is unreachable."""
        ...

    async def acquire(self, ask: Ask) -> Outcome:
        """Take everything ``ask`` needs, or nothing: Refused if a cap has no room (checked
        first: waiting would not help), else Wait if a rate has no room (``seconds`` is
        ``math.inf`` when the amount exceeds the rate's limit itself), else Granted."""
        ...

    async def adjust(
        self, rates: Sequence[tuple[Rate, int]], caps: Sequence[tuple[Cap, str, int]]
    ) -> None:
        """Take ``amount`` more from each (negative: give back); caps in the given window."""
        ...

    async def learn(self, rate: Rate, limit: int, remaining: int) -> None:
        """The provider said this bucket really holds ``limit`` and has ``remaining`` left."""
        ...

    async def block(self, rates: Sequence[Rate], seconds: float) -> None:
        """Nothing passes these buckets for ``seconds`` (after a 429: the model backs off)."""
        ...

    async def claim(self, name: str, seconds: float) -> bool:
        """True for the first caller in ``seconds`` across every process sharing this
        backend: one admin alert, not one per replica."""
        ...

    async def rate_state(self, rate: Rate) -> RateState: ...

    async def cap_state(self, cap: Cap) -> CapState: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...
