"""The one shape of everything that holds connections: ``start()``, ``aclose()``, ``async with``."""

from __future__ import annotations

from types import TracebackType
from typing import Self


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
