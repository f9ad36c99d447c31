"""Answer what a dead process acknowledged but never answered.

Slack and Discord hear "got it" within seconds of sending an event, long before its answer is
written, and never send it again. So each process renews the leases of the events it is working
on (``EventLog.renew``), and takes over the ones whose lease has run out: their process was
killed (kill -9, out of memory, a lost node). The adapter that took the event on in the first
place answers it again, from the payload it stored with its claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Self

from bot.errors import StoreError
from bot.store.events import EventLog, Orphan

log = logging.getLogger(__name__)

Resume = Callable[[Orphan], Awaitable[None]]

CLAIM_WAIT = 1.0
"""With ``QUOTABOT_ACK_AFTER_CLAIM``: seconds an acknowledgement waits at most for its
event's claim to be written (Slack and Discord allow 3); past that it goes anyway, and the
answer waits for the claim instead."""


async def claimed(claim: Awaitable[bool], wait: float) -> asyncio.Future[bool]:
    """Start writing an event's claim (``EventLog.first``); with a ``wait``, wait for it (at
    most that long) before the platform is told the event arrived. After that the platform
    sends the event no more, and only the claim brings it to another process if this one
    dies; without a wait the acknowledgement never waits for the database, and an event
    acknowledged just before a crash, its claim not yet written, is lost. Await the result
    for whether this process answers the event."""
    future = asyncio.ensure_future(claim)
    if wait > 0:
        await asyncio.wait({future}, timeout=wait)
    return future


class Takeover:
    """Every ``lease / 3`` seconds: renew this process's leases, then take over and answer
    expired ones (for the platforms registered with ``on``).

    A lease also runs out when its process is alive but could not reach the database to renew
    it (a database restart): taking such an event over would answer it twice. So nothing is
    taken over until this process has reached the database for ``wait`` seconds (a lease, by
    default) without a failure: every live process has renewed its leases, or written its
    events done, by then.
    """

    BATCH = 100
    """Events taken over per transaction."""
    MOST = 1000
    """Events taken over per round at most (the rest in the next): their answers wait for
    turns like any other (``QUOTABOT_CONCURRENT_ANSWERS``)."""

    def __init__(self, events: EventLog, *, wait: float | None = None):
        self.events = events
        self.every = events.lease.total_seconds() / 3
        self.wait = events.lease.total_seconds() if wait is None else wait
        self._reachable_since: float | None = None
        self._resume: dict[str, Resume] = {}
        self._loop: asyncio.Task[None] | None = None
        self._taking = True
        self.tasks: set[asyncio.Task[None]] = set()

    def on(self, prefix: str, resume: Resume) -> None:
        """Events with keys starting with ``prefix`` are answered again by ``resume``, which
        calls ``events.done(orphan.key)`` when it is done with one."""
        self._resume[prefix] = resume

    def start(self) -> None:
        if self.events.takes_over and self._loop is None:
            self._loop = asyncio.get_running_loop().create_task(self._run())

    def stop_taking(self) -> None:
        """Shutting down: take nothing more over, but keep renewing what is still under way
        (else another process would answer it a second time)."""
        self._taking = False

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None

    async def tick(self) -> list[Orphan]:
        """One round; returns the events taken over (their answers run as tasks)."""
        now = asyncio.get_running_loop().time()
        try:
            await self.events.renew()
            if self._reachable_since is None:
                self._reachable_since = now
            if not self._taking or not self._resume:
                return []
            # Never claimed, so nobody else can be answering them: no need to wait.
            orphans = await self.events.recover(tuple(self._resume))
            if now - self._reachable_since < self.wait:
                return self._answer_all(orphans)
            while len(orphans) < self.MOST:  # a dead replica may have left hundreds
                batch = await self.events.orphans(tuple(self._resume), limit=self.BATCH)
                orphans += batch
                if len(batch) < self.BATCH:
                    break
        except StoreError:
            self._reachable_since = None
            raise
        return self._answer_all(orphans)

    def _answer_all(self, orphans: list[Orphan]) -> list[Orphan]:
        for orphan in orphans:
            log.warning(
                "taking over event %s from a process that stopped (%s)",
                orphan.key,
                f"attempt {orphan.attempts}" if orphan.attempts else "acknowledged, not claimed",
            )
            resume = next(r for p, r in self._resume.items() if orphan.key.startswith(p))
            task = asyncio.get_running_loop().create_task(self._answer(resume, orphan))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return orphans

    async def _answer(self, resume: Resume, orphan: Orphan) -> None:
        try:
            await resume(orphan)
        except Exception:
            log.exception("could not answer event %s taken over", orphan.key)
        finally:
            await self.events.done(orphan.key)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.tick()
            except StoreError as exc:
                log.warning("%s", exc)
            except Exception:
                log.exception("taking over events failed")
