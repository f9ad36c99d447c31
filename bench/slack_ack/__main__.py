"""Signed Slack events acknowledged per second by one quotabot process, while the provider is slow.

    .venv/bin/python -m bench.slack_ack                  # 300/s and 600/s, 10 s each, ~1.5 min
    .venv/bin/python -m bench.slack_ack --rate 300 --duration 10 --break-rate 0
    BENCH_ACK_AFTER_CLAIM=true .venv/bin/python -m bench.slack_ack ...   # acks wait for claims

Three processes besides this one, all on 127.0.0.1:

* the sandbox provider (``bot.sandbox.SandboxServer``, 2 s latency, no RPM/TPM/RPD), started as
  ``python -m bench.slack_ack --child sandbox``;
* the fake Slack Web API (``fakes.slack_api.FakeSlackAPI``), ``--child slack-api``; it
  answers ``stats`` on stdin with a JSON line of what it was asked;
* quotabot itself, ``quotabot serve`` (Slack on, temporary SQLite data dir, paid tier, the
  model's RPM/TPM/RPD raised so that no budget holds anything back).

This process is the load generator: an open-loop sender of distinct signed ``app_mention``
events (new ts and event_id each, 64 channels) at a fixed rate, over one aiohttp session with
a keep-alive pool (not httpx: its pool's cost grows with queued requests times connections,
and made the sender the bottleneck). Latency is measured from the moment each event was due
to be sent (so a backlog in the sender or its pool counts against the ack, not hidden) to its
HTTP response.
After the window, quotabot is given a while to finish the answers, which the fake Slack API
counts: the answers are the work that happens after the ack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.common.processes import cpu_seconds, free_port, stop_child, stop_quotabot

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results" / "slack_ack.json"
SECRET = "bench-signing-secret-0123456789abcdef"
CHANNELS = 64
LATENCY = 2.0
"""Seconds the sandbox takes for every provider call."""
TARGET_RATE = 300.0
TARGET_P99_MS = 50.0
POOL = 64
PROVIDER_CONNECTIONS = 100
"""quotabot's default: at 2 s per call, about 50 answers a second from one process."""
"""Keep-alive connections from the load generator (Slack itself opens many)."""
WARMUP = 20
START_TIMEOUT = 30.0


# -- the child processes ---------------------------------------------------------------------


