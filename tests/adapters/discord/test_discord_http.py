"""HTTP interactions end to end: real Ed25519-signed posts to quotabot's endpoint, a fake
Discord REST API that records every response edit and follow-up, and the sandbox as the
model provider. What is asserted is what the Discord user would see, and the usage rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from adapters.discord import CommandRunner, DiscordREST, InteractionsConfig, InteractionsEndpoint
from adapters.discord.invocation import file_hosts
from bot.app import App, open_app
from bot.chat.commands import Commands
from bot.config import load_settings
from bot.dashboard.links import links_for
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.events import EventLog
from bot.store.schema import SeenEvent
from bot.takeover import Takeover
from bot.web import WebServer
from fakes.discord_api import (
    APPLICATION_ID,
    CHANNEL,
    GUILD,
    USER,
    FakeDiscordAPI,
    Signer,
    interaction,
    option,
    subcommand,
)
from tests.slow_claims import slow_claims

ADMIN_ROLE = "1500000000000000001"
TRUSTED_USER = "1400000000000000077"
MANAGE_GUILD = 1 << 5


@dataclass
class Rig:
    app: App
    api: FakeDiscordAPI
    sandbox: SandboxServer
    http: httpx.AsyncClient
    url: str
    signer: Signer
    runner: CommandRunner
    rest: DiscordREST

    async def post(self, payload: dict[str, Any], **kw: Any) -> httpx.Response:
        """Post as Discord does; a deferred response opens the interaction's webhook."""
        response = await self.signer.post(self.http, self.url, payload, **kw)
        if response.status_code == 200 and response.json().get("type") == 5:
            self.api.acknowledged(payload, response.json())
        return response

    async def ask(self, payload: dict[str, Any]) -> list[str]:
        """Post, wait for the answer; the messages the user sees, in order."""
        response = await self.post(payload)
        assert response.json()["type"] == 5
        await self.runner.drain()
        return [m.content for m in self.api.thread(payload["token"])]

    async def seen_events(self) -> int:
        async with self.app.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(SeenEvent))).scalar_one())


@pytest.fixture
async def rig(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    """The sandbox answers at once, or after ``param`` seconds when parametrized indirect."""
    signer = Signer()
    latency = getattr(request, "param", 0.0)
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None, latency=latency)) as sandbox,
        FakeDiscordAPI() as api,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with open_app(load_settings()) as app, DiscordREST(base_url=api.url) as rest:
            runner = CommandRunner(
                service=app.service,
                commands=Commands(
                    usage=app.usage,
                    budget=app.budget,
                    limits=app.limits,
                    dashboard=links_for(app.settings),
                ),
                events=EventLog(app.db),
                admins=frozenset({TRUSTED_USER}),
                admin_roles=frozenset({ADMIN_ROLE}),
                files=file_hosts(api.url),  # the fake serves attachments, as Discord's CDN
                streaming=False,  # these count every call; test_discord_stream.py streams
            )
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


