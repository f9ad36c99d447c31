"""Streamed answers in Discord, over signed HTTP interactions and through discord.py's gateway
client: the sandbox streams at a model's pace, and the fake Discord API records every edit of
every message. What is asserted is what the user sees grow, and how often it is edited."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import discord
import httpx
import pytest

from adapters.discord import (
    CommandRunner,
    DiscordGateway,
    DiscordREST,
    GatewayConfig,
    InteractionsConfig,
    InteractionsEndpoint,
)
from adapters.discord.invocation import file_hosts
from adapters.discord.live import MARKER
from bot.app import open_app
from bot.chat.commands import Commands
from bot.config import load_settings
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.events import EventLog
from bot.web import WebServer
from fakes.discord_api import (
    APPLICATION_ID,
    BOT_TOKEN,
    CHANNEL,
    Call,
    FakeDiscordAPI,
    Sent,
    Signer,
    message,
)
from tests.adapters.discord.test_discord_gateway import BOT, MENTION
from tests.adapters.discord.test_discord_gateway import Rig as GatewayRig
from tests.adapters.discord.test_discord_http import Rig, ask

INTERVAL = 0.3
TOLERANCE = 0.05
"""Of the fake's clock against quotabot's: a request is recorded when it arrives."""
PACE = SandboxConfig(rpm=None, tpm=None, rpd=None, chunk_interval=0.02, reply_tokens=200)
"""About 70 chunks 20 ms apart: a 200-token answer streamed over some 1.4 s."""


def runner_for(app: Any, api: FakeDiscordAPI, **kw: Any) -> CommandRunner:
    return CommandRunner(
        service=app.service,
        commands=Commands(usage=app.usage, budget=app.budget, limits=app.limits),
        events=EventLog(app.db),
        files=file_hosts(api.url),
        edit_interval=INTERVAL,
        **kw,
    )


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    signer = Signer()
    async with SandboxServer(PACE) as sandbox, FakeDiscordAPI() as api:
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with open_app(load_settings()) as app, DiscordREST(base_url=api.url) as rest:
            runner = runner_for(app, api)
            endpoint = InteractionsEndpoint(
                InteractionsConfig(application_id=APPLICATION_ID, public_key=signer.public_key),
                runner=runner,
                rest=rest,
            )
            server = WebServer(endpoint.routes(), host="127.0.0.1", port=0)
            await server.start()
            async with httpx.AsyncClient(timeout=10) as http:
                url = f"{server.url}/discord/interactions"
                yield Rig(app, api, sandbox, http, url, signer, runner, rest)
            await server.aclose()
            await endpoint.aclose()


@pytest.fixture
async def gateway(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GatewayRig]:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)  # restored after
    async with SandboxServer(PACE) as sandbox, FakeDiscordAPI() as api:
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with open_app(load_settings()) as app:
            runner = runner_for(app, api)
            client = DiscordGateway(
                GatewayConfig(token=BOT_TOKEN, api_url=api.url), runner=runner, service=app.service
            )
            try:
                await client.login(BOT_TOKEN)
                yield GatewayRig(app, api, sandbox, client)
            finally:
                await client.aclose()


def assert_grew(sent: Sent) -> None:
    """Previews (marked) each a prefix of the next and of the final text, which ends it."""
    *previews, final = sent.edits
    assert len(previews) >= 2, sent.edits
    assert all(p.endswith(MARKER) for p in previews)
    assert not final.endswith(MARKER)
    texts = [p.removesuffix(MARKER) for p in previews] + [final]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts)), texts
    assert len(texts[0]) < len(final)


def assert_throttled(edits: list[Call]) -> None:
    """No two previews of one message closer than the interval (the final text may follow
    a preview sooner: the answer is done)."""
    previews = [c for c in edits if str(c.body.get("content", "")).endswith(MARKER)]
    gaps = [b.at - a.at for a, b in itertools.pairwise(previews)]
    assert gaps and min(gaps) >= INTERVAL - TOLERANCE, gaps


async def test_a_slash_answer_grows_in_its_response_as_it_is_generated(rig: Rig) -> None:
    payload = ask("stream this")
    (shown,) = await rig.ask(payload)
    assert shown.startswith('Sandbox answer: you said "stream this"')
    (answer,) = rig.api.thread(payload["token"])
    assert_grew(answer)
    assert_throttled(rig.api.calls_to("PATCH " + rig.api.calls[-1].path))
    # The usage comes from the stream (include_usage), not counted by quotabot.
    (row,) = await rig.app.usage.rows()
    (served,) = rig.sandbox.stats.responses
    assert not row.usage_estimated
    assert (row.prompt_tokens, row.completion_tokens) == (
        served.prompt_tokens,
        served.completion_tokens,
    )
    assert served.completion_tokens >= 200


async def test_a_streamed_answer_longer_than_a_message_continues_in_follow_ups(
    rig: Rig,
) -> None:
    rig.runner.piece_limit = 300  # the 200-token answer takes three or more of these
    payload = ask("a long one")
    shown = await rig.ask(payload)
    assert len(shown) >= 3 and all(len(p) <= 300 for p in shown)
    rig.runner.streaming = False  # the same question answered at once: the same messages
    assert await rig.ask(ask("a long one")) == shown

    sent = rig.api.thread(payload["token"])
    for follow_up in sent[1:]:  # posted with the text so far, edited as it grew
        assert follow_up.edits[0].endswith(MARKER)
        assert all(follow_up.content.startswith(e.removesuffix(MARKER)) for e in follow_up.edits)
    edits = {
        f.id: [c for c in rig.api.calls if c.method == "PATCH" and c.path.endswith(f.id)]
        for f in sent[1:]
    }
    assert any(edits.values()), "follow-ups are edited as they grow, not only posted"
    for calls in edits.values():
        if sum(str(c.body["content"]).endswith(MARKER) for c in calls) >= 2:
            assert_throttled(calls)


async def test_a_mention_is_answered_in_a_reply_that_grows(gateway: GatewayRig) -> None:
    asked = message(f"{MENTION} stream it here", mentions=[BOT])
    (said,) = await gateway.message(asked)
    assert said.startswith('Sandbox answer: you said "stream it here"')
    (reply,) = gateway.api.channels[CHANNEL]
    assert reply.reply_to == asked["id"]
    assert_grew(reply)
    assert_throttled(gateway.api.calls_to(f"PATCH /channels/{CHANNEL}/messages/{reply.id}"))
    (row,) = await gateway.app.usage.rows()
    assert not row.usage_estimated and row.completion_tokens >= 200
