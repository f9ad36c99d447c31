"""/api/v1/: the dashboard's figures as JSON (or CSV with ``format=csv``), read-only, with the
dashboard's sign-in (``bot.dashboard.access``).

    GET /api/v1/usage?by=model            totals per model, channel, user, workspace, platform
    GET /api/v1/series?every=week&stack=user   per period (day, week, month) and key
    GET /api/v1/budgets[?platform=&workspace=]  every cap, used, limit, when it resets
    GET /api/v1/queue                     requests waiting for budget now, per model
    GET /api/v1/failures                  failed calls and refused requests, by reason
    GET /api/v1/provider_cost             the provider's billed USD beside quotabot's (every
                                          workspace; OPENAI_ADMIN_KEY)

Every one takes ``since`` and ``until`` (UTC days, ``until`` not included; the last 30 days
by default) and filters ``platform``, ``workspace``, ``channel``, ``user``, ``model``. A link
for one workspace shows that workspace only: asking for another is 403.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.dashboard.access import Access
from bot.dashboard.links import Scope, Unauthorized
from bot.dashboard.queries import EVERY, FILTERS, KEYS, Figures, Queries, View, default_range
from bot.errors import DigestError, StoreError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MOST_DAYS = 3 * 366


class BadQuery(ValueError):
    """A parameter the API cannot take: 400, with what to send instead."""


class Forbidden(Exception):
    """A link for one workspace asked about another: 403."""


def view_of(query: Any, scope: Scope) -> View:
    """The view a request's parameters ask for, within what ``scope`` may see."""
    since, until = default_range()
    try:
        if query.get("since"):
            since = date.fromisoformat(query["since"])
        if query.get("until"):
            until = date.fromisoformat(query["until"])
    except ValueError as exc:
        raise BadQuery("since and until are days: 2026-12-01") from exc
    if not since < until:
        raise BadQuery("since must be a day before until")
    if (until - since).days > MOST_DAYS:
        raise BadQuery(f"a view covers at most {MOST_DAYS} days")
    every, stack = query.get("every") or "day", query.get("stack") or "model"
    if every not in EVERY:
        raise BadQuery(f"every is one of {', '.join(EVERY)}")
    if stack not in KEYS:
        raise BadQuery(f"stack is one of {', '.join(KEYS)}")
    where = {k: filter_value(k, query[k]) for k in FILTERS if query.get(k)}
    for key, value in scope.where():
        if where.get(key, value) != value:
            raise Forbidden(f"This sign-in shows {scope.describe()} only.")
        where[key] = value
    return View(since=since, until=until, every=every, stack=stack, where=tuple(where.items()))


MOST_CHARS = 200
"""A filter longer than any stored name (the widest column holds 128) matches nothing."""


def filter_value(name: str, value: str) -> str:
    """A filter as typed; one no stored name can be (a NUL, which PostgreSQL refuses in
    text, or thousands of characters) is the asker's mistake: 400, not a database error."""
    if "\x00" in value or len(value) > MOST_CHARS:
        raise BadQuery(f"{name} is not a name quotabot stores")
    return value


