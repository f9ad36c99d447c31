"""Local days as UTC ranges: the digest's day is the workspace's, daylight saving included.

A local day is [local midnight, next local midnight) turned into UTC with the zone's rules of
that date, so a day can be 23 or 25 hours long, and zones 30 or 45 minutes off UTC work too.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``zone``, in UTC. Where a DST change skips midnight (a
    few zones switch at 00:00), the offset from before the gap maps it to the instant of the
    change, which is where the previous day ends: days stay contiguous."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def day_range(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return midnight(day, zone), midnight(day + timedelta(days=1), zone)


def day_bounds(first: date, days: int, zone: ZoneInfo) -> list[datetime]:
    """``days + 1`` UTC instants: the starts of ``first`` .. ``first + days`` (exclusive end)."""
    return [midnight(first + timedelta(days=n), zone) for n in range(days + 1)]


def month_start(day: date) -> date:
    return day.replace(day=1)


def days_in_month(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def local_today(zone: ZoneInfo, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(zone).date()


def utc_day_of(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar day that overlaps [start, end) the most (the provider bills UTC days)."""
    mid = start + (end - start) / 2
    first = datetime(mid.year, mid.month, mid.day, tzinfo=UTC)
    return first, first + timedelta(days=1)


def period_start(day: date, period: str) -> date:
    """The first day of the day, week (from Monday) or month that holds ``day``."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def period_days(first: date, period: str) -> int:
    return {"day": 1, "week": 7}.get(period) or days_in_month(first)


def previous_period(now_local: date, period: str) -> date:
    """The first day of the last whole period before ``now_local``: yesterday, last week, last
    month (what a report sent on ``now_local`` covers)."""
    return period_start(period_start(now_local, period) - timedelta(days=1), period)
