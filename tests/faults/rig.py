"""A small quotabot deployment of the test's own, to break on purpose.

    async with Rig(tmp_path) as rig:           # PostgreSQL, Redis, sandbox, fake Slack
        await rig.start_replicas(2)            # two `quotabot serve` processes
        events = await rig.drive(40, rate=20)  # signed Slack events, spread over both
        await rig.settle(events)
        check = await rig.check(events)

Everything quotabot talks to is real and of the test's own: a throwaway PostgreSQL (initdb +
pg_ctl, migrated with ``quotabot db upgrade``), a throwaway ``redis-server``, the sandbox as a
process of its own (its count of what it served outlives a killed replica) and the fake Slack
and Discord APIs (in this process: they record every message posted and edited). The shared
PostgreSQL and Redis are never touched.

The load driver plays Slack: each event is a new message (its own thread), posted signed to a
replica; an event that got no 200 (the replica died, or refused it) is delivered again, to a
live replica, with ``X-Slack-Retry-Num``, as Slack redelivers unacknowledged events. It can
play Discord too (``discord_every``): signed ``/ask`` interactions, posted once, as Discord
does (the fake Discord API then takes the interaction's webhook calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.discord.live import MARKER
from bot.config import async_database_url
from fakes import slack_events as ev
from fakes.discord_api import APPLICATION_ID, FakeDiscordAPI, Signer, interaction, option
from fakes.ports import free_port
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from fakes.slack_workspace import DEFAULT_CHANNEL, DEFAULT_WORKSPACE
from tests.faults import pgserver, redisserver
from tests.faults.pgserver import PgServer
from tests.faults.redisserver import RedisServer

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
THINKING = "_Thinking…_"
LEASE = 3.0
"""Seconds before a killed replica's events are taken over (``QUOTABOT_EVENT_LEASE``)."""
_CLI = ("-c", "import bot.cli as c; c.main()")


def require_servers() -> None:
    """Skip when initdb/pg_ctl or redis-server are missing; in CI (``CI=true``), fail."""
    missing = [why for why in (pgserver.available(), redisserver.available()) if why]
    if not missing:
        return
    reason = "fault tests need a throwaway PostgreSQL and Redis: " + "; ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUOTABOT_", "SLACK_", "DISCORD_", "OPENAI_"))
    }
    env.update(extra)
    return env


@dataclass
class Process:
    """A child process with its output in a log file (read when a test fails)."""

    name: str
    log: Path
    proc: asyncio.subprocess.Process | None = None

    async def spawn(self, *args: str, env: dict[str, str]) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *_CLI, *args, env=env, stdout=out, stderr=out
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no grace, nothing flushed."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            await self.proc.wait()

    async def terminate(self, grace: float = 30) -> int | None:
        if not self.running:
            return None if self.proc is None else self.proc.returncode
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            await self.kill()
            return None

    def tail(self, lines: int | None = 40) -> str:
        """The last ``lines`` lines of the log (None: all of it)."""
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(text if lines is None else text[-lines:])


@dataclass
class Replica(Process):
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.spawn("serve", "--no-scheduler", env=self.env)
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if not self.running:
                    raise RuntimeError(f"{self.name} ended at start:\n{self.tail()}")
                try:
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.tail()}")


@dataclass(frozen=True)
class Event:
    """One question: a Slack message in a thread of its own, or a Discord ``/ask``."""

    number: int
    payload: dict[str, Any]
    platform: str = "slack"

    @property
    def key(self) -> str:
        """The usage rows' ``thread``: the message's ts, or the interaction's id."""
        if self.platform == "discord":
            return str(self.payload["id"])
        return str(self.payload["event"]["ts"])

    @property
    def event_id(self) -> str:
        return str(self.payload["id" if self.platform == "discord" else "event_id"])


