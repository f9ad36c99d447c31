"""Stopping an answer while it streams, from a button that may reach any replica.

    Chat.answer -> watch(answer): an event the stream checks after each piece
    a Stop click -> stop(answer): that event set, if the answer streams here; and a mark in
                    the event log, which the replica streaming it reads within ``poll`` s

The answer then ends where it is: what came is shown, and its tokens are recorded (outcome
"stopped"), since the provider was paid for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from bot.errors import StoreError
from bot.store.events import EventLog

log = logging.getLogger(__name__)

_PREFIX = "stop:"


class Stops:
    def __init__(self, events: EventLog, *, poll: float = 1.0):
        self.events = events
        self.poll = poll
        self._live: dict[str, asyncio.Event] = {}
        self._watcher: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watch(self, answer: str) -> Iterator[asyncio.Event]:
        """The event that says ``answer`` (a request id) is to stop, while it is answered."""
        stop = self._live.setdefault(answer, asyncio.Event())
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._read_marks())
        try:
            yield stop
        finally:
            self._live.pop(answer, None)

    async def stop(self, answer: str) -> None:
        """Stop ``answer`` wherever it streams. Raises StoreError when it does not stream
        here and the event log cannot take the mark."""
        if (here := self._live.get(answer)) is not None:
            here.set()
            return
        await self.events.first(_PREFIX + answer)

    async def _read_marks(self) -> None:
        """While answers stream here: which of them were stopped on another replica."""
        while self._live:
            await asyncio.sleep(self.poll)
            live = list(self._live)
            try:
                marked = await self.events.present(_PREFIX + a for a in live)
            except StoreError as exc:
                log.debug("could not read stop marks: %s", exc)
                continue
            for key in marked:
                if (stop := self._live.get(key.removeprefix(_PREFIX))) is not None:
                    stop.set()

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
