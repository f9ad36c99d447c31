"""Many simulated users on Slack and Discord, over HTTP, against two ``quotabot serve`` replicas.

    .venv/bin/python -m bench.load                          # 300 users for 180 s, ~4 min in all
    .venv/bin/python -m bench.load --duration 20 --users 40  # a smoke run

Everything on 127.0.0.1, each in a process of its own (``bench/load/processes.py``; the users
are in ``bench/load/users.py``):

* the sandbox provider (``SandboxServer``, ``--latency`` seconds per call, 1.5 by default; its
  RPM/TPM/RPD off, and quotabot's own limits for the model raised, so that no budget holds a
  request back: this measures the HTTP path, the two replicas, PostgreSQL and Redis under many
  users; ``bench.budgets`` measures budgets);
* the fake Slack Web API and the fake Discord REST API (``fakes/``), each with a small
  control server: the load generator seeds the messages Slack would have (so that
  ``conversations.replies`` shows a thread), tells the fake Discord that an interaction was
  answered with a deferred response (as Discord learns from the HTTP answer), and reads back
  every finished answer (Slack: a stopped stream or a final edit; Discord: the edit of
  ``@original``) with its time;
* a fresh PostgreSQL database on the shared server (``quotabot_load_<random>``, dropped at the
  end) and a Redis key prefix of its own (``quotabot-load-<random>``, deleted at the end);
* two ``quotabot serve --no-scheduler`` replicas on ports of their own, Slack (HTTP) and Discord
  (HTTP interactions) on both;
* this process: the users. Each user is on Slack or Discord and asks a question, waits for the
  answer (or ``--answer-timeout``), thinks (``--think`` seconds, uniform), asks again, until the
  end of ``--duration``. Slack users mention the bot in a channel (Slack also sends the
  ``message`` twin of a mention: both are posted), follow up in the thread without a mention,
  write in a DM, or use ``/ask``; Discord users use ``/ask`` (one in ten privately). Every
  request is signed as the platforms sign them. There is no load balancer: the generator
  sends each HTTP request to the next replica in turn (round robin), so a mention and its twin,
  or a question and its follow-up, usually reach different replicas.

Afterwards it checks, in the database, that every answered question has exactly one usage row
(per user and per thread), and in the fakes that no question got two answers. It prints a
table and writes ``bench/load/results/load.md`` and ``load.json``. Figures depend on the machine and
on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common.postgres import create_database, drop_database
from bench.common.processes import cpu_seconds, rss_mb
from bench.common.stats import percentile_or_zero as pct
from bench.common.tables import markdown_table, write_results
from bench.load.processes import Helper, Replica, migrate, quotabot_env
from bench.load.users import Load, Question

RESULTS = Path(__file__).resolve().parent / "results" / "load.json"

# -- quotabot's own view: its /metrics ------------------------------------------------------

HISTOGRAMS = {
    "in quotabot (core)": "quotabot_request_seconds",
    "waiting for budget": "quotabot_queue_wait_seconds",
    "provider call": "quotabot_provider_seconds",
}


def histograms(texts: list[str]) -> dict[str, dict[str, float]]:
    """Mean and p95 (the upper bound of its bucket) of each histogram in ``HISTOGRAMS``,
    over every label and every replica's ``/metrics``."""
    out = {}
    for title, name in HISTOGRAMS.items():
        total = count = 0.0
        buckets: Counter[float] = Counter()
        for text in texts:
            for line in text.splitlines():
                metric, _, value = line.rpartition(" ")
                if metric.startswith(f"{name}_sum"):
                    total += float(value)
                elif metric.startswith(f"{name}_count"):
                    count += float(value)
                elif metric.startswith(f"{name}_bucket") and (
                    m := re.search(r'le="([^"]+)"', metric)
                ):
                    buckets[float(m.group(1))] += float(value)
        p95 = next((le for le in sorted(buckets) if buckets[le] >= 0.95 * count), 0.0)
        out[title] = {"count": count, "mean_s": total / count if count else 0.0, "p95_le_s": p95}
    return out


