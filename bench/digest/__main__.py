"""Digest and /usage time on PostgreSQL as usage grows: hourly rollups against the naive GROUP BY
over the raw usage rows, in the same run, on the same data.

    .venv/bin/python -m bench.digest                       # 100,000 and 10,000,000 rows, ~3 min
    .venv/bin/python -m bench.digest --sizes 100000 --repeat 3

For each size, a throwaway database of its own (``quotabot_bench_digest_<random>``, dropped
afterwards) is migrated to head and filled by ``INSERT ... SELECT generate_series`` in chunks of
a million rows: 60 days of calls up to now, 10 workspaces of 50 channels, 500 users and 5
models each, 5% rate limited and 2% failed, 6% retried. The usage_rollup trigger keeps the
rollups as the rows go in, as it does in production. Then, for workspace W0 (a tenth of all
rows):

* the digest of yesterday in America/New_York (whole hours: rollups only) and in Asia/Kolkata
  (UTC+05:30: the two hours a local midnight splits come from the raw rows), built by
  ``DigestBuilder`` with ``rollups=True`` and with ``rollups=False`` (every query over the raw
  rows, indexed by time, as before rollups);
* ``/usage`` (today by channel in W0, UTC) through ``UsageStore.report``, and the same GROUP BY
  over the raw rows;
* the dashboard's heaviest view: W0's page for the last 30 days, per day and stacked by user
  (500 users), with its tables (top users, channels, models, the filters' choices, failures),
  rendered by ``DashboardPage.render`` from the rollups and from the raw rows; and the
  failures export (``/api/v1/failures``: failed calls by error, from the raw failed rows
  through their partial index), which the page leaves to a link.

Each is run once to warm up, then ``--repeat`` times; the median is reported. The two ways must
give the same figures: the benchmark checks it and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text, type_coerce

from bench.common.postgres import create_database, drop_database
from bench.common.stats import percentile_or_zero
from bench.common.tables import markdown_table, write_results
from bot.dashboard.access import Access
from bot.dashboard.links import Links, Scope
from bot.dashboard.page import DashboardPage
from bot.dashboard.queries import Queries, View
from bot.digest.content import Digest, DigestBuilder
from bot.digest.window import local_today
from bot.store import Database, UsageStore, migrate
from bot.store.digests import DigestConfig
from bot.store.rollups import raw_source
from bot.store.schema import Money

DAYS = 60
CHUNK = 1_000_000
ZONES = ("America/New_York", "Asia/Kolkata")
OUT = Path(__file__).parent / "results" / "digest.json"

_FILL = """
INSERT INTO usage (call_id, request_id, created_at, platform, workspace, channel, thread, "user",
                   model, endpoint, prompt_tokens, completion_tokens, cost, usage_estimated,
                   latency_ms, outcome, retries, provider_request_id)
