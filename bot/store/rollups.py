"""Hourly rollups of the usage rows, kept by the database as rows are inserted, and read in
place of them.

    INSERT INTO usage -> trigger usage_rollup (migration 0004) -> usage_hourly, usage_quarter_model
    a range [start, end) -> source(...): whole hours from a rollup, partial hours from raw rows

A local day is a range of whole UTC hours in every zone that is a whole number of hours off
UTC (DST included); in zones 30 or 45 minutes off, the hour split by a boundary is read from
the raw rows instead. So figures are exact in every zone, and a query reads a number of rows
that depends on the hours asked for, not on how many calls were made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Subquery,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)

from bot.store.rows import ANSWERED
from bot.store.schema import UsageHourly, UsageQuarterModel, UsageRecord

MEASURES = (
    "requests",
    "calls",
    "failed",
    "rate_limited",
    "retried",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "unpriced",
    "audio_seconds",
    "cached_tokens",
    "reasoning_tokens",
)
_FINE_KEYS = ("platform", "workspace", "channel", "user", "model", "provider")
_COARSE_KEYS = ("platform", "workspace", "model", "provider")
HOUR = timedelta(hours=1)
QUARTER = timedelta(minutes=15)
"""Every time zone in use is a multiple of 15 minutes off UTC: local days are whole quarters."""


def floor_to(t: datetime, step: timedelta) -> datetime:
    t = t.astimezone(UTC)
    base = t.replace(minute=0, second=0, microsecond=0)
    return base + step * ((t - base) // step)


def ceil_to(t: datetime, step: timedelta) -> datetime:
    f = floor_to(t, step)
    return f if f == t else f + step


def source(
    start: datetime,
    end: datetime,
    *,
    fine: bool,
    cuts: Sequence[datetime] = (),
    where: Sequence[tuple[str, str]] = (),
) -> Subquery:
    """Usage in [start, end) as rows of (ts, platform, workspace, [channel, user,] model,
    measures...): rollup slots where they fit, raw rows in the slots that ``start``, ``end`` or
    a ``cut`` splits. Group and sum over it; ``ts`` tells into which range between cuts a row
    falls. ``fine``: per channel and user, hourly; else per model, by quarter hour (so local
    days never split a slot)."""
    table: Any = UsageHourly if fine else UsageQuarterModel
    column = table.hour if fine else table.slot
    step = HOUR if fine else QUARTER
    keys = _FINE_KEYS if fine else _COARSE_KEYS
    lo, hi = ceil_to(start, step), floor_to(end, step)
    split = sorted({floor_to(c, step) for c in cuts if floor_to(c, step) != c and start < c < end})
    raw_ranges: list[tuple[datetime, datetime]] = []
    if lo > hi:  # within one slot
        raw_ranges.append((start, end))
    else:
        if start < lo:
            raw_ranges.append((start, lo))
        if hi < end:
            raw_ranges.append((hi, end))
    raw_ranges += [(h, h + step) for h in split if lo <= h < hi]

    rolled = _rolled(table, column, keys, lo, hi, split, where)
    if not raw_ranges:
        subquery: Subquery = rolled.subquery()
        return subquery
    return union_all(rolled, *(_raw(keys, [r], where) for r in raw_ranges)).subquery()


def raw_source(
    start: datetime, end: datetime, *, fine: bool, where: Sequence[tuple[str, str]] = ()
) -> Subquery:
    """The same rows from the raw usage rows only: what a naive query reads (the benchmark's
    baseline, and a check of the rollups in the tests)."""
    keys = _FINE_KEYS if fine else _COARSE_KEYS
    subquery: Subquery = _raw(keys, [(start, end)], where).subquery()
    return subquery


def _rolled(
    table: Any,
    column: Any,
    keys: Sequence[str],
    lo: datetime,
    hi: datetime,
    split: Sequence[datetime],
    where: Sequence[tuple[str, str]],
) -> Any:
    return select(
        column.label("ts"),
        *(getattr(table, k).label(k) for k in keys),
        *(getattr(table, m).label(m) for m in MEASURES),
    ).where(
        *(getattr(table, c) == v for c, v in where),
        column >= lo,
        column < hi,
        column.not_in(split) if split else true(),
    )


def _raw(
    keys: Sequence[str],
    ranges: Sequence[tuple[datetime, datetime]],
    where: Sequence[tuple[str, str]],
) -> Any:
    ok = UsageRecord.outcome.in_(ANSWERED)
    return select(
        UsageRecord.created_at.label("ts"),
        *(getattr(UsageRecord, k).label(k) for k in keys),
        _flag(ok).label("requests"),
        literal(1).label("calls"),
        _flag(~ok).label("failed"),
        _flag(UsageRecord.outcome == "RateLimited").label("rate_limited"),
        _flag(UsageRecord.retries > 0).label("retried"),
        UsageRecord.prompt_tokens.label("prompt_tokens"),
        UsageRecord.completion_tokens.label("completion_tokens"),
        func.coalesce(UsageRecord.cost, 0).label("cost"),
        _flag(ok & UsageRecord.cost.is_(None)).label("unpriced"),
        UsageRecord.audio_seconds.label("audio_seconds"),
        UsageRecord.cached_tokens.label("cached_tokens"),
        UsageRecord.reasoning_tokens.label("reasoning_tokens"),
    ).where(
        *(getattr(UsageRecord, c) == v for c, v in where),
        or_(
            false(),
            *(and_(UsageRecord.created_at >= a, UsageRecord.created_at < b) for a, b in ranges),
        ),
    )


def _flag(cond: ColumnElement[bool]) -> ColumnElement[int]:
    return case((cond, 1), else_=0)
