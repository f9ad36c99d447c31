"""Signed Slack events acknowledged per second by one quotabot process, while the provider is slow.

    .venv/bin/python -m bench.slack_ack                  # 300/s and 600/s, 10 s each, ~1.5 min
    .venv/bin/python -m bench.slack_ack --rate 300 --duration 10 --break-rate 0
    BENCH_ACK_AFTER_CLAIM=true .venv/bin/python -m bench.slack_ack ...   # acks wait for claims

Three processes besides this one, all on 127.0.0.1 (``processes.py``): the sandbox provider
(2 s a call, no limits), the fake Slack Web API, and ``quotabot serve`` with Slack on. This
process is the load generator (``sender.py``): an open-loop sender of distinct signed
``app_mention`` events at a fixed rate, whose latency counts from when each event was due.
After the window, quotabot is given a while to finish the answers, which the fake Slack API
counts: the answers are the work that happens after the ack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common.postgres import create_database, drop_database
from bench.common.stats import percentile_or_zero as pct
from bench.common.tables import markdown_table, write_results
from bench.slack_ack.processes import LATENCY, PROVIDER_CONNECTIONS, Helper, quotabot
from bench.slack_ack.sender import CHANNELS, POOL, WARMUP, events, load, warm_up

RESULTS = Path(__file__).resolve().parent / "results" / "slack_ack.json"
TARGET_RATE = 300.0
TARGET_P99_MS = 50.0


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Run:
    rate: float
    duration: float
    sent: int = 0
    acked: int = 0
    non_200: int = 0
    errors: int = 0
    achieved: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    p99_from_send_ms: float = 0.0
    """p99 measured from when the sender actually sent, leaving out its own lag."""
    sender_lag_p99_ms: float = 0.0
    """How late the generator itself started sending (part of the latency above)."""
    cpu_percent: float = 0.0
    """quotabot's CPU use during the window, in percent of one core."""
    answers: int = 0
    answers_at_end_of_window: int = 0
    provider_calls: int = 0
    drain_seconds: float = 0.0
    listener_failures: int = 0
    """Events acked but then dropped: quotabot logged "Slack listener failed" for them."""
    met: bool = False
    notes: list[str] = field(default_factory=list)


async def one_run(
    rate: float,
    duration: float,
    drain: float,
    workdir: Path,
    concurrent: int | None = None,
    postgres: str | None = None,
) -> Run:
    """With ``postgres`` (a server's URL), quotabot runs on a fresh database made there for
    this run (and dropped after it) instead of SQLite."""
    if postgres is None:
        return await _one_run(rate, duration, drain, workdir, concurrent, None)
    from bot.store import Database, migrate

    database = await create_database(postgres, "quotabot_slack_ack")
    try:
        db = Database(database)
        await migrate.upgrade(db)
        await db.aclose()
        return await _one_run(rate, duration, drain, workdir, concurrent, database)
    finally:
        await drop_database(postgres, database)


async def _one_run(
    rate: float,
    duration: float,
    drain: float,
    workdir: Path,
    concurrent: int | None,
    database: str | None,
) -> Run:
    run = Run(rate=rate, duration=duration)
    data = workdir / f"rate{int(rate)}"
    data.mkdir()
    deliveries = events(int(rate * duration), f"r{int(rate)}")
    async with (
        Helper("sandbox", data / "sandbox.log") as sandbox,
        Helper("slack-api", data / "slack_api.log") as slack,
    ):
        provider = f"http://127.0.0.1:{sandbox.port}/v1"
        slack_api = f"http://127.0.0.1:{slack.port}/api/"
        async with quotabot(
            provider=provider,
            slack_api=slack_api,
            data_dir=data,
            concurrent=concurrent,
            database=database,
        ) as bot:
            url = f"{bot.url}/slack/events"
            await warm_up(url)
            for _ in range(100):  # let the warm-up's answers land, then count from there
                if (await slack.stats())["answers"] >= WARMUP:
                    break
                await asyncio.sleep(0.1)
            before = await slack.stats()
            calls_before = (await sandbox.stats())["requests"]

            cpu0, t0 = bot.cpu(), time.perf_counter()
            results, elapsed = await load(url, deliveries, rate)
            run.cpu_percent = 100 * (bot.cpu() - cpu0) / (time.perf_counter() - t0)
            run.answers_at_end_of_window = (await slack.stats())["answers"] - before["answers"]

            run.sent = len(results)
            ok = [r for r in results if r[2] == 200]
            run.acked = len(ok)
            run.errors = sum(r[2] == 0 for r in results)
            run.non_200 = run.sent - run.acked
            run.achieved = run.acked / elapsed
            latencies = [r[1] * 1000 for r in ok]
            run.p50_ms = pct(latencies, 50)
            run.p95_ms = pct(latencies, 95)
            run.p99_ms = pct(latencies, 99)
            run.max_ms = max(latencies, default=0.0)
            run.p99_from_send_ms = pct([(r[1] - r[0]) * 1000 for r in ok], 99)
            run.sender_lag_p99_ms = pct([r[0] * 1000 for r in results], 99)
            run.met = (
                run.non_200 == 0
                and run.achieved >= 0.97 * rate
                and run.p99_ms < TARGET_P99_MS
                and rate >= TARGET_RATE
            )

            drained = time.perf_counter()
            while time.perf_counter() - drained < drain:
                answers = (await slack.stats())["answers"] - before["answers"]
                if answers >= run.acked:
                    break
                await asyncio.sleep(0.5)
            run.drain_seconds = time.perf_counter() - drained
            run.answers = (await slack.stats())["answers"] - before["answers"]
            run.provider_calls = (await sandbox.stats())["requests"] - calls_before
        problems = bot.logged()
        run.listener_failures = sum("Slack listener failed" in line for line in problems)
        run.notes = [line for line in problems if " ERROR " in line or " WARNING " in line][:3]
    return run


