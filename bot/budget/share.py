"""This process's share of a shared budget: what :class:`~bot.budget.redis.RedisBackend`
answers from while Redis is unreachable.

Every limit is divided by the number of replicas (limit // N, at least 1) and counted in an
in-process :class:`~bot.budget.memory.MemoryBackend`, so that N replicas cut off from Redis
together still let about one limit through, not N. Cap charges made here were spent for real:
they are kept until Redis returns and they are added to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from bot.budget.limits import Ask, Cap, CapState, Outcome, Rate, RateState, Refused, Wait
from bot.budget.memory import MemoryBackend

Charge = tuple[Cap, str, int]
"""A cap, its window, and the amount taken from it."""


class LocalShare:
    def __init__(self, replicas: Callable[[], int]):
        """``replicas`` says, on each call, how many processes share the limits."""
        self._replicas = replicas
        self._memory = MemoryBackend()
        self._unsynced: dict[tuple[str, str], tuple[Cap, int]] = {}
        """Cap charges by (cap key, window), not yet added to Redis."""

    def rate(self, rate: Rate) -> Rate:
        return replace(rate, limit=max(1, rate.limit // self._replicas()))

    def cap(self, cap: Cap) -> Cap:
        return replace(cap, limit=max(1, cap.limit // self._replicas()))

    async def acquire(self, ask: Ask) -> Outcome:
        local = Ask(
            tuple((self.rate(r), n) for r, n in ask.rates),
            tuple((self.cap(c), n) for c, n in ask.caps),
        )
        out = await self._memory.acquire(local)
        # Name the caller's Rate and Cap, not the scaled copies.
        if isinstance(out, Wait):
            return Wait(out.seconds, next(r for r, _ in ask.rates if r.key == out.rate.key))
        if isinstance(out, Refused):
            cap = next(c for c, _ in ask.caps if c.key == out.cap.key)
            return Refused(cap, out.used, out.resets_at)
        for (cap, amount), w in zip(ask.caps, out.windows, strict=True):
            self._note(cap, w, amount)
        return out

    async def adjust(self, rates: Sequence[tuple[Rate, int]], caps: Sequence[Charge]) -> None:
        await self._memory.adjust(
            [(self.rate(r), n) for r, n in rates],
            [(self.cap(c), w, n) for c, w, n in caps],
        )
        for cap, w, amount in caps:
            self._note(cap, w, amount)

    async def learn(self, rate: Rate, limit: int, remaining: int) -> None:
        n = self._replicas()
        await self._memory.learn(self.rate(rate), max(1, limit // n), remaining // n)

    async def block(self, rates: Sequence[Rate], seconds: float) -> None:
        await self._memory.block([self.rate(r) for r in rates], seconds)

    async def claim(self, name: str, seconds: float) -> bool:
        return await self._memory.claim(name, seconds)

    async def rate_state(self, rate: Rate) -> RateState:
        return await self._memory.rate_state(self.rate(rate))

    async def cap_state(self, cap: Cap) -> CapState:
        return await self._memory.cap_state(self.cap(cap))

    def take_charges(self) -> list[Charge]:
        """The cap charges not yet in Redis, forgotten here: ``put_back`` them if adding
        them to Redis fails."""
        pending, self._unsynced = self._unsynced, {}
        return [(cap, w, n) for (_, w), (cap, n) in pending.items()]

    def put_back(self, charges: Sequence[Charge]) -> None:
        for cap, w, amount in charges:
            self._note(cap, w, amount)

    def _note(self, cap: Cap, window: str, amount: int) -> None:
        _, before = self._unsynced.get((cap.key, window), (cap, 0))
        self._unsynced[cap.key, window] = (cap, before + amount)
