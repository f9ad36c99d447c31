"""Group commit: writes that arrive while one is under way share the next transaction.

A burst of chat events makes hundreds of small writes at once. One transaction each means a
commit (an fsync on SQLite) each and, on SQLite, every connection fighting for its single
writer lock through the busy handler's sleeps: at 300 events a second that took longer than
the events kept coming. Grouped, a burst costs a handful of commits, and each caller still
waits until its own item is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupWriter(Generic[T, R]):
    """Calls ``write`` with up to ``max_batch`` items at a time, one call at a time.

    ``write`` returns one result per item, in order; if it raises, every caller in that group
    gets the exception (the next group is still tried). If it raises ``split_on`` (one item
    the database refuses fails the whole statement), each item is written again on its own, so
    that only that item's caller gets the error.
    """

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int,
        split_on: type[Exception] | None = None,
    ):
        self._write = write
        self.max_batch = max_batch
        self._split_on = split_on
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._run())
        # Shielded: a caller that gives up does not cancel the write of the others' items.
        return await asyncio.shield(done)

    async def _run(self) -> None:
        while self._pending:
            group = self._pending[: self.max_batch]
            self._pending = self._pending[self.max_batch :]
            try:
                results = await self._write([item for item, _ in group])
            except Exception as exc:
                split = self._split_on is not None and isinstance(exc, self._split_on)
                if split and len(group) > 1:
                    await self._one_by_one(group)
                    continue
                _settle(group, exc)
                continue
            except BaseException as exc:  # shutdown: no caller may wait forever
                _settle(group, exc)
                raise
            for (_, done), result in zip(group, results, strict=True):
                if not done.done():
                    done.set_result(result)

    async def _one_by_one(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        for n, (item, done) in enumerate(group):
            try:
                (result,) = await self._write([item])
            except Exception as exc:
                _settle([(item, done)], exc)
            except BaseException as exc:
                _settle(group[n:], exc)
                raise
            else:
                if not done.done():
                    done.set_result(result)


def _settle(group: list[tuple[T, asyncio.Future[R]]], exc: BaseException) -> None:
    for _, done in group:
        if done.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            done.cancel()
        else:
            done.set_exception(exc)