# -- report ----------------------------------------------------------------------------------

HEADERS = (
    "offered/s",
    "sent",
    "acked/s",
    "non-200",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "p99 from send ms",
    "sender lag p99 ms",
    "quotabot CPU",
    "answers posted (end of window / after drain)",
    "listener failures",
    "p99 < 50 ms at ≥ 300/s",
)


def row(r: Run) -> list[str]:
    return [
        f"{r.rate:.0f}",
        f"{r.sent}",
        f"{r.achieved:.0f}",
        f"{r.non_200}",
        f"{r.p50_ms:.1f}",
        f"{r.p95_ms:.1f}",
        f"{r.p99_ms:.1f}",
        f"{r.max_ms:.0f}",
        f"{r.p99_from_send_ms:.1f}",
        f"{r.sender_lag_p99_ms:.1f}",
        f"{r.cpu_percent:.0f}%",
        f"{r.answers_at_end_of_window} / {r.answers} (drain {r.drain_seconds:.0f} s)",
        f"{r.listener_failures}",
        "met" if r.met else "not met",
    ]


def table(runs: list[Run]) -> str:
    return markdown_table(HEADERS, [row(r) for r in runs])


def markdown(runs: list[Run], meta: dict[str, Any]) -> str:
    return (
        "# Slack event ack rate (`python -m bench.slack_ack`)\n\n"
        f"One `quotabot serve` process; sandbox provider {LATENCY:.0f} s per call, limits off, "
        "in its own process; fake Slack Web API in its own process; open-loop sender "
        f"(aiohttp, {POOL} keep-alive connections), {CHANNELS} channels, "
        f"quotabot's provider connections {PROVIDER_CONNECTIONS}, "
        f"{meta['cpus']} CPUs. Latency is from when each event was due to its HTTP response.\n\n"
        + table(runs)
        + "\n"
    )


async def main_async(args: argparse.Namespace) -> list[Run]:
    rates = [args.rate] + ([args.break_rate] if args.break_rate else [])
    runs = []
    with tempfile.TemporaryDirectory(prefix="quotabot-slack-ack-") as tmp:
        for rate in rates:
            print(f"running {rate:.0f} events/s for {args.duration:.0f} s ...", flush=True)
            run = await one_run(
                rate, args.duration, args.drain, Path(tmp), args.concurrent, args.postgres
            )
            runs.append(run)
            print(" | ".join(row(run)), flush=True)
            for note in run.notes:
                print(f"  quotabot logged: {note[:200]}", flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slack_ack", description=__doc__)
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="events/s (300)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load (10)")
    parser.add_argument(
        "--break-rate", type=float, default=600.0, help="a second, higher rate (600; 0: none)"
    )
    parser.add_argument(
        "--drain", type=float, default=15.0, help="max seconds to wait for answers (15)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run quotabot on a fresh database on this PostgreSQL server instead of SQLite",
    )
    parser.add_argument(
        "--concurrent-answers",
        dest="concurrent",
        type=int,
        help=f"QUOTABOT_CONCURRENT_ANSWERS of the process (default {PROVIDER_CONNECTIONS})",
    )
    args = parser.parse_args()

    began = time.monotonic()
    runs = asyncio.run(main_async(args))
    meta = {
        "cpus": os.cpu_count(),
        "provider_latency_s": LATENCY,
        "pool": POOL,
        "channels": CHANNELS,
        "target": {"rate": TARGET_RATE, "p99_ms": TARGET_P99_MS},
        "python": sys.version.split()[0],
        "runtime_s": round(time.monotonic() - began, 1),
    }
    print()
    print(table(runs))
    target = next((r for r in runs if r.rate >= TARGET_RATE), None)
    if target is not None:
        print(
            f"\ntarget (p99 ack < {TARGET_P99_MS:.0f} ms at >= {TARGET_RATE:.0f}/s): "
            f"{'MET' if target.met else 'NOT MET'} at {target.rate:.0f}/s "
            f"(p99 {target.p99_ms:.1f} ms, {target.achieved:.0f} acks/s)"
        )
    write_results(args.out, {"meta": meta, "runs": [asdict(r) for r in runs]}, markdown(runs, meta))
    print(f"total {meta['runtime_s']} s")


if __name__ == "__main__":
    main()