SELECT 'b' || g, 'r' || g,
       CAST(:start AS timestamptz) + (g * CAST(:step AS double precision)) * interval '1 second',
       'slack', 'W' || (g % 10), 'C' || ((g / 10) % 50), NULL, 'U' || ((g * 7919) % 500),
       (ARRAY['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'gpt-4.1-mini', 'gpt-3.5-turbo'])
           [1 + (g * 31) % 5],
       'chat',
       CASE WHEN g % 20 = 0 OR g % 50 = 1 THEN 0 ELSE 50 + g % 2000 END,
       CASE WHEN g % 20 = 0 OR g % 50 = 1 THEN 0 ELSE 10 + g % 500 END,
       CASE WHEN g % 20 = 0 OR g % 50 = 1 THEN NULL ELSE ((g % 100000) + 1) * 0.0000001 END,
       false, 100 + g % 900,
       CASE WHEN g % 20 = 0 THEN 'RateLimited' WHEN g % 50 = 1 THEN 'ServerError' ELSE 'ok' END,
       CASE WHEN g % 17 = 0 THEN 1 ELSE 0 END,
       NULL
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g
"""


@dataclass
class Result:
    rows: int
    fill_s: float
    rollup_rows: int
    digest_ny_raw_ms: float
    digest_ny_rollups_ms: float
    digest_kolkata_raw_ms: float
    digest_kolkata_rollups_ms: float
    usage_raw_ms: float
    usage_rollups_ms: float
    dashboard_raw_ms: float
    dashboard_rollups_ms: float
    dashboard_failures_ms: float
    same_figures: bool


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    result = await fn()  # warm-up (and the result, to compare)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - t) * 1000)
    return percentile_or_zero(times, 50), result


def _figures(d: Digest) -> tuple[Any, ...]:
    return (
        d.cost,
        d.requests,
        d.calls,
        d.failed,
        d.rate_limited,
        d.retries,
        d.prompt_tokens,
        d.completion_tokens,
        d.by_model,
        d.top_channels,
        d.top_users,
        d.series,
        d.month_to_date,
    )


async def naive_usage(db: Database, since: datetime) -> list[tuple[Any, ...]]:
    """The /usage query as it was before rollups: GROUP BY over the raw rows."""
    src = raw_source(since, datetime(9999, 1, 1, tzinfo=UTC), fine=True, where=_W0)
    stmt = select(
        src.c.channel,
        func.sum(src.c.calls),
        func.sum(src.c.failed),
        func.sum(src.c.prompt_tokens),
        func.sum(src.c.completion_tokens),
        type_coerce(func.sum(src.c.cost), Money()),
        func.sum(src.c.unpriced),
    ).group_by(src.c.channel)
    async with db.session() as s:
        return sorted(tuple(r) for r in (await s.execute(stmt)).all())


_W0 = (("platform", "slack"), ("workspace", "W0"))


async def run_size(admin_url: str, rows: int, repeat: int) -> Result:
    url = await create_database(admin_url, "quotabot_bench_digest")
    try:
        async with Database(url) as db:
            await migrate.upgrade(db)
            now = datetime.now(UTC)
            start = now - timedelta(days=DAYS)
            step = DAYS * 86400 / rows
            t = time.perf_counter()
            for lo in range(0, rows, CHUNK):
                hi = min(rows, lo + CHUNK) - 1
                async with db.engine.begin() as conn:
                    await conn.execute(text("SET LOCAL synchronous_commit = off"))
                    await conn.execute(
                        text(_FILL), {"start": start, "step": step, "lo": lo, "hi": hi}
                    )
                print(f"  {hi + 1:>12,} rows", file=sys.stderr, flush=True)
            async with db.engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
                rollup_rows = (
                    await conn.execute(text("SELECT count(*) FROM usage_hourly"))
                ).scalar_one()
            fill = time.perf_counter() - t

            store = UsageStore(db)
            out: dict[str, float] = {}
            same = True
            for tz in ZONES:
                cfg = DigestConfig("slack", "W0", "C0", tz=tz)
                day = local_today(cfg.zone) - timedelta(days=1)
                key = "ny" if tz.startswith("America") else "kolkata"
                for label, rollups in (("raw", False), ("rollups", True)):
                    builder = DigestBuilder(db, rollups=rollups)
                    ms, digest = await timed(lambda b=builder, c=cfg, d=day: b.build(c, d), repeat)
                    out[f"digest_{key}_{label}_ms"] = ms
                    out[f"_{key}_{label}"] = _figures(digest)  # type: ignore[assignment]
                same &= out.pop(f"_{key}_raw") == out.pop(f"_{key}_rollups")  # type: ignore[comparison-overlap]
            today = datetime(now.year, now.month, now.day, tzinfo=UTC)
            ms_roll, rolled = await timed(
                lambda: store.report(by="channel", since=today, where=_W0), repeat
            )
            ms_raw, raw = await timed(lambda: naive_usage(db, today), repeat)
            same &= sorted(
                (r.key, r.calls, r.failed, r.prompt_tokens, r.completion_tokens, r.cost)
                for r in rolled
            ) == sorted((k, c, f, p, q, cost or 0) for k, c, f, p, q, cost, _ in raw)
            view = View(
                since=today.date() - timedelta(days=29),
                until=today.date() + timedelta(days=1),
                every="day",
                stack="user",
                where=_W0,
            )
            scope = Scope("slack", "W0")
            access = Access(Links(b"bench-secret-0123456789", ttl=60, base_url=""), None)
            series = []
            for label, roll in (("raw", False), ("rollups", True)):
                queries = Queries(db, None, DigestBuilder(db), rollups=roll)
                page = DashboardPage(queries, access)
                ms, _ = await timed(lambda p=page: p.render(view, scope), repeat)
                out[f"dashboard_{label}_ms"] = ms
                series.append(await queries.series(view))
            same &= series[0] == series[1]
            out["dashboard_failures_ms"], _ = await timed(lambda: queries.failures(view), repeat)
            return Result(
                rows=rows,
                fill_s=round(fill, 1),
                rollup_rows=int(rollup_rows),
                usage_raw_ms=ms_raw,
                usage_rollups_ms=ms_roll,
                same_figures=same,
                **out,  # type: ignore[arg-type]
            )
    finally:
        await drop_database(admin_url, url)


def table(results: list[Result]) -> str:
    headers = [
        "usage rows",
        "rollup rows",
        "digest NY raw",
        "digest NY rollups",
        "digest Kolkata raw",
        "digest Kolkata rollups",
        "/usage raw",
        "/usage rollups",
        "dashboard raw",
        "dashboard rollups",
        "failures export",
        "same figures",
    ]
    rows = [
        [
            f"{r.rows:,}",
            f"{r.rollup_rows:,}",
            f"{r.digest_ny_raw_ms:,.1f} ms",
            f"{r.digest_ny_rollups_ms:,.1f} ms",
            f"{r.digest_kolkata_raw_ms:,.1f} ms",
            f"{r.digest_kolkata_rollups_ms:,.1f} ms",
            f"{r.usage_raw_ms:,.1f} ms",
            f"{r.usage_rollups_ms:,.1f} ms",
            f"{r.dashboard_raw_ms:,.1f} ms",
            f"{r.dashboard_rollups_ms:,.1f} ms",
            f"{r.dashboard_failures_ms:,.1f} ms",
            "yes" if r.same_figures else "NO",
        ]
        for r in results
    ]
    return markdown_table(headers, rows)


async def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.digest", description=__doc__)
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("QUOTABOT_TEST_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server to create (and drop) the throwaway databases on",
    )
    p.add_argument("--sizes", default="100000,10000000", help="usage rows, comma-separated")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    started = time.perf_counter()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"{size:,} usage rows:", file=sys.stderr, flush=True)
        results.append(await run_size(args.postgres_url, size, args.repeat))
    md = table(results)
    print(md)
    write_results(
        args.out,
        [asdict(r) for r in results],
        "# quotabot digests: benchmark results\n\n"
        f"`python -m bench.digest --sizes {args.sizes} --repeat {args.repeat}`, "
        f"{datetime.now(UTC):%Y-%m-%d}, PostgreSQL, medians of {args.repeat} runs.\n\n" + md + "\n",
    )
    met = all(r.digest_ny_rollups_ms < 100 and r.digest_kolkata_rollups_ms < 100 for r in results)
    print(f"target (digest under 100 ms at every size): {'met' if met else 'NOT met'}")
    met = all(r.dashboard_rollups_ms < 100 for r in results)
    print(f"target (dashboard's heaviest view under 100 ms): {'met' if met else 'NOT met'}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if all(r.same_figures for r in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
