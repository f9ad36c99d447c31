"""What a digest says: the figures :class:`~bot.digest.content.DigestBuilder` computes from the
usage rows, and :mod:`bot.digest.render` and the adapters draw (text, blocks, chart)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

WARN_AT = 0.8
"""A budget used this much (or more) is marked as a warning; past 1, as over."""
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """More budget an admin granted on someone's request (bot.store.grants), that day."""

    requested_by: str
    decided_by: str
    amount: Decimal
    unit: str
    label: str
    reason: str


@dataclass(frozen=True, slots=True)
class Line:
    """One model, channel or user on the digest's day."""

    key: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    audio_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class BudgetUse:
    label: str
    unit: str
    """``usd``, ``tokens`` or ``requests``."""
    used: Decimal
    limit: Decimal
    window: str
    """The cap's own window: ``UTC day 2026-11-24``, ``Europe/Paris week 2026-W48`` or
    ``UTC month 2026-11``."""
    resets_at: datetime | None = None
    """When that window ends, in the cap's zone."""

    @property
    def share(self) -> float:
        return float(self.used / self.limit) if self.limit else 0.0


@dataclass(frozen=True, slots=True)
class ProviderCost:
    """What the provider's organization costs endpoint reports for the same UTC day(s)."""

    amount: Decimal
    ours: Decimal
    """quotabot's own recorded cost in the same window, over every workspace (the provider
    bills the organization, not one workspace)."""
    window: str


Period = Literal["day", "week", "month"]
"""What a digest covers: a local day; a week from Monday; a calendar month."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Digest:
    platform: str
    workspace: str
    day: date
    tz: str
    start: datetime
    end: datetime
    requests: int
    """Answered: provider calls that succeeded."""
    calls: int
    failed: int
    rate_limited: int
    """Provider calls answered 429 (rate limited)."""
    retries: int
    """Provider calls that were retries of an earlier failed one."""
    queued: int
    refused: int
    fell_back: int
    """Requests answered by a fallback model because the one asked for could not (a cap, a
    long wait, its provider down); counted in ``requests`` too, not in ``refused``."""
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    unpriced: int
    by_model: list[Line]
    top_channels: list[Line]
    top_users: list[Line]
    series_days: list[date]
    series: dict[str, list[Decimal]]
    """Per model, the spend of each of ``series_days`` (the last ``CHART_DAYS`` days)."""
    previous_day: Decimal
    """The spend of the period before (the day, week or month)."""
    week_average: Decimal
    """A day's digest only (0 for a week or a month)."""
    """The average of the 7 days before the digest's day."""
    month_to_date: Decimal
    month_days: int
    days_elapsed: int
    month_cap: Decimal | None
    budgets: list[BudgetUse] = field(default_factory=list)
    provider_cost: ProviderCost | None = None
    audio_seconds: float = 0.0
    """Seconds of audio transcribed (its spend is in ``cost`` and under its model)."""
    audio_cost: Decimal = _ZERO
    cached_tokens: int = 0
    """Of ``prompt_tokens``, those read from the provider's cache (billed at a discount)."""
    reasoning_tokens: int = 0
    """Of ``completion_tokens``, reasoning models' hidden reasoning (billed as output)."""
    grants: list[Grant] = field(default_factory=list)
    period: Period = "day"
    days: int = 1
    """Local days the digest covers, from ``day``."""
    thumbs_up: int = 0
    """👍 given to answers that day (bot.store.feedback)."""
    thumbs_down: int = 0

    @property
    def projection(self) -> Decimal:
        """Month to date, carried on at this month's average daily spend so far."""
        if not self.days_elapsed:
            return _ZERO
        return (self.month_to_date / self.days_elapsed * self.month_days).quantize(
            Decimal("0.0001")
        )

    @property
    def has_chart_data(self) -> bool:
        return any(v for values in self.series.values() for v in values)
