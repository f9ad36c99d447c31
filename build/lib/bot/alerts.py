"""Alerts for the admins: what only they can fix (billing, API keys), once, not per message."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Sink = Callable[[str], Awaitable[None]]


class Alerts:
    """Sends each kind of alert at most once per ``interval`` seconds, to every sink
    (the adapters add their admins' channels; the log always gets it)."""

    def __init__(
        self,
        *,
        interval: float = 3600.0,
        claim: Callable[[str, float], Awaitable[bool]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """``claim`` (the budget backend's) makes "once" hold across replicas too."""
        self.interval = interval
        self.clock = clock
        self.claim = claim
        self.sinks: list[Sink] = []
        self._last: dict[str, float] = {}

    async def send(self, kind: str, message: str) -> bool:
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            return False
        self._last[kind] = now
        if self.claim is not None and not await self.claim(f"alert:{kind}", self.interval):
            return False  # another replica has said it
        log.error("admin alert (%s): %s", kind, message)
        for sink in self.sinks:
            try:
                await sink(message)
            except Exception:
                log.exception("could not deliver an admin alert")
        return True