@dataclass
class Deliveries:
    """What the load driver did: every POST, and which events were never acknowledged."""

    events: list[Event] = field(default_factory=list)
    posts: Counter[str] = field(default_factory=Counter)
    """Deliveries per event_id (1 + Slack's redeliveries)."""
    unacked: list[Event] = field(default_factory=list)
    """Events no replica acknowledged, even after every redelivery."""
    acked_by: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Per event_id: the replica that acknowledged it, and when (``time.monotonic()``)."""


@dataclass
class Thread:
    event: Event
    bot_messages: list[str]
    """Every message from the bot that the asker sees, as it reads now."""
    answers_given: int = 0
    """Times an answer was written: a second handling of a Discord interaction would edit the
    same message again, so its edits are counted."""

    @property
    def answered(self) -> bool:
        return (
            len(self.bot_messages) == 1
            and self.bot_messages[0].startswith("Sandbox")
            and self.answers_given == 1
        )

    @property
    def settled(self) -> bool:
        """The bot has said its last word here: an answer or an error, not a placeholder."""
        return all(
            m != THINKING and not m.startswith("_") and not m.endswith(" …")
            for m in self.bot_messages
        ) and bool(self.bot_messages)


@dataclass(frozen=True)
class UsageRow:
    call_id: str
    provider_request_id: str | None
    thread: str | None
    outcome: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Check:
    """Everything the assertions compare, gathered after the dust settled."""

    threads: list[Thread]
    rows: list[UsageRow]
    served: dict[str, dict[str, Any]]
    """Per x-request-id: what the sandbox answered with a completion."""
    stats: dict[str, Any]

    @property
    def ok_rows(self) -> list[UsageRow]:
        return [r for r in self.rows if r.outcome == "ok"]

    def rows_by_response(self) -> Counter[str | None]:
        return Counter(r.provider_request_id for r in self.ok_rows)

    def summary(self) -> str:
        """What the threads show and the sandbox counted, for assertion messages."""
        shown = Counter(
            "answer" if t.answered else " | ".join(m[:40] for m in t.bot_messages) or "nothing"
            for t in self.threads
        )
        return f"threads: {dict(shown)}; rows: {len(self.rows)}; sandbox: {self.stats['total']}"

    def doubled_answers(self) -> list[Thread]:
        return [t for t in self.threads if len(t.bot_messages) > 1 or t.answers_given > 1]

    def recorded_tokens(self) -> int:
        return sum(r.prompt_tokens + r.completion_tokens for r in self.ok_rows)

    def served_tokens(self, ids: set[str] | None = None) -> int:
        return sum(
            s["prompt_tokens"] + s["completion_tokens"]
            for rid, s in self.served.items()
            if ids is None or rid in ids
        )

    def assert_rows_match_served(self) -> None:
        """Every ok row is a response the sandbox served, with its tokens, and no response has
        two rows (the row's provider_request_id is the response's x-request-id)."""
        doubled = {rid: n for rid, n in self.rows_by_response().items() if n > 1}
        assert not doubled, f"responses with more than one usage row: {doubled}"
        for row in self.ok_rows:
            assert row.provider_request_id in self.served, f"row of no served response: {row}"
            served = self.served[row.provider_request_id]
            assert (row.prompt_tokens, row.completion_tokens) == (
                served["prompt_tokens"],
                served["completion_tokens"],
            ), (row, served)
        assert len({r.call_id for r in self.rows}) == len(self.rows)


class Rig:
    def __init__(
        self,
        tmp_path: Path,
        *,
        latency: float = 0.3,
        failure_rate: float = 0.0,
        seed: int = 7,
        replica_env: dict[str, str] | None = None,
    ) -> None:
        self.tmp = tmp_path
        self.latency = latency
        self.failure_rate = failure_rate
        self.seed = seed
        self.replica_env = replica_env or {}
        self.pg = PgServer()
        self.redis = RedisServer(tmp_path)
        self.sandbox = Process("sandbox", tmp_path / "sandbox.log")
        self.sandbox_port = free_port()
        self.slack = FakeSlackAPI(streaming_supported=False)
        self.discord = FakeDiscordAPI(limit=1000)
        self.signer = Signer()
        self.replicas: list[Replica] = []
        self._stack = contextlib.AsyncExitStack()
        self._numbers = itertools.count()
        self._http = httpx.AsyncClient(timeout=10)

    @property
    def database_url(self) -> str:
        return self.pg.url

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        require_servers()
        self._stack.push_async_callback(self._http.aclose)
        try:
            await asyncio.to_thread(self._start_databases)
            self._stack.callback(self._stop_databases)
            await self._migrate()
            await self._start_sandbox()
            self._stack.push_async_callback(self.sandbox.kill)
            await self._stack.enter_async_context(self.slack)
            await self._stack.enter_async_context(self.discord)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            for replica in self.replicas:
                await replica.kill()
        finally:
            await self._stack.aclose()

    def _start_databases(self) -> None:
        self.pg.init()
        self.pg.start()
        self.redis.start()

    def _stop_databases(self) -> None:
        self.redis.kill()
        with contextlib.suppress(Exception):
            self.pg.stop("immediate")
        self.pg.remove()

    async def _migrate(self) -> None:
        migrate = Process("db upgrade", self.tmp / "migrate.log")
        await migrate.spawn("db", "upgrade", env=_env(QUOTABOT_DATABASE_URL=self.database_url))
        assert migrate.proc is not None
        if await asyncio.wait_for(migrate.proc.wait(), 120) != 0:
            raise RuntimeError(f"quotabot db upgrade failed:\n{migrate.tail()}")

    async def _start_sandbox(self) -> None:
        args = ["sandbox", "--port", str(self.sandbox_port), "--seed", str(self.seed)]
        # Limits out of the way: the faults under test are the injected ones.
        args += ["--rpm", "1000000", "--tpm", "1000000000", "--rpd", "100000000"]
        args += ["--latency", str(self.latency), "--failure-rate", str(self.failure_rate)]
        await self.sandbox.spawn(*args, env=_env())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.sandbox.running:
                raise RuntimeError(f"the sandbox ended at start:\n{self.sandbox.tail()}")
            try:
                if (await self._http.get(f"{self.sandbox_url}/sandbox/stats")).status_code == 200:
                    return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
        raise RuntimeError("the sandbox did not start")

    def replica(self, index: int) -> Replica:
        """The settings of replica ``index``: its own port and data directory (spool), the
        shared database, Redis, sandbox and Slack."""
        data = self.tmp / f"replica-{index}"
        data.mkdir(exist_ok=True)
        port = free_port()
        env = _env(
            QUOTABOT_DATA_DIR=str(data),
            QUOTABOT_HTTP_PORT=str(port),
            QUOTABOT_DATABASE_URL=self.database_url,
            QUOTABOT_REDIS_URL=self.redis.url,
            QUOTABOT_PROVIDER_TIER="paid",
            QUOTABOT_SHUTDOWN_GRACE="5",
            # A killed replica's events are taken over after 3 s (30 by default).
            QUOTABOT_EVENT_LEASE=str(LEASE),
            OPENAI_BASE_URL=f"{self.sandbox_url}/v1",
            OPENAI_API_KEY="sk-test",
            SLACK_BOT_TOKEN=DEFAULT_TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=self.slack.url,
            DISCORD_PUBLIC_KEY=self.signer.public_key,
            DISCORD_APPLICATION_ID=APPLICATION_ID,
            DISCORD_API_URL=self.discord.url,
        )
        env.update(self.replica_env)
        return Replica(f"replica-{index}", self.tmp / f"replica-{index}.log", port=port, env=env)

    async def start_replicas(self, count: int = 2) -> list[Replica]:
        self.replicas = [self.replica(i) for i in range(count)]
        await asyncio.gather(*(r.start() for r in self.replicas))
        return self.replicas

    def spool(self, replica: Replica) -> Path:
        return Path(replica.env["QUOTABOT_DATA_DIR"]) / "usage-spool.jsonl"

    def logs(self, lines: int | None = None) -> str:
        """Every process's log (or its last ``lines`` lines), one after the other."""
        procs: list[Process] = [self.sandbox, *self.replicas]
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in procs)

    # -- load --------------------------------------------------------------------------------

    def new_event(self, platform: str = "slack") -> Event:
        n = next(self._numbers)
        if platform == "discord":
            user = str(1400000000000001000 + n)
            return Event(
                n, interaction("ask", [option("prompt", f"question {n}")], user_id=user), platform
            )
        payload = ev.app_mention(f"question {n}", user=f"U{n:05d}")
        self.slack.seed_event(payload)
        return Event(n, payload)

    async def _deliver_interaction(self, event: Event, deliveries: Deliveries, first: int) -> None:
        """Discord posts an interaction once, and never again: a failed post is the user's
        "The application did not respond"."""
        replica = self.replicas[first % len(self.replicas)]
        deliveries.posts[event.event_id] += 1
        url = f"{replica.url}/discord/interactions"
        try:
            response = await self.signer.post(self._http, url, event.payload)
        except httpx.HTTPError:
            deliveries.unacked.append(event)
            return
        if response.status_code != 200:
            deliveries.unacked.append(event)
            return
        self.discord.acknowledged(event.payload, response.json())
        deliveries.acked_by[event.event_id] = (replica.name, time.monotonic())

    async def deliver(self, event: Event, deliveries: Deliveries, first: int) -> None:
        """Slack's delivery of one event: to a replica, then again (to whichever replica is up)
        until acknowledged, at most 3 retries, as Slack does (it waits 1 min and 5 min between
        them; here a moment)."""
        if event.platform == "discord":
            await self._deliver_interaction(event, deliveries, first)
            return
        for attempt in range(4):
            replica = self.replicas[(first + attempt) % len(self.replicas)]
            deliveries.posts[event.event_id] += 1
            try:
                response = await ev.post_event(
                    self._http,
                    f"{replica.url}/slack/events",
                    event.payload,
                    SECRET,
                    retry_num=attempt or None,
                    retry_reason="http_error",
                )
                if response.status_code == 200:
                    deliveries.acked_by[event.event_id] = (replica.name, time.monotonic())
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
        deliveries.unacked.append(event)

    async def drive(
        self,
        count: int,
        *,
        rate: float,
        deliveries: Deliveries | None = None,
        discord_every: int = 0,
    ) -> Deliveries:
        """Post ``count`` new events, ``rate`` a second, alternating between the replicas;
        with ``discord_every=n``, every n-th is a Discord ``/ask`` instead of a Slack message."""
        deliveries = deliveries or Deliveries()
        tasks = []
        for i in range(count):
            discord = discord_every and i % discord_every == discord_every - 1
            event = self.new_event("discord" if discord else "slack")
            deliveries.events.append(event)
            tasks.append(asyncio.create_task(self.deliver(event, deliveries, i)))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
        return deliveries

    # -- what happened -----------------------------------------------------------------------

    def thread(self, event: Event) -> Thread:
        if event.platform == "discord":
            sent = self.discord.thread(event.payload["token"])
            # A streamed answer grows by edits ending in the marker; only the finished one counts.
            given = sum(
                e.startswith("Sandbox") and not e.endswith(MARKER) for m in sent for e in m.edits
            )
            return Thread(event, [m.content for m in sent], given)
        bot = DEFAULT_WORKSPACE.bot_id
        messages = [
            m.visible_text
            for m in self.slack.history(DEFAULT_CHANNEL, event.key)
            if m.ts != event.key and m.bot_id == bot
        ]
        return Thread(event, messages, sum(m.startswith("Sandbox") for m in messages))

    def in_flight(self, events: list[Event]) -> list[Thread]:
        """Threads where the bot has started an answer and not finished it."""
        threads = [self.thread(e) for e in events]
        return [t for t in threads if t.bot_messages and not t.settled]

    async def settle(
        self, events: list[Event], *, within: float = 45, expect_stuck: int = 0
    ) -> None:
        """Wait until the bot has answered (or given up on) every thread but ``expect_stuck``
        of them, no spool is left, and nothing has changed for ``quiet`` seconds: not a thread,
        not the usage rows, not the sandbox's count (a thread still under way when some may be
        stuck for good must not pass for a stuck one)."""
        quiet = 2 * self.latency + 1.0
        deadline = time.monotonic() + within
        last: object = None
        since = time.monotonic()
        while time.monotonic() < deadline:
            threads = tuple(tuple(self.thread(e).bot_messages) for e in events)
            unsettled = sum(not self.thread(e).settled for e in events)
            spooled = any(self.spool(r).exists() for r in self.replicas)
            rows = len(await self.usage_rows())
            served = len(await self.sandbox_served())
            state = (threads, rows, served)
            if state != last:
                last, since = state, time.monotonic()
            elif unsettled <= expect_stuck and not spooled and time.monotonic() - since >= quiet:
                return
            await asyncio.sleep(0.25)
        # Not fatal here: the assertions say what is wrong, with the threads in hand.

    async def usage_rows(self) -> list[UsageRow]:
        engine = create_async_engine(async_database_url(self.database_url))
        try:
            async with engine.connect() as conn:
                result = await conn.execute(
                    text(
                        "SELECT call_id, provider_request_id, thread, outcome, prompt_tokens,"
                        " completion_tokens FROM usage ORDER BY id"
                    )
                )
                return [UsageRow(*row) for row in result.all()]
        finally:
            await engine.dispose()

    async def open_claims(self) -> set[str]:
        """Keys of the events some replica still holds a lease on: claimed, not done yet."""
        engine = create_async_engine(async_database_url(self.database_url))
        try:
            async with engine.connect() as conn:
                result = await conn.execute(
                    text("SELECT key FROM seen_events WHERE lease_until IS NOT NULL")
                )
                return {str(key) for (key,) in result.all()}
        finally:
            await engine.dispose()

    async def metrics(self, replica: Replica) -> str:
        return (await self._http.get(f"{replica.url}/metrics")).text

    async def sandbox_served(self) -> dict[str, dict[str, Any]]:
        data = (await self._http.get(f"{self.sandbox_url}/sandbox/responses")).json()["data"]
        return {d["request_id"]: d for d in data}

    async def check(self, events: list[Event]) -> Check:
        served = await self.sandbox_served()
        stats = (await self._http.get(f"{self.sandbox_url}/sandbox/stats")).json()
        assert len(served) == stats["total"]["requests"], "the per-response log lost entries"
        threads = [self.thread(e) for e in events]
        return Check(
            threads=threads,
            rows=await self.usage_rows(),
            served=served,
            stats=stats,
        )
