"""What the dashboard and /api/v1/ show, as plain data: usage over time stacked by a key,
totals by a key, budgets with what is used and when each resets, failures and refusals.

Usage is read from the hourly rollups (``bot.store.rollups``), as ``quotabot usage`` reads
it, so the figures are the same and stay fast however many rows accumulate. Weeks start on
Monday and days are UTC days, as the budgets' windows are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

from sqlalchemy import func, select, text, type_coerce

from bot.budget.manager import Budget
from bot.digest.content import DigestBuilder
from bot.digest.costs import OrganizationCosts
from bot.digest.figures import ProviderCost
from bot.errors import StoreError
from bot.store import rollups
from bot.store.db import DB_ERRORS, Database, describe
from bot.store.digests import DigestConfig
from bot.store.schema import Money, RequestEvent, UsageRecord

Every = Literal["day", "week", "month"]
EVERY: tuple[Every, ...] = ("day", "week", "month")
Key = Literal["model", "channel", "user", "workspace", "platform", "provider"]
KEYS: tuple[Key, ...] = get_args(Key)
FILTERS = ("platform", "workspace", "channel", "user", "model", "provider")
DEFAULT_DAYS = 30
FAILED = "usage.outcome NOT IN ('ok', 'stopped')"
"""Calls that did not answer (those not in bot.store.rows.ANSWERED), as SQL."""


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    """One view of usage: a range of UTC days, a period, a key to stack by, and filters."""

    since: date
    until: date
    """The first day after the range."""
    every: Every = "day"
    stack: Key = "model"
    where: tuple[tuple[str, str], ...] = ()

    @property
    def start(self) -> datetime:
        return datetime(self.since.year, self.since.month, self.since.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime(self.until.year, self.until.month, self.until.day, tzinfo=UTC)

    @property
    def periods(self) -> list[str]:
        """Every period in the range, in order, including those without usage."""
        out: list[str] = []
        day = self.since
        while day < self.until:
            name = period_of(day, self.every)
            if not out or out[-1] != name:
                out.append(name)
            day += timedelta(days=1)
        return out


@dataclass(slots=True)
class Figures:
    """Sums over some usage: provider calls (as ``quotabot usage`` counts them), those that
    failed, tokens and USD."""

    calls: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = field(default_factory=Decimal)

    def add(self, other: Figures) -> None:
        self.calls += other.calls
        self.failed += other.failed
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Point:
    period: str
    key: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class BudgetLine:
    label: str
    unit: str
    used: Decimal
    limit: Decimal
    window: str
    resets_at: datetime


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    """The error a call failed with (``RateLimited``, ``ProviderDown``...), or ``refused``
    (a cap had no room), ``queued`` (waited for budget first) and ``fallback`` (answered by
    another model than ``model``, the one asked for)."""
    model: str
    count: int


def period_of(day: date, every: Every) -> str:
    if every == "day":
        return day.isoformat()
    if every == "week":
        return (day - timedelta(days=day.weekday())).isoformat()  # the Monday
    return f"{day.year:04d}-{day.month:02d}"


def default_range(today: date | None = None) -> tuple[date, date]:
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=DEFAULT_DAYS - 1), today + timedelta(days=1)


class Queries:
    def __init__(
        self,
        db: Database,
        budget: Budget | None,
        builder: DigestBuilder,
        *,
        rollups: bool = True,
        costs: OrganizationCosts | None = None,
    ):
        """``rollups=False`` reads the raw usage rows instead: the benchmark's baseline.
        ``costs``: the provider's own figures (OPENAI_ADMIN_KEY), shown beside quotabot's."""
        self.db, self.budget, self.builder = db, budget, builder
        self.rollups = rollups
        self.costs = costs

    def _src(self, view: View) -> Any:
        if self.rollups:
            return rollups.source(view.start, view.end, fine=True, where=view.where)
        return rollups.raw_source(view.start, view.end, fine=True, where=view.where)

    async def series(self, view: View) -> list[Point]:
        """Usage per period and key, periods in order, keys by cost within each."""
        src = self._src(view)
        day = _day(self.db.dialect, src.c.ts)
        key = src.c[view.stack]
        stmt = select(day, key, *_sums(src)).group_by(day, key)
        folded: dict[tuple[str, str], Figures] = {}
        for d, k, *sums in await self._all(stmt):
            period = period_of(date.fromisoformat(str(d)), view.every)
            folded.setdefault((period, str(k)), Figures()).add(_figures(sums))
        return sorted(
            (Point(p, k, f) for (p, k), f in folded.items()),
            key=lambda x: (x.period, -x.figures.cost, x.key),
        )

    async def totals(self, view: View, by: Key) -> list[tuple[str, Figures]]:
        """Sums per ``by`` over the view's range, most expensive first."""
        src = self._src(view)
        key = src.c[by]
        rows = await self._all(select(key, *_sums(src)).group_by(key))
        lines = [(str(k), _figures(sums)) for k, *sums in rows]
        return sorted(lines, key=lambda kv: (-kv[1].cost, -kv[1].calls, kv[0]))

    async def failures(self, view: View) -> list[Failure]:
        """Calls that failed, by the error they failed with and model (from the raw rows,
        through ix_usage_failed); requests refused by a cap or queued."""
        filters = [getattr(UsageRecord, k) == v for k, v in view.where]
        failed = (
            select(UsageRecord.outcome, UsageRecord.model, func.count())
            .where(
                UsageRecord.created_at >= view.start,
                UsageRecord.created_at < view.end,
                # As ix_usage_failed's predicate, word for word (bound values would keep
                # the planner from using that partial index).
                text(FAILED),
                *filters,
            )
            .group_by(UsageRecord.outcome, UsageRecord.model)
        )
        out = [Failure(str(r), str(m), int(n)) for r, m, n in await self._all(failed)]
        out += await self._events(view)
        return sorted(out, key=lambda f: (-f.count, f.reason, f.model))

    async def failure_counts(self, view: View) -> list[Failure]:
        """The same from the rollups, which keep two reasons: rate limited (429) and other
        errors; and requests refused by a cap or queued. Fast at any size: the page's."""
        src = self._src(view)
        stmt = select(src.c.model, func.sum(src.c.rate_limited), func.sum(src.c.failed)).group_by(
            src.c.model
        )
        out = []
        for model, limited, failed in await self._all(stmt):
            limited, failed = int(limited or 0), int(failed or 0)
            out += [Failure("RateLimited", str(model), limited)] if limited else []
            other = failed - limited
            out += [Failure("other errors", str(model), other)] if other else []
        out += await self._events(view)
        return sorted(out, key=lambda f: (-f.count, f.reason, f.model))

    async def _events(self, view: View) -> list[Failure]:
        events = (
            select(RequestEvent.kind, RequestEvent.model, func.count())
            .where(
                RequestEvent.created_at >= view.start,
                RequestEvent.created_at < view.end,
                *(getattr(RequestEvent, k) == v for k, v in view.where),
            )
            .group_by(RequestEvent.kind, RequestEvent.model)
        )
        return [Failure(str(r), str(m), int(n)) for r, m, n in await self._all(events)]

    async def provider_cost(self, view: View) -> ProviderCost | None:
        """What the provider bills for the view's days, beside what quotabot recorded over
        every workspace (the provider bills the organization). None without an admin key.
        Raises DigestError when the provider does not say."""
        if self.costs is None:
            return None
        return ProviderCost(
            amount=await self.costs.total(view.start, view.end),
            ours=await self.builder.recorded_cost(view.start, view.end),
            window=f"UTC days {view.since.isoformat()} to {view.until.isoformat()} (excluded)",
        )

    async def budgets(self, platform: str, workspace: str) -> list[BudgetLine]:
        """Every cap of the workspace with what is used of it now, and when it resets."""
        now = datetime.now(UTC)
        cfg = DigestConfig(platform=platform, workspace=workspace, channel="")
        uses = await self.builder.current_budgets(cfg, now)
        return [
            BudgetLine(u.label, u.unit, u.used, u.limit, u.window, u.resets_at or now) for u in uses
        ]

    def queue(self) -> list[tuple[str, int]]:
        """Requests waiting for budget now, per model, in this process."""
        if self.budget is None:
            return []
        return [(m, int(n)) for m, n in sorted(self.budget.queue_depths()) if n]

    async def _all(self, stmt: Any) -> list[tuple[Any, ...]]:
        try:
            async with self.db.session() as s:
                return [tuple(r) for r in (await s.execute(stmt)).all()]
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read usage: {describe(exc)}") from exc


def _day(dialect: str, ts: Any) -> Any:
    if dialect == "sqlite":
        return func.strftime("%Y-%m-%d", ts)
    return func.to_char(func.timezone("UTC", ts), "YYYY-MM-DD")


def _sums(src: Any) -> list[Any]:
    c = src.c
    return [
        func.sum(c.calls),
        func.sum(c.failed),
        func.sum(c.prompt_tokens),
        func.sum(c.completion_tokens),
        type_coerce(func.sum(c.cost), Money()),
    ]


def _figures(sums: list[Any]) -> Figures:
    calls, failed, pt, ct, cost = sums
    return Figures(
        calls=int(calls or 0),
        failed=int(failed or 0),
        prompt_tokens=int(pt or 0),
        completion_tokens=int(ct or 0),
        cost=Decimal(str(cost)) if cost is not None else Decimal(0),
    )
