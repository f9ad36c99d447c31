"""What a request must fit into: rates it can wait for, and caps that refuse it.

A :class:`Rate` is a bucket that refills continuously (``limit`` units per ``period`` seconds),
as OpenAI's own limiter does: a request that does not fit waits. A :class:`Cap` is a total per
calendar day, week (from Monday) or month in its time zone (the workspace's): a request that
does not fit is refused at once, with the time the cap resets, because waiting hours in a chat
queue helps nobody.

A window is named by its local date ("2026-12-05", "2026-W49", "2026-12"), so a cap in UTC
keeps the counters it had before zones existed. Its bounds are local midnights turned into UTC
with the zone's rules of that date: a day can last 23 or 25 hours, and zones 30 or 45 minutes
off UTC work too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

Unit = Literal["requests", "tokens", "usd"]
Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")

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
    zone: str = "UTC"
    """The IANA time zone whose days, weeks and months it counts."""


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


@lru_cache(maxsize=256)
def zone_info(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _first_day(period: Period, day: date) -> date:
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_first_day(period: Period, first: date) -> date:
    if period == "day":
        return first + timedelta(days=1)
    if period == "week":
        return first + timedelta(days=7)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _name(period: Period, first: date) -> str:
    if period == "day":
        return first.isoformat()
    if period == "week":
        year, week, _ = first.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{first:%Y-%m}"


def _midnight(day: date, zone: str) -> datetime:
    """The first instant of ``day`` in ``zone``, in the zone. Where a DST change skips
    midnight, the first instant that exists."""
    tz = zone_info(zone)
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC).astimezone(tz)


def _first_of(period: Period, at: datetime, zone: str) -> date:
    return _first_day(period, at.astimezone(zone_info(zone)).date())


def window(period: Period, at: datetime, zone: str = "UTC") -> str:
    """The name of the window holding ``at``: its counter's suffix."""
    return _name(period, _first_of(period, at, zone))


def window_start(period: Period, at: datetime, zone: str = "UTC") -> datetime:
    """When the window holding ``at`` began, in the cap's zone."""
    return _midnight(_first_of(period, at, zone), zone)


def window_end(period: Period, at: datetime, zone: str = "UTC") -> datetime:
    """When the window holding ``at`` ends (the cap resets), in the cap's zone."""
    return _midnight(_next_first_day(period, _first_of(period, at, zone)), zone)


def windows_around(period: Period, at: datetime, zone: str = "UTC") -> tuple[tuple[str, int], ...]:
    """The windows before, holding and after ``at``, as (name, end in Unix seconds).

    For Redis, whose clock is the one replicas share: the script picks the first window that
    has not ended by the server's time, so a replica whose clock is off by a little still
    charges the right one, and Lua needs no time zone rules."""
    first = _first_of(period, at, zone)
    before = _first_day(period, first - timedelta(days=1))
    after = _next_first_day(period, first)
    out = []
    for day in (before, first, after):
        out.append(
            (_name(period, day), int(_midnight(_next_first_day(period, day), zone).timestamp()))
        )
    return tuple(out)


def zone_of(at: datetime) -> str:
    """The IANA name of ``at``'s zone; UTC for UTC and for a bare offset."""
    key = getattr(at.tzinfo, "key", None)
    return key if isinstance(key, str) else "UTC"


def _named(at: datetime) -> datetime:
    """``at`` in a zone with a name: its own, or UTC for a bare offset."""
    return at if isinstance(getattr(at.tzinfo, "key", None), str) else at.astimezone(UTC)


def local_time(at: datetime) -> str:
    """``00:00 Europe/Paris``: a time as the people of its zone read it."""
    at = _named(at)
    return f"{at:%H:%M} {zone_of(at)}"


def reset_text(at: datetime) -> str:
    """``00:00 Europe/Paris on Dec 06``."""
    return f"{local_time(at)} on {_named(at):%b %d}"


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