async def _child(role: str) -> None:
    if role == "sandbox":
        from bot.sandbox import SandboxConfig, SandboxServer

        server: Any = SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None, latency=LATENCY))

        def stats() -> dict[str, Any]:
            return {"requests": server.stats.total.requests}
    else:
        from fakes.slack_api import FakeSlackAPI

        server = FakeSlackAPI()

        def stats() -> dict[str, Any]:
            # However the adapter delivers it (chat.update of the placeholder, or Slack's
            # streaming methods), an answer is a finished message with the sandbox's text.
            methods: dict[str, int] = {}
            for call in server.calls:
                methods[call.method] = methods.get(call.method, 0) + 1
            answers = sum(
                m.visible_text.startswith("Sandbox answer") and not m.streaming
                for messages in server.state.messages.values()
                for m in messages
            )
            return {"answers": answers, "calls": len(server.calls), "methods": methods}

    loop = asyncio.get_running_loop()
    async with server:
        port = server.port if role == "sandbox" else int(server.base_url.rsplit(":", 1)[1])
        print(port, flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "stats":
                print(json.dumps(stats()), flush=True)


class Child:
    """``python -m bench.slack_ack --child ROLE``: prints its port, serves until stdin closes."""

    def __init__(self, role: str, log: Path):
        self.role, self.log = role, log
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> Child:
        with open(self.log, "ab") as log:  # noqa: ASYNC230 - opening a log file is instant
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.slack_ack",
                "--child",
                self.role,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
            )
        line = await asyncio.wait_for(self._readline(), START_TIMEOUT)
        if not line.isdigit():
            raise RuntimeError(f"{self.role} did not start; see {self.log}")
        self.port = int(line)
        return self

    async def _readline(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        return (await self.proc.stdout.readline()).decode().strip()

    async def stats(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"stats\n")
        await self.proc.stdin.drain()
        return json.loads(await asyncio.wait_for(self._readline(), 10))

    async def __aexit__(self, *exc: object) -> None:
        await stop_child(self.proc)


# -- quotabot under test ---------------------------------------------------------------------


class Quotabot:
    """``quotabot serve`` with Slack on, as a process of its own."""

    def __init__(
        self,
        *,
        provider: str,
        slack_api: str,
        data_dir: Path,
        concurrent: int | None = None,
        database: str | None = None,
    ):
        from fakes.slack_api import DEFAULT_TOKEN

        self.port = free_port()
        self.log = data_dir / "quotabot.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("QUOTABOT_", "OPENAI_", "SLACK_", "DISCORD_"))
        }
        if os.environ.get("BENCH_PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["BENCH_PYTHONPATH"]
        env.update(
            QUOTABOT_DATA_DIR=str(data_dir),
            QUOTABOT_HTTP_HOST="127.0.0.1",
            QUOTABOT_HTTP_PORT=str(self.port),
            QUOTABOT_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            # BENCH_ACK_AFTER_CLAIM=true: acks wait for each event's claim (see README).
            QUOTABOT_ACK_AFTER_CLAIM=os.environ.get("BENCH_ACK_AFTER_CLAIM", "false"),
            QUOTABOT_PROVIDER_TIER="paid",
            # Paid-tier gpt-3.5-turbo is 60 RPM in the catalog: raised so nothing waits on it.
            QUOTABOT_MODELS=json.dumps(
                {"gpt-3.5-turbo": {"rpm": 10**7, "tpm": 10**10, "rpd": 10**9}}
            ),
            QUOTABOT_QUEUE_SIZE="100000",
            QUOTABOT_REQUEST_DEADLINE="600",
            QUOTABOT_MAX_TOKENS="64",
            QUOTABOT_PROVIDER_CONNECTIONS=str(PROVIDER_CONNECTIONS),
            QUOTABOT_CONCURRENT_ANSWERS=str(concurrent or PROVIDER_CONNECTIONS),
            **({"QUOTABOT_DATABASE_URL": database} if database else {}),
            OPENAI_BASE_URL=provider,
            OPENAI_API_KEY="sk-bench",
            SLACK_BOT_TOKEN=DEFAULT_TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack_api,
        )
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Quotabot:
        exe = Path(sys.executable).parent / "quotabot"
        cmd = (
            [str(exe)] if exe.exists() else [sys.executable, "-c", "import bot.cli as c; c.main()"]
        )
        with open(self.log, "ab") as log:  # noqa: ASYNC230 - opening a log file is instant
            self.proc = await asyncio.create_subprocess_exec(
                *cmd, "serve", env=self.env, cwd=ROOT, stdout=log, stderr=log
            )
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return self
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"quotabot did not start; see {self.log}")
                await asyncio.sleep(0.1)

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    async def __aexit__(self, *exc: object) -> None:
        await stop_quotabot(self.proc, 3)  # letting answers under way finish: not worth it

    def problems(self) -> list[str]:
        """What quotabot logged (at WARNING and above: its log level here)."""
        if not self.log.exists():
            return []
        quiet = ("quotabot serving on", "`token` will be unused")
        lines = self.log.read_text().splitlines()
        return [line for line in lines if line.strip() and not any(q in line for q in quiet)]


# -- the load generator ----------------------------------------------------------------------


def _events(n: int, tag: str) -> list[tuple[bytes, dict[str, str]]]:
    """``n`` distinct signed app_mention deliveries, built before the clock starts."""
    from fakes import slack_events as ev

    out = []
    for i in range(n):
        payload = ev.app_mention(f"bench {tag} question {i}", channel=f"CBENCH{i % CHANNELS:04d}")
        body = ev.encode_event(payload)
        headers = {"Content-Type": "application/json", **ev.signed_request(body, SECRET)}
        out.append((body, headers))
    return out


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


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _fire(
    client: aiohttp.ClientSession,
    url: str,
    delivery: tuple[bytes, dict[str, str]],
    due: float,
    out: list[tuple[float, float, int]],
) -> None:
    started = time.perf_counter()
    try:
        async with client.post(url, data=delivery[0], headers=delivery[1]) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    out.append((started - due, time.perf_counter() - due, status))


