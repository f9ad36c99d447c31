"""Multi-workspace mode: a workspace installs quotabot through Slack's OAuth flow (bolt's own,
its installation and state stores on quotabot's database), and is answered from then on with
the token it was given. Before that, its events get no answer and cost nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import text

from adapters.slack import SlackAdapter, SlackConfig
from bot.app import App, open_app
from bot.chat.commands import Commands
from bot.config import load_settings
from bot.errors import ConfigError
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.events import EventLog
from bot.takeover import Takeover
from bot.web import WebServer
from fakes import slack_events as ev
from fakes.slack_api import FakeSlackAPI
from fakes.slack_workspace import DEFAULT_CHANNEL, DEFAULT_WORKSPACE

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CLIENT_ID = "1111111111.2222222222"


@dataclass
class Rig:
    app: App
    api: FakeSlackAPI
    sandbox: SandboxServer
    http: httpx.AsyncClient
    base: str
    adapter: SlackAdapter


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox,
        FakeSlackAPI(streaming_supported=False) as api,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with open_app(load_settings()) as app:
            adapter = SlackAdapter(
                SlackConfig(
                    client_id=CLIENT_ID,
                    client_secret="oauth-client-secret",
                    signing_secret=SECRET,
                    api_url=api.url,
                ),
                service=app.service,
                commands=Commands(usage=app.usage, budget=app.budget, limits=app.limits),
                events=EventLog(app.db),
                engine=app.db.engine,
            )
            server = WebServer(adapter.routes(), host="127.0.0.1", port=0)
            await server.start()
            async with httpx.AsyncClient(timeout=10) as http:
                yield Rig(app, api, sandbox, http, server.url, adapter)
            await server.aclose()
            await adapter.aclose()


async def mention(rig: Rig, words: str) -> str:
    payload = rig.api.seed_event(ev.app_mention(words))
    response = await ev.post_event(rig.http, f"{rig.base}/slack/events", payload, SECRET)
    assert response.status_code in (200, 401)
    return str(payload["event"]["ts"])  # type: ignore[index]


async def install(rig: Rig) -> None:
    """The workspace installs the app: the "Add to Slack" page, Slack's redirect back."""
    page = await rig.http.get(f"{rig.base}/slack/install")
    assert page.status_code == 200
    link = re.search(r'https://slack\.com/oauth/v2/authorize\?[^"\']+', page.text)
    assert link is not None, page.text
    query = httpx.URL(link.group(0).replace("&amp;", "&")).params
    assert query["client_id"] == CLIENT_ID
    assert "chat:write" in query["scope"].split(",")

    # The state also goes in a Secure cookie, which a browser sends back over https only; this
    # test speaks http, so it sends the cookie itself.
    cookie = page.headers["set-cookie"].split(";")[0]
    assert cookie.startswith("slack-app-oauth-state=")
    rig.api.oauth_codes.add("code-from-slack")
    done = await rig.http.get(
        f"{rig.base}/slack/oauth_redirect",
        params={"code": "code-from-slack", "state": query["state"]},
        headers={"Cookie": cookie},
    )
    assert done.status_code == 200, done.text
    async with rig.app.db.session() as s:
        teams = (await s.execute(text("SELECT team_id FROM slack_bots"))).scalars().all()
    assert teams == [DEFAULT_WORKSPACE.team_id]


async def test_a_workspace_installs_and_is_answered_with_its_own_token(rig: Rig) -> None:
    ts = await mention(rig, "before the install")
    await asyncio.sleep(0.5)
    assert rig.api.calls_to("chat.postMessage") == []  # not installed: no answer, no cost
    assert rig.sandbox.stats.total.requests == 0

    await install(rig)
    ts = await mention(rig, "after the install")
    for _ in range(250):
        answers = [m for m in rig.api.messages(DEFAULT_CHANNEL, ts) if m.startswith("Sandbox")]
        if answers:
            break
        await asyncio.sleep(0.02)
    assert answers and "after the install" in answers[0]
    posts = [x for x in rig.api.exchanges if x.call.method == "chat.postMessage"]
    assert posts and all(x.token == rig.api.token for x in posts)  # the installed bot token


async def test_an_event_taken_over_is_answered_with_the_workspace_token(rig: Rig) -> None:
    """A process that died left an installed workspace's event: the process taking it over
    has no bolt context for it, and finds the workspace's token in the installation store."""
    await install(rig)
    payload = rig.api.seed_event(ev.app_mention("taken over"))
    event = payload["event"]
    ws = DEFAULT_WORKSPACE
    kept = {"event": event, "team": ws.team_id, "bot_user_id": ws.bot_user_id}
    key = f"slack:{DEFAULT_WORKSPACE.team_id}:{DEFAULT_CHANNEL}:{event['ts']}"  # type: ignore[index]
    assert await EventLog(rig.app.db, lease=0.1).first(key, kept)
    await asyncio.sleep(0.2)
    takeover = Takeover(EventLog(rig.app.db), wait=0)
    takeover.on("slack:", rig.adapter.resume)
    assert len(await takeover.tick()) == 1
    await asyncio.gather(*takeover.tasks)
    ts = str(event["ts"])  # type: ignore[index]
    answers = [m for m in rig.api.messages(DEFAULT_CHANNEL, ts) if m.startswith("Sandbox")]
    assert len(answers) == 1 and "taken over" in answers[0]
    posts = [x for x in rig.api.exchanges if x.call.method == "chat.postMessage"]
    assert posts and all(x.token == rig.api.token for x in posts)


async def test_a_forged_state_installs_nothing(rig: Rig) -> None:
    rig.api.oauth_codes.add("code-from-slack")
    done = await rig.http.get(
        f"{rig.base}/slack/oauth_redirect", params={"code": "code-from-slack", "state": "forged"}
    )
    assert done.status_code == 400
    async with rig.app.db.session() as s:
        assert (await s.execute(text("SELECT count(*) FROM slack_bots"))).scalar() == 0
    assert "code-from-slack" in rig.api.oauth_codes  # never even swapped for a token


def test_one_workspace_or_oauth_not_both() -> None:
    with pytest.raises(ConfigError, match=r"SLACK_BOT_TOKEN .* or SLACK_CLIENT_ID"):
        SlackAdapter(
            SlackConfig(bot_token="xoxb-1", client_id=CLIENT_ID, client_secret="s"),
            service=None,  # type: ignore[arg-type]
            commands=None,  # type: ignore[arg-type]
            events=None,  # type: ignore[arg-type]
        )
