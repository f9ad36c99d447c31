"""What a request must fit into: rates it can wait for, and caps that refuse it.

A :class:`Rate` is a bucket that refills continuously (``limit`` units per ``period`` seconds),
as OpenAI's own limiter does: a request that does not fit waits. A :class:`Cap` is a total per
calendar day or month (UTC): a request that does not fit is refused at once, with the time the
cap resets, because waiting hours in a chat queue helps nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, TypeVar

Unit = Literal["requests", "tokens", "usd"]
Period = Literal["day", "month"]

USD_SCALE = 10**10
"""Spend is counted in whole units of 1e-10 USD, so budgets add up exactly everywhere."""


def usd_units(amount: Decimal) -> int:
    return int((amount * USD_SCALE).to_integral_value())


def units_usd(units: int) -> Decimal:
    return Decimal(units) / USD_SCALE


@dataclass(frozen=True, slots=True)
class Rate:
    key: str
    """Unique name of the bucket, e.g. ``model:gpt-4:tpm``."""
    limit: int
    period: float
    """Seconds to refill from empty: 60 for per-minute limits, 86,400 for per-day ones."""
    unit: Unit
    label: str
    """For people: "gpt-4 tokens per minute"."""
    shared: bool = False
    """Needed by every request of the model (the provider account's limits): when it is the one
    that makes a request wait, the whole model's queue waits, not only one channel."""


@dataclass(frozen=True, slots=True)
class Cap:
    key: str
    limit: int
    """In the unit's smallest amount: requests, tokens, or 1e-10 USD."""
    period: Period
    unit: Unit
    label: str
    where: tuple[tuple[str, str], ...] = ()
    """The usage rows it counts (column, value): to rebuild it from the store when the
    counters themselves were not kept (the in-process backend after a restart)."""


@dataclass(frozen=True, slots=True)
class Ask:
    """Everything one provider call takes from the budgets, all or nothing."""

    rates: tuple[tuple[Rate, int], ...] = ()
    caps: tuple[tuple[Cap, int], ...] = ()

    def __add__(self, other: Ask) -> Ask:
        return Ask(_merge(self.rates, other.rates), _merge(self.caps, other.caps))


_T = TypeVar("_T", Rate, Cap)


def _merge(
    a: tuple[tuple[_T, int], ...], b: tuple[tuple[_T, int], ...]
) -> tuple[tuple[_T, int], ...]:
    out: dict[_T, int] = dict(a)
    for item, amount in b:
        out[item] = out.get(item, 0) + amount
    return tuple(out.items())


@dataclass(frozen=True, slots=True)
class Learned:
    """What the provider says of its own per-minute buckets for a model, each as (limit,
    remaining) or None where it said nothing (the service reads its headers)."""

    requests: tuple[int, int] | None = None
    tokens: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Granted:
    windows: tuple[str, ...] = ()
    """The calendar window each cap was charged in (same order as ``Ask.caps``), so that a
    refund after midnight goes back to the day it was taken from."""


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float
    rate: Rate
    """The bucket with the longest wait: once it has room, the others have too."""


@dataclass(frozen=True, slots=True)
class Refused:
    cap: Cap
    used: int
    resets_at: datetime


Outcome = Granted | Wait | Refused


def window(period: Period, at: datetime) -> str:
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d") if period == "day" else at.strftime("%Y-%m")


def window_start(period: Period, at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, at.day if period == "day" else 1, tzinfo=UTC)


def window_end(period: Period, at: datetime) -> datetime:
    at = at.astimezone(UTC)
    day = datetime(at.year, at.month, at.day, tzinfo=UTC)
    if period == "day":
        return day + timedelta(days=1)
    return datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RateState:
    limit: int
    level: float
    blocked_for: float


@dataclass(frozen=True, slots=True)
class CapState:
    limit: int
    used: int
    resets_at: datetime
