"""/dashboard: one HTML page, drawn on the server. No script, no build step, nothing from a CDN:
the charts are SVG written here (a stacked bar per period), every chart has its table, and the
filters are a plain form, so the page works in any browser and a screen reader reads it.

    /dashboard?t=<link>  -> the session cookie set, redirected to /dashboard (no token in the
                            address bar, the history or a proxy's log)
    /dashboard?since=&until=&every=&stack=&channel=&user=&model=  -> the view
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace
from decimal import Decimal
from html import escape
from urllib.parse import urlencode

from aiohttp import web

from bot.budget.limits import local_time
from bot.dashboard.access import Access
from bot.dashboard.api import BadQuery, Forbidden, view_of
from bot.dashboard.links import Scope, Unauthorized
from bot.dashboard.queries import (
    EVERY,
    KEYS,
    BudgetLine,
    Failure,
    Figures,
    Key,
    Point,
    Queries,
    View,
)
from bot.errors import DigestError, StoreError
from bot.messages import format_cost

TOP = 10
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7")
"""Tableau 10's first colours: told apart by most people with a colour vision deficiency."""
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class DashboardPage:
    def __init__(self, queries: Queries, access: Access):
        self.queries, self.access = queries, access

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/dashboard", self.handle)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if token := request.query.get("t"):
            rest = {k: v for k, v in request.query.items() if k != "t"}
            target = "/dashboard" + (f"?{urlencode(rest)}" if rest else "")
            response = web.Response(status=303, headers={**HEADERS, "Location": target})
            try:
                self.access.sign_in(token, response, secure=request.secure)
            except Unauthorized as exc:
                return _message(401, str(exc))
            return response
        try:
            scope = self.access.scope(request)
            view = view_of(request.query, scope)
            body = await self.render(view, scope)
        except Unauthorized as exc:
            return _message(401, str(exc))
        except Forbidden as exc:
            return _message(403, str(exc))
        except BadQuery as exc:
            return _message(400, str(exc))
        except StoreError as exc:
            return _message(503, str(exc))
        return web.Response(text=body, content_type="text/html", headers=HEADERS)

    async def render(self, view: View, scope: Scope) -> str:
        q = self.queries
        # The filters offer what there is without them (a chosen model hides no other).
        base = tuple((k, v) for k, v in view.where if k in ("platform", "workspace"))
        unfiltered = replace(view, where=base)
        # Each on a connection of its own: the database works on them at once.
        keys: tuple[Key, ...] = ("model", "channel", "user")
        filtered = view.where != base
        (
            (series, by_user, by_channel, by_model, by_provider, failures),
            offered,
        ) = await asyncio.gather(
            asyncio.gather(
                q.series(view),
                q.totals(view, "user"),
                q.totals(view, "channel"),
                q.totals(view, "model"),
                q.totals(view, "provider"),
                q.failure_counts(view),
            ),
            asyncio.gather(*(q.totals(unfiltered, k) for k in keys)) if filtered else _none(),
        )
        lists = offered or [by_model, by_channel, by_user]
        choices: dict[str, list[str]] = {
            key: [k for k, _ in lines] for key, lines in zip(keys, lists, strict=True)
        }
        provider = await _provider(q, view) if scope.everything and not view.where else None
        where = dict(view.where)
        budgets = []
        if "platform" in where and "workspace" in where:
            budgets = await self.queries.budgets(where["platform"], where["workspace"])
        total = Figures()
        for _, f in by_model:
            total.add(f)
        query = {
            "since": view.since.isoformat(),
            "until": view.until.isoformat(),
            "every": view.every,
            "stack": view.stack,
            **{k: v for k, v in view.where if (k, v) not in scope.where()},
        }
        parts = [
            _head(scope),
            _filters(view, scope, choices),
            _totals(total, view),
            provider or "",
            _chart(view, series),
            _series_table(view, series),
            _tops("Top users", "user", by_user),
            _tops("Top channels", "channel", by_channel),
            _tops("By model", "model", by_model),
            _tops("By provider", "provider", by_provider),
            _budgets(budgets, scope),
            _queue(self.queries.queue()),
            _failures(failures),
            _exports(query, view),
            "</main></body></html>",
        ]
        return "\n".join(parts)


