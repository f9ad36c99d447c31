"""Answer-once claims: each chat event is answered by one process, once, whatever happens.

    platform event -> Kind.key(ids) -> hold (local journal, before the ack) -> first() claims it
        -> won: answer, then done()          lost: a retry, a twin event, another replica's
        -> this process dies first: its lease runs out and bot.takeover hands the stored
           payload to the resumer registered for the key's Kind (ChatAdapter.resumers)

A key's format is defined once, by its :class:`Kind`: adapters build keys and register
resumers through the same object, so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.errors import StoreError
from bot.store.events import EventLog
from bot.takeover import claimed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of claimed event, e.g. ``Kind("discord:message:")``; keys are its prefix and
    the event's ids, joined by colons."""

    prefix: str

    def key(self, *ids: str) -> str:
        return self.prefix + ":".join(ids)


class Claims:
    def __init__(self, events: EventLog):
        self.events = events

    def hold(self, key: str, payload: dict[str, Any]) -> None:
        """Keep the event on local disk until it is claimed: written before the ack."""
        self.events.hold(key, payload)

    async def first(self, key: str, payload: dict[str, Any] | None = None) -> bool:
        """Whether this event is new, in any replica. If the database cannot say, answer
        anyway: the event was acknowledged, and a rare second answer is better than none.
        With ``payload``, kept until done, for another process to answer if this one dies."""
        try:
            return await self.events.first(key, payload)
        except StoreError as exc:
            log.warning("could not check event %s for repeats, answering it anyway: %s", key, exc)
            return True

    async def at_ack(self, key: str, payload: dict[str, Any]) -> asyncio.Future[bool]:
        """Claim as the platform is acknowledged (waiting for the claim first only with
        ``QUOTABOT_ACK_AFTER_CLAIM``): await the result for whether to answer."""
        self.hold(key, payload)
        return await claimed(self.first(key, payload), self.events.ack_wait)

    async def once(
        self, key: str, claim: Awaitable[bool], answer: Callable[[], Awaitable[None]]
    ) -> None:
        """``answer()`` if this process won the ``claim``; then the event is done (nobody is
        to take it over)."""
        if not await claim:
            return
        try:
            await answer()
        finally:
            await self.events.done(key)

    async def done(self, key: str) -> None:
        await self.events.done(key)
