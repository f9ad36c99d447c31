"""The one shape of everything that holds connections: ``start()``, ``aclose()``, ``async with``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)


async def finish(tasks: Iterable[asyncio.Task[Any]], grace: float | None, what: str) -> None:
    """Shutdown: let ``tasks`` finish for ``grace`` seconds (None: as long as they take),
    then cancel the rest (each says so to its user) and wait for them to end."""
    pending = list(tasks)
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=grace)
    if late:
        log.warning("stopping %d %s still under way after %s s", len(late), what, grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


class AsyncResource:
    """``async with Thing(...) as thing`` starts it and always closes it, like httpx's clients."""

    async def start(self) -> None:
        """Open what must be open before use; most resources connect lazily and need nothing."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