# -- one run ---------------------------------------------------------------------------------


async def usage_checks(database: str, questions: list[Question]) -> dict[str, Any]:
    """Usage rows against the answers: per user, and per thread where the row has one."""
    from sqlalchemy import func, select

    from bot.store import Database
    from bot.store.schema import UsageRecord

    async with Database(database) as db, db.session() as s:
        rows = (
            await s.execute(
                select(
                    UsageRecord.platform,
                    UsageRecord.user,
                    UsageRecord.thread,
                    UsageRecord.outcome,
                    func.count(),
                ).group_by(
                    UsageRecord.platform, UsageRecord.user, UsageRecord.thread, UsageRecord.outcome
                )
            )
        ).all()
    per_user: Counter[tuple[str, str]] = Counter()
    outcomes: Counter[str] = Counter()
    per_thread: Counter[str] = Counter()
    for platform, user, thread, outcome, n in rows:
        outcomes[outcome] += n
        if outcome == "ok":
            per_user[(platform, user)] += n
            if thread:
                per_thread[f"{platform}:{thread}"] += n
    answered: Counter[tuple[str, str]] = Counter(
        (q.platform, q.user) for q in questions if q.answered_at and not q.error
    )
    users = set(per_user) | set(answered)
    wrong_users = sorted(u for u in users if per_user[u] != answered[u])
    in_thread: Counter[str] = Counter(
        f"{q.platform}:{q.thread}" for q in questions if q.answered_at and not q.error and q.thread
    )
    threads = set(in_thread) | set(per_thread)
    return {
        "rows": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "users_checked": len(users),
        "users_rows_not_answers": len(wrong_users),
        "examples": [
            f"{p}:{u} rows {per_user[(p, u)]} answers {answered[(p, u)]}"
            for p, u in wrong_users[:5]
        ],
        "threads_checked": len(threads),
        "threads_rows_not_answers": sum(1 for t in threads if per_thread[t] != in_thread[t]),
        "threads_more_rows_than_answers": sum(1 for t in threads if per_thread[t] > in_thread[t]),
    }


@dataclass
class Report:
    users: int
    slack_users: int
    discord_users: int
    duration: float
    think: tuple[float, float]
    latency: float
    requests: int = 0
    acked: int = 0
    non_2xx: int = 0
    offered_per_s: float = 0.0
    acked_per_s: float = 0.0
    ack_p50_ms: float = 0.0
    ack_p99_ms: float = 0.0
    ack_max_ms: float = 0.0
    ack_by_platform: dict[str, dict[str, float]] = field(default_factory=dict)
    questions: int = 0
    answered: int = 0
    failed: int = 0
    unanswered: int = 0
    answers_per_min: float = 0.0
    tta_p50_s: float = 0.0
    tta_p95_s: float = 0.0
    tta_max_s: float = 0.0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    extra_answers: int = 0
    extra_examples: list[dict[str, Any]] = field(default_factory=list)
    provider_calls: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    replicas: list[dict[str, Any]] = field(default_factory=list)
    others_cpu: dict[str, float] = field(default_factory=dict)
    inside: dict[str, dict[str, float]] = field(default_factory=dict)
    """Where the time to answer goes, from the replicas' /metrics (means, p95 bucket)."""
    problems: list[str] = field(default_factory=list)
    runtime_s: float = 0.0


