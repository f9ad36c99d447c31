"""What the budget hands out: reservations (tickets), batches of them, and the queue's news.

A :class:`Ticket` is settled or released exactly once; a :class:`Batch` is several
legacy-completions requests that leave as one provider call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.budget.limits import Ask, Rate
from bot.catalog import ModelInfo


@dataclass(frozen=True, slots=True)
class QueueInfo:
    model: str
    position: int
    """1 means next in line."""
    wait: float
    """Estimated seconds until the request is sent."""


OnQueued = Callable[[QueueInfo], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Standing:
    """One limit and how much of it is used now."""

    label: str
    unit: str
    used: float | int | Decimal
    limit: float | int | Decimal
    resets_at: datetime | None
    """For caps; rates refill continuously."""

    @property
    def share(self) -> float:
        return float(self.used) / float(self.limit) if self.limit else 0.0


@dataclass(eq=False)
class Batch:
    """Several legacy-completions requests sent as one call with an array ``prompt``; its
    first member makes the call and sets ``result`` (the provider's answer) for the others."""

    prompts: list[str]
    result: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    sent_at: float | None = None
    tickets: list[Ticket] = field(default_factory=list)
    """Its members' tickets: they leave together, with the first member's call."""


@dataclass(eq=False)
class Ticket:
    """A reservation: what this request took, to be settled or released exactly once."""

    model: ModelInfo
    ask: Ask
    windows: dict[str, str]
    batch: Batch | None = None
    index: int = 0
    """This request's prompt and choice index in ``batch``."""
    done: bool = False
    sent_at: float | None = None
    """Real time (not the budget's clock): compared with when the provider's headers came."""
    _on_sent: Callable[[Ticket], None] | None = field(default=None, repr=False)

    def sending(self) -> None:
        """Called as the call leaves for the provider (a batch leaves once, for all)."""
        now = time.monotonic()
        if self.batch is not None:
            self.batch.sent_at = now
        for ticket in self.batch.tickets if self.batch is not None else [self]:
            if ticket.sent_at is None:
                ticket.sent_at = now
                if ticket._on_sent is not None:
                    ticket._on_sent(ticket)

    def shared(self) -> Iterator[tuple[str, int]]:
        """What it holds of its model's account-wide buckets, by bucket."""
        return ((rate.key, amount) for rate, amount in self.ask.rates if rate.shared)


def shared_requests(rate: Rate) -> bool:
    return rate.shared and rate.unit == "requests"


def without_shared_requests(ask: Ask) -> Ask:
    """A batch is one provider request: only its first member counts it."""
    return Ask(tuple((r, a) for r, a in ask.rates if not shared_requests(r)), ask.caps)
