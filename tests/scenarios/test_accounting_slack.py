"""The invoice check: a 20-turn Slack thread through the real signed endpoint, answered by the
sandbox, which caches prompt prefixes and reasons as OpenAI does. The sum of the costs
quotabot recorded equals, to the micro-dollar (here: exactly), what the sandbox's
organization costs endpoint bills for the day, and the digest's total equals both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from adapters.slack import SlackAdapter, SlackConfig
from bot.app import App, open_app
from bot.config import load_settings
from bot.digest.window import local_today
from bot.models import Usage
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.digests import DigestConfig
from bot.web import WebServer
from fakes import slack_events as ev
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from fakes.slack_workspace import DEFAULT_CHANNEL, DEFAULT_WORKSPACE

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TURNS = 20
ERROR_LOG = "\n".join(
    f"2026-12-04 10:{n // 60:02d}:{n % 60:02d} ERROR worker-{n % 7} job {n} failed: "
    f"TimeoutError after {n * 3} ms talking to db-{n % 3}.internal:5432"
    for n in range(40)
)
"""A pasted log: the thread's first turn is already past the 1,024 tokens caching needs."""


@dataclass
class Rig:
    app: App
    api: FakeSlackAPI
    sandbox: SandboxServer
    http: httpx.AsyncClient
    url: str


@pytest.fixture
async def rig(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox,
        FakeSlackAPI() as api,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-test")
        monkeypatch.setenv("QUOTABOT_DEFAULT_MODEL", request.param)
        monkeypatch.setenv("QUOTABOT_MAX_TOKENS", "200")
        monkeypatch.setenv("QUOTABOT_PROVIDER_TIER", "paid")  # not 3 requests a minute
        async with open_app(load_settings()) as app:
            adapter = SlackAdapter(
                SlackConfig(bot_token=DEFAULT_TOKEN, signing_secret=SECRET, api_url=api.url),
                service=app.service,
                commands=app.commands(),
                events=app.events,
            )
            server = WebServer(adapter.routes(), host="127.0.0.1", port=0)
            await server.start()
            async with httpx.AsyncClient(timeout=10) as http:
                yield Rig(app, api, sandbox, http, f"{server.url}/slack/events")
            await server.aclose()
            await adapter.aclose()


async def until(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("rig", ["gpt-4o-mini", "gpt-5-mini"], indirect=True)
async def test_a_long_thread_costs_what_the_provider_bills(rig: Rig) -> None:
    post = rig.api.seed_event(ev.app_mention(f"why does this keep failing?\n```{ERROR_LOG}```"))
    root = post["event"]["ts"]  # type: ignore[index]
    await ev.post_event(rig.http, rig.url, post, SECRET)
    for turn in range(1, TURNS + 1):
        if turn > 1:
            reply = ev.thread_reply(
                f"follow-up {turn}: and what about worker-{turn % 7}?", thread_ts=root
            )
            await ev.post_event(rig.http, rig.url, rig.api.seed_event(reply), SECRET)

        async def answered(n: int = turn) -> bool:
            return len([r for r in await rig.app.usage.rows() if r.outcome == "ok"]) == n

        await until(answered)

    rows = await rig.app.usage.rows()
    assert len(rows) == TURNS and {r.thread for r in rows} == {root}
    info = rig.app.catalog.get(rows[0].model)
    # Every turn after the first re-sends the thread: its start comes from the cache.
    assert rows[0].cached_tokens == 0
    assert all(r.cached_tokens >= 1_024 for r in rows[1:])
    if info.reasoning:
        assert all(0 < r.reasoning_tokens <= r.completion_tokens for r in rows)
    ours = sum((r.cost for r in rows if r.cost is not None), Decimal(0))
    assert ours == sum(
        (
            info.cost(Usage(r.prompt_tokens, r.completion_tokens, r.cached_tokens))  # type: ignore[misc]
            for r in rows
        ),
        Decimal(0),
    )

    cfg = DigestConfig("slack", DEFAULT_WORKSPACE.team_id, DEFAULT_CHANNEL, tz="UTC")
    digest = (await rig.app.digests.compose(cfg, local_today(cfg.zone))).digest
    assert digest.provider_cost is not None
    assert digest.provider_cost.amount == ours  # what the provider bills for the day
    assert digest.cost == ours
    assert digest.cached_tokens == sum(r.cached_tokens for r in rows)

    full_price = sum(
        (info.cost(Usage(r.prompt_tokens, r.completion_tokens)) or Decimal(0) for r in rows),
        Decimal(0),
    )
    assert full_price > ours
    print(  # the closing note's figures: pytest -s tests/scenarios/test_accounting_slack.py
        f"\n{info.name}: {TURNS} turns, {sum(r.prompt_tokens for r in rows):,} prompt tokens of "
        f"which {digest.cached_tokens:,} cached; cost ${ours} with cached pricing, "
        f"${full_price} without (+{(full_price - ours) / ours:.0%}); "
        f"provider ${digest.provider_cost.amount} on {datetime.now(UTC):%Y-%m-%d}"
    )