async def run(args: argparse.Namespace, tmp: Path) -> Report:
    from bot.budget.redis import RedisBackend

    discord_users = round(args.users * args.discord_share)
    report = Report(
        users=args.users,
        slack_users=args.users - discord_users,
        discord_users=discord_users,
        duration=args.duration,
        think=tuple(args.think),
        latency=args.latency,
    )
    prefix = f"quotabot-load-{uuid.uuid4().hex[:12]}"
    database = await create_database(args.postgres_url, "quotabot_load")
    replicas: list[Replica] = []
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
            Helper("sandbox", tmp / "sandbox.log", args.latency) as sandbox,
            Helper("slack", tmp / "slack.log") as slack,
            Helper("discord", tmp / "discord.log") as discord,
        ):
            load = Load(args, [], slack, discord)
            env = quotabot_env(
                database=database,
                redis=args.redis_url,
                prefix=prefix,
                provider=f"http://127.0.0.1:{sandbox.port}/v1",
                slack=f"http://127.0.0.1:{slack.port}/api/",
                discord=f"http://127.0.0.1:{discord.port}/api/v10",
                key=load.signer.public_key,
            )
            await migrate(env, tmp / "migrate.log")
            replicas = [Replica(i, env, tmp) for i in range(2)]
            await asyncio.gather(*(r.start() for r in replicas))
            load.urls = [r.url for r in replicas]
            load.http = http
            poller = asyncio.create_task(load.poll())

            # Warm-up: one Slack mention and one Discord /ask per replica, answers waited for.
            saved = args.think, args.duration
            await warm_up(load)
            warm_questions = len(load.questions)
            del load.acks[:]
            args.think, args.duration = saved

            cpu0 = {r.index: cpu_seconds(r.pid) for r in replicas}
            others0 = {c.role: cpu_seconds(c.pid) for c in (sandbox, slack, discord)}
            self0 = time.process_time()
            for r in replicas:
                r.rss = [rss_mb(r.pid)]

            async def sample() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    for r in replicas:
                        r.rss.append(rss_mb(r.pid))

            sampler = asyncio.create_task(sample())
            began = time.monotonic()
            load.stop_at = began + args.duration
            print(
                f"{args.users} users ({report.slack_users} Slack, {report.discord_users} "
                f"Discord) for {args.duration:.0f} s ...",
                flush=True,
            )
            users = [asyncio.create_task(load.slack_user(n)) for n in range(report.slack_users)]
            users += [asyncio.create_task(load.discord_user(n)) for n in range(discord_users)]
            await asyncio.sleep(args.duration)
            window = time.monotonic() - began
            cpu1 = {r.index: cpu_seconds(r.pid) for r in replicas}
            others1 = {c.role: cpu_seconds(c.pid) for c in (sandbox, slack, discord)}
            self1 = time.process_time()
            # Users ask nothing new now; what was asked gets its answer or its timeout.
            await asyncio.gather(*users)
            await asyncio.sleep(2.0)  # the last finals, and the usage rows' group commit
            sampler.cancel()
            poller.cancel()
            texts = []
            for r in replicas:
                async with http.get(f"{r.url}/metrics") as response:
                    texts.append(await response.text())
            report.inside = histograms(texts)
            for r in replicas:
                r.rss.append(rss_mb(r.pid))
            async with http.get(f"http://127.0.0.1:{sandbox.port}/sandbox/stats") as response:
                report.provider_calls = (await response.json())["total"]["requests"]

            questions = load.questions[warm_questions:]
            summarise(report, load, questions, window)
            for r in replicas:
                report.replicas.append(
                    {
                        "replica": r.index,
                        "rss_start_mb": round(r.rss[0], 1),
                        "rss_peak_mb": round(max(r.rss), 1),
                        "rss_end_mb": round(r.rss[-1], 1),
                        "cpu_percent": round(100 * (cpu1[r.index] - cpu0[r.index]) / window, 1),
                    }
                )
            report.others_cpu = {
                role: round(100 * (others1[role] - others0[role]) / window, 1) for role in others0
            }
            report.others_cpu["load generator"] = round(100 * (self1 - self0) / window, 1)
            report.usage = await usage_checks(database, load.questions)
            await asyncio.gather(*(r.stop() for r in replicas))
            for r in replicas:
                report.problems += [f"replica {r.index}: {p}" for p in r.problems()]
    finally:
        for r in replicas:
            await r.stop()
        with contextlib.suppress(Exception):
            async with RedisBackend(args.redis_url, prefix=prefix) as backend:
                await backend.delete_all()
        await drop_database(args.postgres_url, database)
    return report


