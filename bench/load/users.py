"""The simulated users of ``bench.load``, and what became of each of their requests."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.load.processes import SECRET, Helper

SLACK_CHANNELS = 40
DISCORD_GUILDS, DISCORD_CHANNELS = 5, 20
_TAG = re.compile(r"\b(q\d+)\b")


@dataclass
class Question:
    tag: str
    user: str
    platform: str
    kind: str
    sent_at: float = 0.0
    acked: bool = False
    answered_at: float | None = None
    text: str = ""
    error: str | None = None
    thread: str | None = None
    """Slack: the (channel, thread ts) its answer goes to, when known before it comes."""
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Ack:
    platform: str
    kind: str
    status: int
    ms: float
    at: float


class Load:
    """The generator: users, the round robin over replicas, and what became of each request."""

    def __init__(self, args: argparse.Namespace, urls: list[str], slack: Helper, discord: Helper):
        from fakes.discord_api import Signer

        self.args = args
        self.urls = urls
        self.slack_control = f"http://127.0.0.1:{slack.control}"
        self.discord_control = f"http://127.0.0.1:{discord.control}"
        self.signer = Signer()
        self.rng = random.Random(args.seed)
        self.turn = 0
        self.acks: list[Ack] = []
        self.questions: list[Question] = []
        self.by_thread: dict[tuple[str, str], Question] = {}
        self.by_tag: dict[str, Question] = {}
        self.by_token: dict[str, Question] = {}
        self.extra: list[dict[str, Any]] = []
        """Finished answers that no question was waiting for: a second answer, or a stray."""
        self.http: aiohttp.ClientSession | None = None
        self._count = 0
        self.stop_at = 0.0

    def _next_url(self) -> str:
        self.turn += 1
        return self.urls[self.turn % len(self.urls)]

    def _tag(self) -> str:
        self._count += 1
        return f"q{self._count}"

    async def _post(
        self, platform: str, kind: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Any]:
        assert self.http is not None
        started = time.perf_counter()
        try:
            async with self.http.post(self._next_url() + path, data=body, headers=headers) as r:
                raw = await r.read()
                status = r.status
        except (aiohttp.ClientError, TimeoutError):
            status, raw = 0, b""
        self.acks.append(
            Ack(platform, kind, status, (time.perf_counter() - started) * 1000, time.time())
        )
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    async def _control(self, url: str, items: list[Any]) -> None:
        assert self.http is not None
        async with self.http.post(url, json=items) as response:
            response.raise_for_status()

    # -- one user --

    async def slack_user(self, n: int) -> None:
        from fakes import slack_events as ev

        rng = random.Random(self.args.seed * 1_000_003 + n)
        user = f"U{n:08d}"
        channel = f"CLOAD{rng.randrange(SLACK_CHANNELS):04d}"
        dm = f"D{n:08d}"
        last_thread: str | None = None
        await asyncio.sleep(rng.uniform(0, self.args.think[1]))
        while time.monotonic() < self.stop_at:
            tag = self._tag()
            roll = rng.random()
            kind = (
                "follow-up"
                if roll < 0.25 and last_thread
                else "mention"
                if roll < 0.55
                else "dm"
                if roll < 0.75
                else "ask"
            )
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 25)))
            q = Question(tag, user, "slack", kind)
            text = f"{tag} {words}"
            if kind == "ask":
                form = ev.slash_command("/ask", text, user_id=user, channel_id=channel)
                body = ev.encode_command(form)
                self.by_tag[tag] = q
                deliveries = [(body, "application/x-www-form-urlencoded")]
                seeds: list[Any] = []
            else:
                if kind == "mention":
                    payload = ev.app_mention(text, user=user, channel=channel)
                    event = payload["event"]
                    twin = ev.message(event["text"], user=user, channel=channel, ts=event["ts"])
                    payloads = [payload, twin]
                    thread = event["ts"]
                    last_thread = thread
                elif kind == "dm":
                    payload = ev.direct_message(text, user=user, channel=dm)
                    payloads, thread = [payload], payload["event"]["ts"]
                else:
                    assert last_thread is not None
                    payload = ev.thread_reply(
                        text, thread_ts=last_thread, user=user, channel=channel
                    )
                    payloads, thread = [payload], last_thread
                where = dm if kind == "dm" else channel
                q.thread = thread
                self.by_thread[(where, thread)] = q
                seeds = [payloads[0]]
                deliveries = [(ev.encode_event(p), "application/json") for p in payloads]
            if seeds:
                await self._control(f"{self.slack_control}/seed", seeds)
            self.questions.append(q)
            q.sent_at = time.time()
            for i, (body, ctype) in enumerate(deliveries):
                headers = {"Content-Type": ctype, **ev.signed_request(body, SECRET)}
                status, _ = await self._post(
                    "slack", kind if i == 0 else "twin", "/slack/events", body, headers
                )
                if i == 0:
                    q.acked = 200 <= status < 300
            await self._wait_and_think(q, rng)

    async def discord_user(self, n: int) -> None:
        from fakes.discord_api import interaction, option

        rng = random.Random(self.args.seed * 1_000_033 + n)
        user = f"14{n:017d}"
        guild = f"12{rng.randrange(DISCORD_GUILDS):017d}"
        channel = f"13{rng.randrange(DISCORD_CHANNELS):017d}"
        await asyncio.sleep(rng.uniform(0, self.args.think[1]))
        while time.monotonic() < self.stop_at:
            tag = self._tag()
            private = rng.random() < 0.1
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 25)))
            options = [option("prompt", f"{tag} {words}")]
            if private:
                options.append(option("private", True, kind=5))
            payload = interaction("ask", options, user_id=user, guild=guild, channel=channel)
            q = Question(tag, user, "discord", "ask private" if private else "ask")
            q.thread = payload["id"]  # what its usage row has as the thread
            self.by_token[payload["token"]] = q
            deferred = {"type": 5, "data": {"flags": 64} if private else {}}
            await self._control(
                f"{self.discord_control}/acknowledged", [{"payload": payload, "response": deferred}]
            )
            body = json.dumps(payload).encode()
            self.questions.append(q)
            q.sent_at = time.time()
            status, answer = await self._post(
                "discord", q.kind, "/discord/interactions", body, self.signer.headers(body)
            )
            q.acked = status == 200 and isinstance(answer, dict) and answer.get("type") == 5
            await self._wait_and_think(q, rng)

    async def _wait_and_think(self, q: Question, rng: random.Random) -> None:
        if q.acked:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(q.done.wait(), self.args.answer_timeout)
        # Thinking stops at the end of the window: nothing more will be asked.
        think = rng.uniform(*self.args.think)
        await asyncio.sleep(max(0.0, min(think, self.stop_at - time.monotonic())))

    # -- answers --

    async def poll(self) -> None:
        assert self.http is not None
        after = {"slack": 0, "discord": 0}
        while True:
            for platform, base in (
                ("slack", self.slack_control),
                ("discord", self.discord_control),
            ):
                async with self.http.get(f"{base}/finals?after={after[platform]}") as response:
                    got = await response.json()
                after[platform] = got["next"]
                for final in got["finals"]:
                    self._match(platform, final)
            await asyncio.sleep(0.25)

    def _match(self, platform: str, final: dict[str, Any]) -> None:
        q: Question | None
        if platform == "discord":
            q = self.by_token.pop(final["token"], None)
        else:
            q = self.by_thread.pop((final["channel"], final["thread"]), None)
            if q is None and (m := _TAG.search(final["parent"])):
                q = self.by_tag.pop(m.group(1), None)
        text = final["text"]
        answer = text.startswith("Sandbox answer") and not (":warning:" in text or "⚠️" in text)
        if q is None or q.answered_at is not None or (answer and q.tag not in _TAG.findall(text)):
            self.extra.append({"platform": platform, **final})
            return
        q.answered_at, q.text = final["at"], text
        if not answer:
            q.error = _error_kind(text)
        q.done.set()


_WORDS = (  # noqa: SIM905 - a sentence reads better than a list of 29 strings
    "what is a token bucket how do budgets work explain jitter why does the queue wait "
    "compare models cost per request summarise this thread write a haiku about limits"
).split()


def _error_kind(text: str) -> str:
    words = re.sub(r"[:*_`]|warning|⚠️", " ", text).split()
    return " ".join(words[:7])