class DashboardAPI:
    def __init__(self, queries: Queries, access: Access):
        self.queries, self.access = queries, access

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/usage", self._guarded(self.usage)),
            web.get("/api/v1/series", self._guarded(self.series)),
            web.get("/api/v1/budgets", self._guarded(self.budgets)),
            web.get("/api/v1/queue", self._guarded(self.queue)),
            web.get("/api/v1/failures", self._guarded(self.failures)),
            web.get("/api/v1/provider_cost", self._guarded(self.provider_cost)),
        ]

    def _guarded(
        self, handler: Callable[[web.Request, Scope], Awaitable[web.StreamResponse]]
    ) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request, self.access.scope(request))
            except Unauthorized as exc:
                return _error(401, str(exc), headers={"WWW-Authenticate": "Bearer"})
            except Forbidden as exc:
                return _error(403, str(exc))
            except BadQuery as exc:
                return _error(400, str(exc))
            except StoreError as exc:
                return _error(503, str(exc))

        return guarded

    async def usage(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        view = view_of(request.query, scope)
        by = request.query.get("by") or "model"
        if by not in KEYS:
            raise BadQuery(f"by is one of {', '.join(KEYS)}")
        lines = await self.queries.totals(view, by)
        rows = [{by: key, **figures_json(f)} for key, f in lines]
        return _table(request, rows, [by, *FIGURES], f"usage-by-{by}", view)

    async def series(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        view = view_of(request.query, scope)
        points = await self.queries.series(view)
        rows = [
            {view.every: p.period, view.stack: p.key, **figures_json(p.figures)} for p in points
        ]
        name = f"usage-per-{view.every}-by-{view.stack}"
        return _table(request, rows, [view.every, view.stack, *FIGURES], name, view)

    async def budgets(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        q = request.query
        platform = scope.platform or (
            filter_value("platform", q["platform"]) if q.get("platform") else None
        )
        workspace = scope.workspace or (
            filter_value("workspace", q["workspace"]) if q.get("workspace") else None
        )
        if scope.everything and not (platform and workspace):
            raise BadQuery("name the workspace: ?platform=slack&workspace=T0123")
        if not scope.everything and (
            request.query.get("workspace", workspace) != workspace
            or request.query.get("platform", platform) != platform
        ):
            raise Forbidden(f"This sign-in shows {scope.describe()} only.")
        assert platform is not None and workspace is not None
        lines = await self.queries.budgets(platform, workspace)
        rows = [
            {
                "budget": b.label,
                "unit": b.unit,
                "used": str(b.used),
                "limit": str(b.limit),
                "window": b.window,
                "resets_at": b.resets_at.isoformat(),
            }
            for b in lines
        ]
        return _table(request, rows, list(BUDGET_FIELDS), "budgets", None)

    async def queue(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        rows = [{"model": m, "waiting": n} for m, n in self.queries.queue()]
        return _table(request, rows, ["model", "waiting"], "queue", None)

    async def failures(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        view = view_of(request.query, scope)
        rows = [
            {"reason": f.reason, "model": f.model, "count": f.count}
            for f in await self.queries.failures(view)
        ]
        return _table(request, rows, ["reason", "model", "count"], "failures", view)

    async def provider_cost(self, request: web.Request, scope: Scope) -> web.StreamResponse:
        if not scope.everything:
            raise Forbidden(
                "The provider bills the whole organization: sign in for every workspace."
            )
        view = view_of(request.query, scope)
        try:
            cost = await self.queries.provider_cost(view)
        except DigestError as exc:
            return _error(502, str(exc))
        if cost is None:
            return _error(404, "Set OPENAI_ADMIN_KEY (an admin key of the organization).")
        row = {"provider_usd": str(cost.amount), "quotabot_usd": str(cost.ours)}
        return _table(request, [row], list(row), "provider-cost", view)


FIGURES = ("calls", "failed", "prompt_tokens", "completion_tokens", "cost_usd")
BUDGET_FIELDS = ("budget", "unit", "used", "limit", "window", "resets_at")


def figures_json(f: Figures) -> dict[str, Any]:
    return {
        "calls": f.calls,
        "failed": f.failed,
        "prompt_tokens": f.prompt_tokens,
        "completion_tokens": f.completion_tokens,
        "cost_usd": str(f.cost),
    }


def _table(
    request: web.Request,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    name: str,
    view: View | None,
) -> web.StreamResponse:
    kind = request.query.get("format") or "json"
    if kind == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(_safe(rows))
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="quotabot-{name}.csv"'},
        )
    if kind != "json":
        raise BadQuery("format is json or csv")
    body: dict[str, Any] = {"rows": list(rows)}
    if view is not None:
        body["since"], body["until"] = view.since.isoformat(), view.until.isoformat()
        body["filters"] = dict(view.where)
    return web.Response(
        text=json.dumps(body, default=_jsonable),
        content_type="application/json",
        headers=(
            {"Content-Disposition": f'attachment; filename="quotabot-{name}.json"'}
            if request.query.get("download")
            else {}
        ),
    )


def _safe(rows: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    """Cells a spreadsheet would run as a formula (a user or channel named =HYPERLINK(...)),
    written as text."""
    for row in rows:
        yield {
            k: f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v
            for k, v in row.items()
        }


def _jsonable(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)