async def warm_up(load: Load) -> None:
    args = load.args
    args.think = (0.0, 0.0)
    load.stop_at = time.monotonic() + 0.5
    await asyncio.gather(
        *(load.slack_user(10_000_000 + i) for i in range(2)),
        *(load.discord_user(10_000_000 + i) for i in range(2)),
    )
    missing = [q.tag for q in load.questions if not q.answered_at]
    if missing:
        raise RuntimeError(f"warm-up questions not answered: {missing}")


def summarise(report: Report, load: Load, questions: list[Question], window: float) -> None:
    acks = load.acks
    report.requests = len(acks)
    ok = [a for a in acks if 200 <= a.status < 300]
    report.acked = len(ok)
    report.non_2xx = report.requests - report.acked
    report.offered_per_s = report.requests / window
    report.acked_per_s = report.acked / window
    ms = [a.ms for a in ok]
    report.ack_p50_ms, report.ack_p99_ms = pct(ms, 50), pct(ms, 99)
    report.ack_max_ms = max(ms, default=0.0)
    for platform in ("slack", "discord"):
        mine = [a.ms for a in ok if a.platform == platform]
        report.ack_by_platform[platform] = {
            "requests": sum(a.platform == platform for a in acks),
            "p50_ms": round(pct(mine, 50), 1),
            "p99_ms": round(pct(mine, 99), 1),
        }
    report.questions = len(questions)
    answered = [q for q in questions if q.answered_at and not q.error]
    report.answered = len(answered)
    report.failed = sum(1 for q in questions if q.error)
    report.unanswered = sum(1 for q in questions if not q.answered_at)
    report.answers_per_min = 60 * report.answered / window
    tta = [q.answered_at - q.sent_at for q in answered if q.answered_at]
    report.tta_p50_s, report.tta_p95_s = pct(tta, 50), pct(tta, 95)
    report.tta_max_s = max(tta, default=0.0)
    kinds: dict[str, dict[str, int]] = {}
    for q in questions:
        k = kinds.setdefault(f"{q.platform} {q.kind}", {"asked": 0, "answered": 0, "failed": 0})
        k["asked"] += 1
        k["answered"] += bool(q.answered_at and not q.error)
        k["failed"] += bool(q.error)
    report.by_kind = kinds
    report.errors = dict(Counter(q.error for q in questions if q.error))
    for q in questions:
        if not q.acked:
            report.errors["request not acknowledged"] = (
                report.errors.get("request not acknowledged", 0) + 1
            )
        elif not q.answered_at:
            report.errors["no answer within the timeout"] = (
                report.errors.get("no answer within the timeout", 0) + 1
            )
    report.extra_answers = len(load.extra)
    report.extra_examples = load.extra[:5]


# -- report ----------------------------------------------------------------------------------


def table(r: Report) -> str:
    rows = [
        ("users (Slack / Discord)", f"{r.users} ({r.slack_users} / {r.discord_users})"),
        (
            "window, think time, provider latency",
            f"{r.duration:.0f} s, {r.think[0]:.0f}-{r.think[1]:.0f} s, {r.latency:.1f} s",
        ),
        (
            "HTTP requests offered / acked (2xx)",
            f"{r.requests:,} / {r.acked:,} ({r.non_2xx} not 2xx)",
        ),
        ("requests offered / acked per s", f"{r.offered_per_s:.1f} / {r.acked_per_s:.1f}"),
        (
            "ack latency p50 / p99 / max",
            f"{r.ack_p50_ms:.1f} / {r.ack_p99_ms:.1f} / {r.ack_max_ms:.0f} ms",
        ),
        *[
            (
                f"  {p} ack p50 / p99 ({v['requests']:.0f} requests)",
                f"{v['p50_ms']:.1f} / {v['p99_ms']:.1f} ms",
            )
            for p, v in r.ack_by_platform.items()
        ],
        ("questions asked / answered", f"{r.questions:,} / {r.answered:,}"),
        ("answers per minute", f"{r.answers_per_min:,.0f}"),
        (
            "time to answer p50 / p95 / max",
            f"{r.tta_p50_s:.2f} / {r.tta_p95_s:.2f} / {r.tta_max_s:.1f} s",
        ),
        *[
            (f"  {title}: mean / p95 (bucket)", f"{v['mean_s']:.2f} / ≤ {v['p95_le_s']:g} s")
            for title, v in r.inside.items()
        ],
        ("error messages shown / no answer", f"{r.failed} / {r.unanswered}"),
        (
            "error rate (questions not answered)",
            f"{100 * (r.questions - r.answered) / max(1, r.questions):.2f}%",
        ),
        ("second or stray answers", str(r.extra_answers)),
        (
            "provider calls / usage rows",
            f"{r.provider_calls:,} / {r.usage.get('rows', 0):,} (incl. warm-up)",
        ),
        (
            "users / threads whose usage rows ≠ answers",
            f"{r.usage.get('users_rows_not_answers')} of {r.usage.get('users_checked')} / "
            f"{r.usage.get('threads_rows_not_answers')} of {r.usage.get('threads_checked')}",
        ),
        *[
            (
                f"replica {x['replica']}: RSS start / peak / end, CPU",
                f"{x['rss_start_mb']:.0f} / {x['rss_peak_mb']:.0f} / {x['rss_end_mb']:.0f} MB, "
                f"{x['cpu_percent']:.0f}%",
            )
            for x in r.replicas
        ],
        (
            "CPU of the others (% of one core)",
            ", ".join(f"{k} {v:.0f}%" for k, v in r.others_cpu.items()),
        ),
    ]
    return markdown_table(("", ""), rows)


