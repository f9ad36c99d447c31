"""How many chat events one process works on at once, and who goes next when it is full.

Acknowledging an event is cheap; answering it is not (a placeholder, token counting, the
budget, the provider call, the edits). When events come faster than the provider can answer,
starting work on all of them only fills the event loop, and then the acknowledgements that
Slack wants within 3 seconds wait behind work that cannot go faster anyway. So a process
works on at most ``limit`` events at once; the others wait here, before any work is done for
them, and take turns one channel after another (round robin), so that one busy channel cannot
hold every turn. A request that has to wait for budget gives its turn back: the budget's own
fair queue keeps it, with its position told to the user.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class Turn:
    """One event's right to be worked on; given back once (more calls do nothing)."""

    def __init__(self, admission: Admission):
        self._admission = admission
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._admission._release()


class Admission:
    def __init__(self, limit: int | None = None):
        """``limit``: events worked on at once; None for no limit."""
        self.limit = limit
        self.active = 0
        self._waiting: dict[Hashable, deque[asyncio.Future[None]]] = {}
        self._turns: deque[Hashable] = deque()
        """Keys with waiters, in the order they get their next turn."""

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    @asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[Turn]:
        """Wait for a turn (``key``: the channel), hold it for the block."""
        turn = await self.acquire(key)
        try:
            yield turn
        finally:
            turn.release()

    async def acquire(self, key: Hashable) -> Turn:
        """Wait for a turn (``key``: the channel); the caller must release it."""
        await self._wait(key)
        return Turn(self)

    async def _wait(self, key: Hashable) -> None:
        if self.limit is None or (self.active < self.limit and not self._turns):
            self.active += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.get(key)
        if queue is None:
            queue = self._waiting[key] = deque()
            self._turns.append(key)
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the turn was handed over just as we gave up: pass it on
            else:
                self._forget(key, waiter)
            raise

    def _forget(self, key: Hashable, waiter: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is None or waiter not in queue:
            return  # already passed over by _release
        queue.remove(waiter)
        if not queue:
            del self._waiting[key]
            self._turns.remove(key)

    def _release(self) -> None:
        """Hand the turn to the next channel's first waiter (the count stays), or free it."""
        while self._turns:
            key = self._turns.popleft()
            queue = self._waiting[key]
            waiter = queue.popleft()
            if queue:
                self._turns.append(key)
            else:
                del self._waiting[key]
            if not waiter.done():  # (a waiter being cancelled just now is passed over)
                waiter.set_result(None)
                return
        self.active -= 1
