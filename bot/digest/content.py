"""What a digest says, computed in SQL from the usage rows, exactly (``Decimal``).

Every figure is for one local day of the workspace's time zone, [local midnight, next local
midnight) in UTC (see :mod:`bot.digest.window`), except the budgets: each cap is shown for its
own window (day, week or month in its zone) that holds the middle of the digest's day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, Subquery, case, func, literal, select, type_coerce

from bot.budget.limits import window as cap_window
from bot.budget.limits import window_end, window_start
from bot.budget.manager import Budget
from bot.budget.policy import CAPS, ScopeKind, cap_label
from bot.digest import window
from bot.digest.figures import WARN_AT, BudgetUse, Digest, Grant, Line, Period, ProviderCost
from bot.errors import StoreError
from bot.store.db import DB_ERRORS, Database, describe
from bot.store.digests import DigestConfig
from bot.store.feedback import DOWN, UP
from bot.store.rollups import MEASURES, raw_source, source
from bot.store.schema import AnswerFeedback, BudgetRequest, Money, RequestEvent

CHART_DAYS = 14
TOP = 5
_ZERO = Decimal(0)

__all__ = [  # and the figures, imported from here before figures.py held them
    "CHART_DAYS",
    "TOP",
    "WARN_AT",
    "BudgetUse",
    "Digest",
    "DigestBuilder",
    "Line",
    "ProviderCost",
]


class DigestBuilder:
    """Builds digests from the usage store; ``budget`` supplies the limits in force.
    ``rollups=False`` reads the raw usage rows only (the benchmark's naive baseline)."""

    def __init__(self, db: Database, budget: Budget | None = None, *, rollups: bool = True):
        self.db = db
        self.budget = budget
        self.rollups = rollups

    def _src(
        self,
        start: datetime,
        end: datetime,
        *,
        fine: bool,
        where: Sequence[tuple[str, str]] = (),
        cuts: Sequence[datetime] = (),
    ) -> Subquery:
        if self.rollups:
            return source(start, end, fine=fine, cuts=cuts, where=where)
        return raw_source(start, end, fine=fine, where=where)

    async def build(self, cfg: DigestConfig, day: date, period: Period = "day") -> Digest:
        """The digest of the local ``day``, or of the week or month that starts on it."""
        try:
            return await self._build(cfg, day, period)
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read usage for the digest: {describe(exc)}") from exc

    async def _build(self, cfg: DigestConfig, day: date, period: Period) -> Digest:
        zone = cfg.zone
        length = window.period_days(day, period)
        start, end = window.midnight(day, zone), window.midnight(day + timedelta(days=length), zone)
        ws = (("platform", cfg.platform), ("workspace", cfg.workspace))
        async with self.db.session() as s:
            src = self._src(start, end, fine=False, where=ws)
            totals = (await s.execute(select(*(_sum(src, m) for m in MEASURES)))).one()
            events: dict[str, int] = dict(
                (
                    await s.execute(
                        select(RequestEvent.kind, func.count())
                        .where(
                            RequestEvent.platform == cfg.platform,
                            RequestEvent.workspace == cfg.workspace,
                            RequestEvent.created_at >= start,
                            RequestEvent.created_at < end,
                        )
                        .group_by(RequestEvent.kind)
                    )
                ).all()
            )
            by_model = await _lines(s, src, "model")
            ratings: dict[int, int] = dict(
                (
                    await s.execute(
                        select(AnswerFeedback.rating, func.count())
                        .where(
                            AnswerFeedback.platform == cfg.platform,
                            AnswerFeedback.workspace == cfg.workspace,
                            AnswerFeedback.rated_at >= start,
                            AnswerFeedback.rated_at < end,
                        )
                        .group_by(AnswerFeedback.rating)
                    )
                ).all()
            )
            grants = [
                Grant(
                    requested_by=g.requested_by,
                    decided_by=g.decided_by or "",
                    amount=Decimal(g.amount),
                    unit=g.unit,
                    label=g.label,
                    reason=g.reason,
                )
                for g in await s.scalars(
                    select(BudgetRequest)
                    .where(
                        BudgetRequest.platform == cfg.platform,
                        BudgetRequest.workspace == cfg.workspace,
                        BudgetRequest.status == "granted",
                        BudgetRequest.decided_at >= start,
                        BudgetRequest.decided_at < end,
                    )
                    .order_by(BudgetRequest.id)
                )
            ]
            fine = self._src(start, end, fine=True, where=ws)
            by_channel = await _lines(s, fine, "channel")
            by_user = await _lines(s, fine, "user")

            # A day's digest charts the 14 days up to it; a report, its own days.
            shown = CHART_DAYS if period == "day" else length
            first = day - timedelta(days=CHART_DAYS - 1) if period == "day" else day
            bounds = window.day_bounds(first, shown, zone)
            chart = self._src(bounds[0], bounds[-1], fine=False, where=ws, cuts=bounds[1:-1])
            idx = case(
                *((chart.c.ts < b, n) for n, b in enumerate(bounds[1:])),
                else_=None,
            )
            rows = (
                await s.execute(
                    select(idx.label("idx"), chart.c.model, _sum(chart, "cost")).group_by(
                        idx, chart.c.model
                    )
                )
            ).all()
            m_start = window.midnight(window.month_start(day), zone)
            month = self._src(m_start, end, fine=False, where=ws)
            mtd = (await s.execute(select(_sum(month, "cost")))).scalar()
            before = None
            if period == "day":
                budgets = await self._budgets(s, cfg, start, end, by_channel, by_user, by_model)
            else:  # caps have their own windows: the daily digest shows them
                budgets = []
                first_before = window.period_start(day - timedelta(days=1), period)
                earlier = self._src(
                    window.midnight(first_before, zone), start, fine=False, where=ws
                )
                before = Decimal((await s.execute(select(_sum(earlier, "cost")))).scalar() or 0)

        series_days = [first + timedelta(days=n) for n in range(shown)]
        series: dict[str, list[Decimal]] = {}
        for n, model, cost in rows:
            if n is None:
                continue
            series.setdefault(model, [_ZERO] * shown)[int(n)] = Decimal(cost or 0)
        per_day = [sum((v[n] for v in series.values()), _ZERO) for n in range(shown)]
        month_cap = None
        if self.budget is not None:
            cap = self.budget.policy.value("workspace", cfg.workspace, "spend_month")
            month_cap = Decimal(str(cap)) if cap is not None else None
        requests, calls, failed, limited, retries, pt, ct, cost, unpriced, audio, cached, rt = (
            v if m in ("cost", "audio_seconds") else int(v)
            for m, v in zip(MEASURES, totals, strict=True)
        )
        return Digest(
            platform=cfg.platform,
            workspace=cfg.workspace,
            day=day,
            tz=cfg.tz,
            start=start,
            end=end,
            requests=requests,
            calls=calls,
            failed=failed,
            rate_limited=limited,
            retries=retries,
            queued=int(events.get("queued", 0)),
            refused=int(events.get("refused", 0)),
            fell_back=int(events.get("fallback", 0)),
            prompt_tokens=int(pt),
            completion_tokens=int(ct),
            cached_tokens=int(cached),
            reasoning_tokens=int(rt),
            cost=Decimal(cost or 0),
            unpriced=unpriced,
            by_model=by_model,
            top_channels=by_channel[:TOP],
            top_users=by_user[:TOP],
            series_days=series_days,
            series=dict(sorted(series.items(), key=lambda kv: -sum(kv[1], _ZERO))),
            previous_day=per_day[-2] if before is None else before,
            week_average=(sum(per_day[-8:-1], _ZERO) / 7).quantize(Decimal("0.0000000001"))
            if period == "day"
            else _ZERO,
            month_to_date=mtd or _ZERO,
            month_days=window.days_in_month(day),
            days_elapsed=day.day,
            month_cap=month_cap,
            budgets=budgets,
            audio_seconds=float(audio or 0),
            audio_cost=sum((ln.cost for ln in by_model if ln.audio_seconds), _ZERO),
            grants=grants,
            period=period,
            days=length,
            thumbs_up=int(ratings.get(UP, 0)),
            thumbs_down=int(ratings.get(DOWN, 0)),
        )

    async def recorded_cost(self, start: datetime, end: datetime) -> Decimal:
        """quotabot's recorded USD in [start, end), every platform and workspace."""
        src = self._src(start, end, fine=False)
        try:
            async with self.db.session() as s:
                return Decimal((await s.execute(select(_sum(src, "cost")))).scalar() or 0)
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read usage: {describe(exc)}") from exc

    async def current_budgets(self, cfg: DigestConfig, now: datetime) -> list[BudgetUse]:
        """Every cap of the workspace and what is active in it today (in its zone), used so
        far in the cap's current window: for budget alerts and the dashboard."""
        if self.budget is None:
            return []
        zone = await self.budget.zone(cfg.workspace)
        start, end = window_start("day", now, zone), window_end("day", now, zone)
        ws = (("platform", cfg.platform), ("workspace", cfg.workspace))
        try:
            async with self.db.session() as s:
                fine = self._src(start, end, fine=True, where=ws)
                return await self._budgets(
                    s,
                    cfg,
                    start,
                    end,
                    await _lines(s, fine, "channel"),
                    await _lines(s, fine, "user"),
                    await _lines(s, self._src(start, end, fine=False, where=ws), "model"),
                    at=now,
                )
        except DB_ERRORS as exc:
            raise StoreError(
                f"Could not read usage for the budget alerts: {describe(exc)}"
            ) from exc

    async def _budgets(
        self,
        s: Any,
        cfg: DigestConfig,
        start: datetime,
        end: datetime,
        channels: list[Line],
        users: list[Line],
        models: list[Line],
        *,
        at: datetime | None = None,
    ) -> list[BudgetUse]:
        """Every cap on this workspace, its active channels and users, and the models used,
        with its use in the cap's own window: the one holding ``at`` (by default the middle
        of [start, end)), in the cap's zone, up to ``end`` for a week or month."""
        if self.budget is None:
            return []
        await self.budget.reload()
        policy = self.budget.policy
        at = at or start + (end - start) / 2
        wanted: list[tuple[ScopeKind, str, str]] = []
        for scope, instances in (
            ("workspace", [cfg.workspace]),
            ("channel", [c.key for c in channels]),
            ("user", [u.key for u in users]),
            ("model", [m.key for m in models]),
        ):
            for instance in instances:
                for kind in CAPS:
                    if policy.value(scope, instance, kind) is not None:  # type: ignore[arg-type]
                        wanted.append((scope, instance, kind))  # type: ignore[arg-type]
        if not wanted:
            return []
        ws = (("platform", cfg.platform), ("workspace", cfg.workspace))
        cache: dict[tuple[str, datetime, datetime], dict[str, tuple[int, int, Decimal]]] = {}

        async def use(
            scope: str, lo: datetime, hi: datetime
        ) -> dict[str, tuple[int, int, Decimal]]:
            if (scope, lo, hi) not in cache:
                src = self._src(
                    lo,
                    hi,
                    fine=scope in ("channel", "user"),
                    # the model's caps are the provider account's: every workspace
                    where=() if scope == "model" else ws,
                )
                key = (
                    src.c[scope]
                    if scope in ("channel", "user", "model")
                    else literal(cfg.workspace)
                )
                stmt = select(
                    key,
                    _sum(src, "requests"),
                    _sum(src, "prompt_tokens") + _sum(src, "completion_tokens"),
                    _sum(src, "cost"),
                ).group_by(key)
                cache[(scope, lo, hi)] = {
                    str(k): (int(n), int(t), Decimal(c or 0))
                    for k, n, t, c in (await s.execute(stmt)).all()
                }
            return cache[(scope, lo, hi)]

        out = []
        for scope, instance, kind in wanted:
            period, unit = CAPS[kind]
            zone = policy.zone(scope, instance, cfg.workspace)
            lo, ends = window_start(period, at, zone), window_end(period, at, zone)
            hi = ends if period == "day" else max(lo, min(ends, end))
            requests, tokens, cost = (await use(scope, lo, hi)).get(instance, (0, 0, _ZERO))
            limit = Decimal(str(policy.value(scope, instance, kind)))  # type: ignore[arg-type]
            used = cost if unit == "usd" else Decimal(requests if unit == "requests" else tokens)
            label = _label(scope, instance, kind)
            span = f"{zone} {period} {cap_window(period, at, zone)}"
            out.append(BudgetUse(label, unit, used, limit, span, ends))
        return sorted(out, key=lambda b: -b.share)


def _label(scope: str, instance: str, kind: str) -> str:
    what = cap_label(kind)
    if scope == "workspace":
        return f"workspace {what}"
    if scope == "model":
        return f"{instance} {what} (account)"
    return f"{scope} {instance} {what}"


def _sum(src: Subquery, measure: str) -> Any:
    total = func.coalesce(func.sum(src.c[measure]), 0)
    return type_coerce(total, Money()) if measure == "cost" else total


async def _lines(s: Any, src: Subquery, key: str) -> list[Line]:
    stmt: Select[Any] = select(
        src.c[key],
        _sum(src, "requests"),
        _sum(src, "prompt_tokens"),
        _sum(src, "completion_tokens"),
        _sum(src, "cost"),
        _sum(src, "audio_seconds"),
    ).group_by(src.c[key])
    lines = [
        Line(str(k), int(n), int(pt), int(ct), Decimal(c or 0), float(a or 0))
        for k, n, pt, ct, c, a in await _all(s, stmt)
    ]
    return sorted(lines, key=lambda ln: (-ln.cost, -ln.requests, ln.key))


async def _all(s: Any, stmt: Select[Any]) -> Sequence[Any]:
    return (await s.execute(stmt)).all()  # type: ignore[no-any-return]