def ask(prompt: str, *extra: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return interaction("ask", [option("prompt", prompt), *extra], **kw)


def budget_set(scope: str, limit: str, value: str, **kw: Any) -> dict[str, Any]:
    options = [option("scope", scope), option("limit", limit), option("value", value)]
    return interaction("budget", [subcommand("set", *options)], **kw)


async def test_ping_gets_pong_and_nothing_else(rig: Rig) -> None:
    response = await rig.post({"id": "1", "type": 1, "application_id": APPLICATION_ID})
    assert (response.status_code, response.json()) == (200, {"type": 1})
    assert rig.api.calls == []
    assert await rig.seen_events() == 0


async def test_ask_is_deferred_then_answered(rig: Rig) -> None:
    payload = ask("what is a token bucket?")
    started = time.monotonic()
    response = await rig.post(payload)
    assert time.monotonic() - started < 1.0  # well within Discord's 3 s, before any model call
    assert response.json() == {"type": 5, "data": {}}  # "quotabot is thinking…", in public
    await rig.runner.drain()

    (answer,) = rig.api.thread(payload["token"])
    assert answer.content.startswith('Sandbox answer: you said "what is a token bucket"')
    assert not answer.ephemeral
    (edit,) = rig.api.calls
    assert edit.method == "PATCH"
    assert edit.path == f"/webhooks/{APPLICATION_ID}/{payload['token']}/messages/@original"
    assert edit.body["allowed_mentions"] == {"parse": []}  # a model never pings anyone
    (row,) = await rig.app.usage.rows()
    assert (row.platform, row.workspace, row.channel, row.user, row.outcome) == (
        "discord",
        GUILD,
        CHANNEL,
        USER,
        "ok",
    )
    assert row.completion_tokens > 0


async def test_private_ask_is_ephemeral(rig: Rig) -> None:
    payload = ask("just between us", option("private", True, kind=5))
    response = await rig.post(payload)
    assert response.json() == {"type": 5, "data": {"flags": 64}}
    await rig.runner.drain()
    (answer,) = rig.api.thread(payload["token"])
    assert answer.ephemeral and "just between us" in answer.content


async def test_long_answers_continue_in_follow_ups(rig: Rig) -> None:
    rig.runner.piece_limit = 40  # the sandbox answers briefly; Discord's limit is 2,000
    payload = ask("tell me everything", option("private", True, kind=5))
    pieces = await rig.ask(payload)
    assert len(pieces) >= 2 and all(len(p) <= 40 for p in pieces)
    assert " ".join(pieces).startswith('Sandbox answer: you said "tell me everything"')
    sent = rig.api.thread(payload["token"])
    assert all(m.ephemeral for m in sent)  # follow-ups are private too, not only the first
    (row,) = await rig.app.usage.rows()
    assert row.outcome == "ok"


async def test_ask_with_a_model_uses_it(rig: Rig) -> None:
    await rig.ask(ask("which model?", option("model", "gpt-4o-mini")))
    (row,) = await rig.app.usage.rows()
    assert row.model == "gpt-4o-mini"


async def test_the_model_option_offers_the_models_this_channel_may_use(rig: Rig) -> None:
    async def offered(typed: str, **kw: Any) -> list[str]:
        payload = ask("x", {**option("model", typed), "focused": True}, **kw)
        payload["type"] = 4  # APPLICATION_COMMAND_AUTOCOMPLETE
        response = await rig.post(payload)
        assert response.json()["type"] == 8  # APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
        return [c["value"] for c in response.json()["data"]["choices"]]

    assert await offered("gpt-5") == ["gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5.1"]
    assert "whisper-1" not in await offered("")  # transcription models answer no questions

    (done,) = await rig.ask(
        budget_set("channel", "models", "gpt-4o-mini,gpt-5-mini", permissions=MANAGE_GUILD)
    )
    assert f"channel:{CHANNEL}" in done
    assert await offered("gpt") == ["gpt-4o-mini", "gpt-5-mini"]
    assert await offered("gpt", channel="1300000000000000099") != ["gpt-4o-mini", "gpt-5-mini"]
    (refused,) = await rig.ask(ask("hi", option("model", "o3")))
    assert "o3 is not allowed in this channel" in refused
    assert "gpt-4o-mini, gpt-5-mini" in refused
    (shown,) = await rig.ask(interaction("budget", [subcommand("show")]))
    assert "Models allowed here: gpt-4o-mini, gpt-5-mini." in shown
    assert [r.model for r in await rig.app.usage.rows()] == []  # nothing was sent


async def test_usage_and_budget_show_are_private(rig: Rig) -> None:
    await rig.ask(ask("count me"))
    usage = interaction("usage")
    assert (await rig.post(usage)).json() == {"type": 5, "data": {"flags": 64}}
    await rig.runner.drain()
    (shown,) = rig.api.thread(usage["token"])
    assert shown.ephemeral
    (embed,) = shown.embeds  # an embed of the asker's own figures, then the channel's
    assert embed["title"] == "quotabot usage"
    text = embed["description"]
    assert "**Your usage**\nToday (since 00:00 UTC): 1 request," in text
    assert "This channel: 1 request," in text and "This workspace: 1 request," in text
    await rig.ask(ask("count me again", user_id=TRUSTED_USER))
    later = interaction("usage")
    await rig.post(later)
    await rig.runner.drain()
    (again,) = rig.api.thread(later["token"])
    text = again.embeds[0]["description"]
    assert "Today (since 00:00 UTC): 1 request," in text  # mine: still one
    assert "This channel: 2 requests," in text

    await rig.app.limits.set(f"channel:{CHANNEL}", "rpm", "7", by="test")
    await rig.app.budget.reload()
    (budgets,) = await rig.ask(interaction("budget", [subcommand("show")]))
    assert "this channel's requests per minute" in budgets
    assert "of 7 requests" in budgets


async def test_budget_set_only_for_admins(rig: Rig) -> None:
    (refused,) = await rig.ask(budget_set("channel", "rpm", "5"))
    assert "Manage Server" in refused
    assert await rig.app.limits.all() == {}

    (done,) = await rig.ask(budget_set("channel", "rpm", "5", permissions=MANAGE_GUILD))
    assert f"channel:{CHANNEL}" in done
    assert await rig.app.limits.all() == {f"channel:{CHANNEL}": {"rpm": 5}}

    (by_role,) = await rig.ask(budget_set("user", "tokens_day", "1000", roles=[ADMIN_ROLE]))
    assert f"user:{USER}" in by_role
    (in_dm,) = await rig.ask(budget_set("workspace", "rpd", "9", guild=None, user_id=TRUSTED_USER))
    assert "workspace:@me" in in_dm  # direct messages count as the "@me" workspace
    (bad,) = await rig.ask(budget_set("channel", "rpm", "lots", permissions=MANAGE_GUILD))
    assert "Usage: `budget`" in bad  # the error, then the help


async def test_refusals_say_which_cap_and_when_it_resets(rig: Rig) -> None:
    await rig.app.limits.set(f"channel:{CHANNEL}", "rpd", "1", by="test")
    await rig.app.budget.reload()
    await rig.ask(ask("first"))
    (refused,) = await rig.ask(ask("second"))
    assert refused.startswith("⚠️ This request would go over")
    assert "1 of 1 request used" in refused and "resets at 00:00 UTC" in refused
    assert rig.sandbox.stats.total.requests == 1


@pytest.mark.parametrize("rig", [0.3], indirect=True)
async def test_a_request_that_waits_shows_its_place_in_the_queue(rig: Rig) -> None:
    # Room for one request's reservation (prompt + 512 max_tokens) at a time: the second
    # waits until the first is settled and gives back what it did not use.
    await rig.app.limits.set(f"channel:{CHANNEL}", "tpm", "1000", by="test")
    await rig.app.budget.reload()
    one, two = ask("first in line"), ask("second in line")
    await asyncio.gather(rig.post(one), rig.post(two))
    await rig.runner.drain()
    threads = [rig.api.thread(p["token"])[0] for p in (one, two)]
    waited = [t for t in threads if len(t.edits) == 2]
    assert len(waited) == 1, [t.edits for t in threads]
    notice, answer = waited[0].edits
    assert notice.startswith("_Queued for gpt-3.5-turbo: position 1")
    assert answer.startswith("Sandbox answer")
    assert len(await rig.app.usage.rows()) == 2


async def test_channel_settings_choose_the_model(rig: Rig) -> None:
    await rig.app.channels.set("discord", GUILD, CHANNEL, model="gpt-4o-mini")
    await rig.ask(ask("which model here?"))
    (row,) = await rig.app.usage.rows()
    assert row.model == "gpt-4o-mini"


async def test_a_disabled_channel_says_so(rig: Rig) -> None:
    await rig.app.channels.set("discord", GUILD, CHANNEL, enabled=False)
    (said,) = await rig.ask(ask("anyone there?"))
    assert "switched off" in said
    assert rig.sandbox.stats.total.requests == 0


async def test_bad_and_stale_signatures_cost_nothing(rig: Rig) -> None:
    bad = await rig.post(ask("hi"), bad_signature=True)
    stale = await rig.post(ask("hi"), timestamp=time.time() - 600)
    future = await rig.post(ask("hi"), timestamp=time.time() + 600)
    unsigned = await rig.http.post(rig.url, json=ask("hi"))
    assert [r.status_code for r in (bad, stale, future, unsigned)] == [401] * 4
    await asyncio.sleep(0.2)
    assert rig.runner.tasks == set()
    assert rig.sandbox.stats.total.requests == 0
    assert rig.api.calls == []
    assert await rig.app.usage.rows() == []
    assert await rig.seen_events() == 0  # not even the repeat check wrote anything


async def test_unknown_and_malformed_interactions_get_an_error(rig: Rig) -> None:
    unknown = await rig.post(interaction("weather"))
    assert unknown.json()["type"] == 4
    assert "does not know the command `/weather`" in unknown.json()["data"]["content"]
    assert unknown.json()["data"]["flags"] == 64

    broken = ask("hi")
    del broken["token"]
    malformed = await rig.post(broken)
    assert malformed.status_code == 200
    assert "could not read this command" in malformed.json()["data"]["content"]
    odd_options = ask("hi")
    odd_options["data"]["options"] = ["prompt=hi"]
    assert "could not read" in (await rig.post(odd_options)).json()["data"]["content"]

    not_json = await rig.http.post(rig.url, content=b"{nope", headers=rig.signer.headers(b"{nope"))
    assert not_json.status_code == 400
    component = await rig.post({**ask("hi"), "type": 3})
    assert "does not handle" in component.json()["data"]["content"]
    await rig.runner.drain()
    assert rig.api.calls == [] and rig.sandbox.stats.total.requests == 0


async def test_a_repeated_interaction_is_answered_once(rig: Rig) -> None:
    payload = ask("only once")
    first, again = await asyncio.gather(rig.post(payload), rig.post(payload))
    assert first.json()["type"] == again.json()["type"] == 5
    await rig.runner.drain()
    (answer,) = rig.api.thread(payload["token"])
    assert answer.edits == [answer.content]  # one edit: no second answer over the first
    assert rig.sandbox.stats.total.requests == 1
    assert len(await rig.app.usage.rows()) == 1


async def test_a_429_from_discord_is_waited_out(rig: Rig) -> None:
    rig.api.rate_limit("webhook", times=1, retry_after=0.3)
    payload = ask("through a 429")
    (answer,) = await rig.ask(payload)
    assert "through a 429" in answer
    limited, retried = rig.api.calls
    assert (limited.status, retried.status) == (429, 200)
    assert retried.at - limited.at >= 0.3
    assert rig.rest.rate_limited == 1


async def test_an_empty_bucket_is_waited_for_without_a_429(rig: Rig) -> None:
    rig.api.route_limits["webhook"] = (2, 0.4)  # 2 calls per 0.4 s per interaction
    rig.runner.piece_limit = 30
    payload = ask("many pieces please")
    pieces = await rig.ask(payload)
    assert len(pieces) >= 3
    assert [c.status for c in rig.api.calls] == [200] * len(pieces)
    assert rig.api.calls[2].at - rig.api.calls[0].at >= 0.35  # waited for the reset
    assert rig.rest.rate_limited == 0


async def test_an_answer_that_outlives_the_token_is_cut_off(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None, latency=2)) as slow:
        monkeypatch.setenv("OPENAI_BASE_URL", slow.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with open_app(load_settings()) as app:
            runner = CommandRunner(
                service=app.service,
                commands=Commands(usage=app.usage, budget=app.budget, limits=app.limits),
                events=EventLog(app.db),
            )
            endpoint = InteractionsEndpoint(
                # Discord's tokens last 15 minutes; these 1.5 s, stopping 0.5 s before the end
                InteractionsConfig(
                    application_id=APPLICATION_ID,
                    public_key=rig.signer.public_key,
                    token_ttl=1.5,
                    margin=0.5,
                ),
                runner=runner,
                rest=rig.rest,
            )
            rig.api.token_ttl = 1.5
            async with WebServer(endpoint.routes(), host="127.0.0.1", port=0) as server:
                payload = ask("a slow one")
                response = await rig.signer.post(
                    rig.http, f"{server.url}/discord/interactions", payload
                )
                rig.api.acknowledged(payload, response.json())
                await runner.drain()
    (said,) = rig.api.thread(payload["token"])
    assert "did not come in time" in said.content and "15 minutes" in said.content
    assert [c.status for c in rig.api.calls] == [200]  # sent while the token still worked


async def test_two_replicas_answer_an_interaction_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a load balancer, or replayed to another replica: one answer in all."""
    signer = Signer()
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox,
        FakeDiscordAPI() as api,
        DiscordREST(base_url=api.url) as rest,
        httpx.AsyncClient(timeout=10) as http,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("QUOTABOT_DATABASE_URL", db_url)
        settings = load_settings()
        async with (
            open_app(settings, auto_migrate=True) as one,
            open_app(settings, auto_migrate=True) as two,
        ):
            runners, urls, servers = [], [], []
            for app in (one, two):
                runner = CommandRunner(
                    service=app.service,
                    commands=Commands(usage=app.usage, budget=app.budget, limits=app.limits),
                    events=EventLog(app.db),
                    streaming=False,  # one edit per answer, counted below
                )
                endpoint = InteractionsEndpoint(
                    InteractionsConfig(application_id=APPLICATION_ID, public_key=signer.public_key),
                    runner=runner,
                    rest=rest,
                )
                server = WebServer(endpoint.routes(), host="127.0.0.1", port=0)
                await server.start()
                runners.append(runner)
                servers.append(server)
                urls.append(f"{server.url}/discord/interactions")
            payload = ask("one answer, two replicas")
            api.acknowledged(payload, {"type": 5, "data": {}})
            await asyncio.gather(*(signer.post(http, url, payload) for url in urls))
            await asyncio.gather(*(r.drain() for r in runners))
            for server in servers:
                await server.aclose()
            (answer,) = api.thread(payload["token"])
            assert answer.edits == [answer.content]
            assert sandbox.stats.total.requests == 1
            assert len(await one.usage.rows()) == 1


@pytest.mark.parametrize("rig", [10.0], indirect=True)
async def test_an_answer_past_the_shutdown_grace_is_stopped_with_a_note(rig: Rig) -> None:
    """quotabot is stopping and the provider is slow: the asker is told to ask again, not left
    with "thinking…" until the token expires."""
    payload = ask("a slow one")
    assert (await rig.post(payload)).json()["type"] == 5
    await asyncio.sleep(0.3)  # with the provider now
    started = time.monotonic()
    await rig.runner.drain(grace=0.3)
    assert time.monotonic() - started < 3
    (said,) = rig.api.thread(payload["token"])
    assert "restarting" in said.content
    assert await rig.app.usage.rows() == []  # no answer came: nothing to count


async def test_with_ack_after_claim_an_interaction_is_on_record_before_discord_hears_back(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discord never sends an interaction twice: with ``QUOTABOT_ACK_AFTER_CLAIM`` its claim,
    with the interaction, is written before the deferred response (were this process killed
    then, another one answers)."""
    rig.runner.events.ack_wait = 1.0
    slow_claims(rig.runner.events, 0.3, monkeypatch)
    payload = ask("on record?")
    assert (await rig.post(payload)).json()["type"] == 5
    assert await rig.seen_events() == 1
    await rig.runner.drain()
    assert len(rig.api.thread(payload["token"])) == 1


async def test_an_interaction_left_by_a_process_that_died_is_answered_by_another(
    rig: Rig,
) -> None:
    """A process deferred an /ask ("quotabot is thinking…"), claimed it and was killed: once
    the lease has run out, this process answers it through the interaction's webhook."""
    payload = ask("anyone there?")
    rig.api.acknowledged(payload, {"type": 5, "data": {}})  # what the dead process sent
    dead = EventLog(rig.app.db, lease=0.1)
    assert await dead.first(f"discord:interaction:{payload['id']}", {"interaction": payload})
    await asyncio.sleep(0.2)
    endpoint = InteractionsEndpoint(
        InteractionsConfig(application_id=APPLICATION_ID, public_key=rig.signer.public_key),
        runner=rig.runner,
        rest=rig.rest,
    )
    takeover = Takeover(rig.runner.events, wait=0)
    takeover.on("discord:interaction:", endpoint.resume)
    assert [o.key for o in await takeover.tick()] == [f"discord:interaction:{payload['id']}"]
    await asyncio.gather(*takeover.tasks)
    (answer,) = rig.api.thread(payload["token"])
    assert answer.content.startswith('Sandbox answer: you said "anyone there"')
    assert len(await rig.app.usage.rows()) == 1
    assert await takeover.tick() == []


@pytest.mark.parametrize(
    "token",
    ["../../channels/123/messages", "x/../../../channels/123/messages/456?", "a b#c"],
)
async def test_a_token_from_the_payload_stays_one_segment_of_the_webhook_path(
    rig: Rig, token: str
) -> None:
    """Interaction tokens go into the webhook's path: quoted, ``../`` and ``?`` in one cannot
    lead the answer to another route (they once made it a PATCH of a channel's message)."""
    payload = ask("hello")
    payload["token"] = token
    (said,) = await rig.ask(payload)
    assert said.startswith("Sandbox answer")
    (edit,) = rig.api.calls
    assert (edit.method, edit.status) == ("PATCH", 200)
    assert edit.raw_path == (
        f"/webhooks/{APPLICATION_ID}/{quote(token, safe='')}/messages/@original"
    )


@pytest.mark.parametrize("token", ["..", "."])
async def test_a_token_that_is_a_dot_segment_is_not_sent_at_all(rig: Rig, token: str) -> None:
    """Quoting leaves ``..`` as it is, and the path would lose its webhook id: no call."""
    payload = ask("hello")
    payload["token"] = token
    assert (await rig.post(payload)).json()["type"] == 5
    await rig.runner.drain()
    assert rig.api.calls == []


async def test_usage_dashboard_gives_an_admin_a_private_link(rig: Rig) -> None:
    wanted = [option("dashboard", True, 5)]
    (refused,) = await rig.ask(interaction("usage", wanted))
    assert "Only admins" in refused
    payload = interaction("usage", wanted, permissions=MANAGE_GUILD)
    (told,) = await rig.ask(payload)
    (sent,) = rig.api.thread(payload["token"])
    assert sent.ephemeral and "/dashboard?t=" in told
    token = told.split("t=")[1].split()[0].strip(">)")
    scope, _ = links_for(rig.app.settings).read(token)
    assert (scope.platform, scope.workspace) == ("discord", GUILD)