async def _none() -> list[list[tuple[str, Figures]]]:
    return []


def _head(scope: Scope) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>quotabot: spend at a glance</title>
<style>{_CSS}</style></head>
<body><main>
<h1>quotabot: spend at a glance</h1>
<p class="scope">Showing {escape(scope.describe())}. Times are UTC.</p>"""


def _filters(view: View, scope: Scope, choices: dict[str, list[str]]) -> str:
    where = dict(view.where)

    def choose(name: str, label: str, values: list[str]) -> str:
        current = where.get(name, "")
        options = [f'<option value=""{"" if current else " selected"}>all</option>']
        for v in sorted(set(values) | ({current} if current else set())):
            sel = " selected" if v == current else ""
            options.append(f'<option value="{escape(v)}"{sel}>{escape(v)}</option>')
        return f'<label>{label} <select name="{name}">{"".join(options)}</select></label>'

    def pick(name: str, label: str, values: tuple[str, ...], current: str) -> str:
        options = "".join(
            f'<option value="{v}"{" selected" if v == current else ""}>{v}</option>' for v in values
        )
        return f'<label>{label} <select name="{name}">{options}</select></label>'

    fields = [
        f'<label>From <input type="date" name="since" value="{view.since.isoformat()}"></label>',
        f'<label>Until <input type="date" name="until" value="{view.until.isoformat()}"></label>',
        pick("every", "Per", EVERY, view.every),
        pick("stack", "Stacked by", KEYS, view.stack),
        choose("model", "Model", choices["model"]),
        choose("channel", "Channel", choices["channel"]),
        choose("user", "User", choices["user"]),
    ]
    if scope.everything:
        fields.append(
            f'<label>Workspace <input name="workspace" value="{escape(where.get("workspace", ""))}"'
            ' placeholder="all"></label>'
        )
        fields.append(
            f'<label>Platform <input name="platform" value="{escape(where.get("platform", ""))}"'
            ' placeholder="all"></label>'
        )
    return (
        '<form class="filters" method="get" action="/dashboard">'
        + "".join(fields)
        + '<button type="submit">Show</button></form>'
    )


def _totals(total: Figures, view: View) -> str:
    until = view.until.isoformat()
    return (
        '<section aria-labelledby="totals"><h2 id="totals">Totals</h2>'
        f'<p class="totals">From {view.since.isoformat()} to {until} (not included): '
        f'<strong data-total="cost">{escape(format_cost(total.cost))}</strong> · '
        f'<strong data-total="calls">{total.calls:,}</strong> calls '
        f"({total.failed:,} failed) · "
        f'<strong data-total="tokens">{total.tokens:,}</strong> tokens '
        f"({total.prompt_tokens:,} in, {total.completion_tokens:,} out)</p></section>"
    )


async def _provider(q: Queries, view: View) -> str | None:
    """The provider's own figure beside quotabot's, for every workspace (the provider bills
    the organization): with OPENAI_ADMIN_KEY, and a view of everything."""
    try:
        cost = await q.provider_cost(view)
    except DigestError as exc:
        return _section("provider", "The provider's own figure", f"<p>{escape(str(exc))}</p>")
    if cost is None:
        return None
    gap = cost.amount - cost.ours
    said = (
        f'<p>The provider reports <strong data-total="provider">'
        f"{escape(format_cost(cost.amount))}</strong> for these days; quotabot recorded "
        f"{escape(format_cost(cost.ours))}: a difference of {escape(format_cost(abs(gap)))}"
        f"{' more at the provider' if gap > 0 else ' less at the provider' if gap < 0 else ''}"
        ". Calls quotabot never saw (other tools on the same account) show up here.</p>"
    )
    return _section("provider", "The provider's own figure", said)


def _chart(view: View, series: list[Point]) -> str:
    periods = view.periods
    keys = _top_keys(series)
    per: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for p in series:
        per[p.period][p.key if p.key in keys else "other"] += p.figures.cost
    if "other" in {k for v in per.values() for k in v}:
        keys.append("other")
    highest = max((sum(v.values(), Decimal(0)) for v in per.values()), default=Decimal(0))
    width, height, pad = 760, 240, 40
    bar = (width - pad) / max(len(periods), 1)
    shapes = []
    for n, period in enumerate(periods):
        y = float(height - 20)
        for i, key in enumerate(keys):
            cost = per.get(period, {}).get(key, Decimal(0))
            if not cost or not highest:
                continue
            h = float(cost / highest) * (height - 40)
            y -= h
            shapes.append(
                f'<rect x="{pad + n * bar + 1:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[i % len(PALETTE)]}">'
                f"<title>{escape(period)} · {escape(key)}: {escape(format_cost(cost))}</title>"
                "</rect>"
            )
    legend = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>'
        f"{escape(k)}</li>"
        for i, k in enumerate(keys)
    )
    scale = escape(format_cost(highest)) if highest else "no spend"
    return (
        f'<section aria-labelledby="chart"><h2 id="chart">Spend per {view.every}, by '
        f"{view.stack}</h2>"
        f'<svg role="img" aria-label="Spend per {view.every} by {view.stack}: the table below '
        f'has the figures" viewBox="0 0 {width} {height}" class="chart">'
        f'<text x="0" y="14" class="axis">{scale}</text>'
        f'<line x1="{pad}" y1="{height - 20}" x2="{width}" y2="{height - 20}" class="axis"/>'
        f'<text x="{pad}" y="{height - 4}" class="axis">{escape(periods[0] if periods else "")}'
        f'</text><text x="{width}" y="{height - 4}" text-anchor="end" class="axis">'
        f"{escape(periods[-1] if periods else '')}</text>{''.join(shapes)}</svg>"
        f'<ul class="legend">{legend}</ul></section>'
    )


def _top_keys(series: list[Point], most: int = len(PALETTE) - 1) -> list[str]:
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for p in series:
        cost[p.key] += p.figures.cost
    return [k for k, _ in sorted(cost.items(), key=lambda kv: (-kv[1], kv[0]))[:most]]


def _series_table(view: View, series: list[Point]) -> str:
    rows = "".join(
        f"<tr><td>{escape(p.period)}</td><td>{escape(p.key)}</td>{_cells(p.figures)}</tr>"
        for p in series
    )
    return _table(
        f"Per {view.every} and {view.stack}",
        "series",
        [view.every, view.stack, *_FIGURE_HEADS],
        rows or _empty(2 + len(_FIGURE_HEADS)),
    )


def _tops(title: str, key: str, lines: list[tuple[str, Figures]]) -> str:
    rows = "".join(f"<tr><td>{escape(k)}</td>{_cells(f)}</tr>" for k, f in lines[:TOP])
    more = f"<p>and {len(lines) - TOP:,} more.</p>" if len(lines) > TOP else ""
    anchor = key + "s"
    return (
        _table(title, anchor, [key, *_FIGURE_HEADS], rows or _empty(1 + len(_FIGURE_HEADS))) + more
    )


def _budgets(budgets: list[BudgetLine], scope: Scope) -> str:
    if not budgets:
        hint = (
            "No caps set for this workspace."
            if not scope.everything
            else "Choose a workspace and platform to see its budgets."
        )
        return _section("budgets", "Budgets", f"<p>{hint}</p>")
    rows = "".join(
        f"<tr><td>{escape(b.label)}</td><td>{escape(str(b.used))} {escape(b.unit)}</td>"
        f"<td>{escape(str(b.limit))} {escape(b.unit)}</td>"
        f"<td>{float(b.used / b.limit) if b.limit else 0:.0%}</td>"
        f"<td>{b.resets_at:%Y-%m-%d} {escape(local_time(b.resets_at))}</td></tr>"
        for b in budgets
    )
    return _table("Budgets", "budgets", ["budget", "used", "limit", "share", "resets"], rows)


def _queue(queue: list[tuple[str, int]]) -> str:
    rows = "".join(f"<tr><td>{escape(m)}</td><td>{n:,}</td></tr>" for m, n in queue)
    return _table(
        "Waiting for budget now (this replica)", "queue", ["model", "waiting"], rows or _empty(2)
    )


def _failures(failures: list[Failure]) -> str:
    rows = "".join(
        f"<tr><td>{escape(f.reason)}</td><td>{escape(f.model)}</td><td>{f.count:,}</td></tr>"
        for f in failures
    )
    return (
        _table(
            "Failed and refused requests",
            "failures",
            ["reason", "model", "count"],
            rows or _empty(3),
        )
        + "<p>By the error each call failed with: the failures export below.</p>"
    )


def _exports(query: dict[str, str], view: View) -> str:
    links = []
    for label, path, extra in (
        (f"per {view.every} and {view.stack}", "/api/v1/series", {}),
        ("by user", "/api/v1/usage", {"by": "user"}),
        ("by channel", "/api/v1/usage", {"by": "channel"}),
        ("by model", "/api/v1/usage", {"by": "model"}),
        ("failures", "/api/v1/failures", {}),
    ):
        for kind in ("csv", "json"):
            params = {
                **query,
                **extra,
                "format": kind,
                **({"download": "1"} if kind == "json" else {}),
            }
            links.append(
                f'<li><a href="{path}?{escape(urlencode(params))}" download>'
                f"{escape(label)} ({kind.upper()})</a></li>"
            )
    return _section("export", "Export", f"<ul>{''.join(links)}</ul>")


_FIGURE_HEADS = ("calls", "failed", "tokens in", "tokens out", "spend")


def _cells(f: Figures) -> str:
    return (
        f'<td class="n">{f.calls:,}</td><td class="n">{f.failed:,}</td>'
        f'<td class="n">{f.prompt_tokens:,}</td><td class="n">{f.completion_tokens:,}</td>'
        f'<td class="n">{escape(format_cost(f.cost))}</td>'
    )


def _table(title: str, anchor: str, heads: list[str], rows: str) -> str:
    th = "".join(f'<th scope="col">{escape(h)}</th>' for h in heads)
    return (
        f'<section aria-labelledby="{anchor}"><h2 id="{anchor}">{escape(title)}</h2>'
        f'<table id="{anchor}-table"><thead><tr>{th}</tr></thead><tbody>{rows}</tbody></table>'
        "</section>"
    )


def _section(anchor: str, title: str, inner: str) -> str:
    heading = f'<h2 id="{anchor}">{escape(title)}</h2>'
    return f'<section aria-labelledby="{anchor}">{heading}{inner}</section>'


def _empty(columns: int) -> str:
    return f'<tr><td colspan="{columns}">Nothing in this view.</td></tr>'


def _message(status: int, text: str) -> web.Response:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>quotabot</title>'
        f"<style>{_CSS}</style></head><body><main><h1>quotabot</h1><p>{escape(text)}</p>"
        "</main></body></html>"
    )
    return web.Response(text=body, status=status, content_type="text/html", headers=HEADERS)


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:980px;margin:0 auto;padding:1rem 1.25rem 3rem}
h1{font-size:1.4rem;margin:.5rem 0}h2{font-size:1.1rem;margin:1.75rem 0 .5rem}
.scope{color:#555;margin-top:0}
.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;padding:.75rem;
background:#fff;border:1px solid #ddd;border-radius:6px}
.filters label{display:flex;flex-direction:column;font-size:.85rem;color:#444}
.filters button{padding:.35rem 1rem}
.totals strong{font-size:1.15rem}
.chart{width:100%;height:auto;background:#fff;border:1px solid #ddd;border-radius:6px}
.axis{font-size:11px;fill:#666;stroke:#999}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:.25rem 1rem;padding:0}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.35em;border-radius:2px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}
th,td{border-bottom:1px solid #e5e5e5;padding:.3rem .5rem;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
"""
