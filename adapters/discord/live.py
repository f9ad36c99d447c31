"""An answer shown in Discord as it is generated, in as many messages as it needs.

    delta -> Live.add: the text so far; a background task shows it, cut into messages
             (bot.chat.split), the last one marked " …", each message edited at most once
             per ``interval`` (intermediate states skipped)
    finish -> Live.finish: previews stopped, the final pieces written where they differ

The model's stream never waits for Discord: ``add`` only wakes the task. Discord allows about
five message edits per five seconds in a channel; the REST clients honour its buckets, and
the interval keeps one answer from using them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Protocol

from adapters.discord.texts import from_core
from bot.chat.split import split

log = logging.getLogger(__name__)

MARKER = " …"
"""After the text so far: more is coming."""


class Pages(Protocol):
    async def show(self, index: int, text: str) -> None:
        """Message ``index`` of the answer (0: the first) made to read ``text``: edited if it
        is there already, else posted after the one before."""


class Live:
    def __init__(
        self, pages: Pages, *, interval: float, limit: int, until: float = math.inf
    ) -> None:
        """``until``: loop time after which nothing more is shown while streaming (a token
        that expires)."""
        self.pages, self.interval, self.limit, self.until = pages, interval, limit, until
        self.text = ""
        self.shown: list[str] = []
        """What each message reads, as far as this answer made it."""
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last = -math.inf

    def add(self, delta: str) -> None:
        self.text += delta
        self._wake.set()
        if self._task is None and not self._stopped.is_set():
            self._task = asyncio.get_running_loop().create_task(self._pump())

    def preview(self) -> list[str]:
        pieces = split(from_core(self.text), self.limit)
        if len(pieces[-1]) + len(MARKER) <= self.limit:
            pieces[-1] += MARKER
        return pieces

    async def stop(self) -> None:
        """No more previews; the one under way, if any, is let finish."""
        self._stopped.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def finish(
        self, pieces: list[str], *, deadline: float = math.inf, note: str = ""
    ) -> None:
        """The final ``pieces``, each written where the message does not read it yet, at once:
        the answer is done, and Discord's buckets (which the REST clients honour) allow an
        edit sooner than ``interval`` after a preview. Past ``deadline``, a message after the
        first reads ``note`` instead, and nothing follows it."""
        await self.stop()
        loop = asyncio.get_running_loop()
        for index, piece in enumerate(pieces):
            cut = index > 0 and loop.time() >= deadline
            await self._show(index, note if cut else piece)
            if cut:
                return

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped.is_set():
            await self._wake.wait()
            if (wait := self._last + self.interval - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), wait)
            if self._stopped.is_set() or loop.time() >= self.until:
                return
            self._wake.clear()
            self._last = loop.time()
            try:
                for index, piece in enumerate(self.preview()):
                    if piece.strip() != MARKER.strip():
                        await self._show(index, piece)
            except Exception as exc:  # a preview lost is no failure: the final text follows
                log.warning("could not show the answer so far: %s", exc)

    async def _show(self, index: int, text: str) -> None:
        if index < len(self.shown) and self.shown[index] == text:
            return
        await self.pages.show(index, text)
        if index < len(self.shown):
            self.shown[index] = text
        else:
            self.shown.append(text)