def kinds_table(r: Report) -> str:
    return markdown_table(
        ("kind", "asked", "answered", "error shown"),
        [
            (kind, f"{v['asked']:,}", f"{v['answered']:,}", f"{v['failed']}")
            for kind, v in sorted(r.by_kind.items())
        ],
    )


def markdown(r: Report, meta: dict[str, Any]) -> str:
    errors = "\n".join(f"- {k}: {v}" for k, v in sorted(r.errors.items())) or "- none"
    logged = "\n".join(f"- `{line[:300]}`" for line in r.problems[:10]) or "- nothing"
    return (
        "# Load test (`python -m bench.load`)\n\n"
        f"Two `quotabot serve` replicas (PostgreSQL, Redis), round robin from the load "
        f"generator; sandbox provider {r.latency:.1f} s per call; fake Slack and Discord APIs; "
        f"{meta['cpus']} CPUs, shared with other work; {meta['date']}.\n\n"
        + table(r)
        + "\n\n"
        + kinds_table(r)
        + "\n\nWhat users were shown instead of an answer:\n\n"
        + errors
        + f"\n\nWhat the replicas logged at WARNING or above ({len(r.problems)} lines):\n\n"
        + logged
        + "\n"
    )


async def main_async(args: argparse.Namespace) -> Report:
    with tempfile.TemporaryDirectory(prefix="quotabot-load-") as tmp:
        return await run(args, Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load (180)")
    parser.add_argument("--users", type=int, default=300, help="simulated users (300)")
    parser.add_argument(
        "--discord-share", type=float, default=0.4, help="share of users on Discord (0.4)"
    )
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(5.0, 25.0),
        metavar=("MIN", "MAX"),
        help="seconds a user waits between an answer and the next question (5 25)",
    )
    parser.add_argument("--latency", type=float, default=1.5, help="provider seconds per call")
    parser.add_argument("--answer-timeout", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "QUOTABOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a server to create the run's database on (QUOTABOT_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("QUOTABOT_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    began = time.monotonic()
    report = asyncio.run(main_async(args))
    report.runtime_s = round(time.monotonic() - began, 1)
    meta = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "argv": sys.argv[1:],
    }
    print()
    print(table(report))
    print()
    print(kinds_table(report))
    print("\nshown instead of an answer:", report.errors or "nothing")
    for line in report.problems[:10]:
        print(f"  logged: {line[:200]}")
    if report.extra_examples:
        print("second or stray answers, e.g.:", report.extra_examples[:3])
    print()
    write_results(args.out, {"meta": meta, "report": asdict(report)}, markdown(report, meta))
    print(f"total {report.runtime_s} s")


if __name__ == "__main__":
    main()