async def load(url: str, deliveries: list[tuple[bytes, dict[str, str]]], rate: float) -> Any:
    """Open loop: event ``i`` is due at ``start + i / rate`` whether or not earlier ones were
    answered. Returns [(lag, latency, status)] and the wall time from start to the last ack."""
    out: list[tuple[float, float, int]] = []
    # aiohttp, not httpx: httpcore's pool costs O(queued x connections) per request, which
    # made this load generator, not quotabot, the bottleneck once requests queued.
    connector = aiohttp.TCPConnector(limit=POOL)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        tasks = []
        start = time.perf_counter() + 0.05
        for i, delivery in enumerate(deliveries):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_fire(client, url, delivery, due, out)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return out, elapsed


async def warm_up(url: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for body, headers in _events(WARMUP, "warmup"):
            response = await client.post(url, content=body, headers=headers)
            response.raise_for_status()


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
    from bench.load.processes import create_database, drop_database
    from bot.store import Database, migrate

    database = await create_database(postgres)
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
    deliveries = _events(int(rate * duration), f"r{int(rate)}")
    async with (
        Child("sandbox", data / "sandbox.log") as sandbox,
        Child("slack-api", data / "slack_api.log") as slack,
    ):
        provider = f"http://127.0.0.1:{sandbox.port}/v1"
        slack_api = f"http://127.0.0.1:{slack.port}/api/"
        async with Quotabot(
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
            run.p50_ms = _pct(latencies, 0.50)
            run.p95_ms = _pct(latencies, 0.95)
            run.p99_ms = _pct(latencies, 0.99)
            run.max_ms = max(latencies, default=0.0)
            run.p99_from_send_ms = _pct([(r[1] - r[0]) * 1000 for r in ok], 0.99)
            run.sender_lag_p99_ms = _pct([r[0] * 1000 for r in results], 0.99)
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
        problems = bot.problems()
        run.listener_failures = sum("Slack listener failed" in line for line in problems)
        run.notes = [line for line in problems if " ERROR " in line or " WARNING " in line][:3]
    return run


# -- report ----------------------------------------------------------------------------------

HEADER = (
    "| offered/s | sent | acked/s | non-200 | p50 ms | p95 ms | p99 ms | max ms "
    "| p99 from send ms | sender lag p99 ms | quotabot CPU "
    "| answers posted (end of window / after drain) | listener failures "
    "| p99 < 50 ms at ≥ 300/s |"
)


def table(runs: list[Run]) -> str:
    lines = [HEADER, _rule()]
    for r in runs:
        lines.append(
            f"| {r.rate:.0f} | {r.sent} | {r.achieved:.0f} | {r.non_200} | {r.p50_ms:.1f} "
            f"| {r.p95_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.0f} | {r.p99_from_send_ms:.1f} "
            f"| {r.sender_lag_p99_ms:.1f} "
            f"| {r.cpu_percent:.0f}% | {r.answers_at_end_of_window} / {r.answers} "
            f"(drain {r.drain_seconds:.0f} s) | {r.listener_failures} "
            f"| {'met' if r.met else 'not met'} |"
        )
    return "\n".join(lines)


def _rule() -> str:
    return "|" + "---:|" * (HEADER.count("|") - 1)


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
            print(table([run]).splitlines()[-1], flush=True)
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
    parser.add_argument("--child", choices=("sandbox", "slack-api"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_child(args.child))
        return

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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in runs]}, indent=2))
    args.out.with_suffix(".md").write_text(markdown(runs, meta))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}; total {meta['runtime_s']} s")


if __name__ == "__main__":
    main()
