"""Both fakes against bolt-python, Slack's own framework: if bolt accepts our signed payloads,
routes them and its replies land in FakeSlackAPI, the fakes speak Slack's wire formats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from fakes import slack_events
from fakes.slack_api import FakeSlackAPI
from tests.fakes.conftest import TOKEN

SECRET = "bolt-signing-secret"
CHANNEL = "C0TESTCHAN"


@pytest.fixture
async def bolt_url(api: FakeSlackAPI) -> AsyncIterator[str]:
    """A bolt app served over HTTP: it replies in the thread to mentions, ignores its own
    messages (bolt's default) and answers /ask through the response_url."""
    app = AsyncApp(
        client=AsyncWebClient(token=TOKEN, base_url=api.url),
        signing_secret=SECRET,
        # Each request's Slack calls are done when its HTTP response arrives, so asserting that
        # nothing was posted means something.
        process_before_response=True,
    )

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any) -> None:
        await say(text=f"echo: {event['text']}", thread_ts=event["ts"])

    @app.event("message")
    async def on_message(event: dict[str, Any], say: Any) -> None:
        await say(text="saw a message", thread_ts=event["ts"])

    @app.command("/ask")
    async def on_ask(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack()
        await respond(text=f"answer to {command['text']}")

    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


async def test_mention_reply_lands_in_the_thread(
    api: FakeSlackAPI, bolt_url: str, http: httpx.AsyncClient
) -> None:
    payload = api.seed_event(slack_events.app_mention("ping", channel=CHANNEL))
    response = await slack_events.post_event(http, bolt_url, payload, SECRET)
    assert response.status_code == 200
    await api.wait_for_calls("chat.postMessage")
    ts = payload["event"]["ts"]
    assert api.messages(CHANNEL, thread_ts=ts) == [
        payload["event"]["text"],
        f"echo: {payload['event']['text']}",
    ]
    # bolt looked the bot up with auth.test, and ignores the bot's own echo.
    api.assert_received_count("auth.test", 1)
    own = slack_events.bot_message("echo", channel=CHANNEL)
    assert (await slack_events.post_event(http, bolt_url, own, SECRET)).status_code == 200
    api.assert_received_count("chat.postMessage", 1)
    # Control: another app's message, and a person's, are not ignored.
    other_app = slack_events.bot_message("hi", channel=CHANNEL, bot_id="B0OTHER", user="U0OTHER")
    await slack_events.post_event(http, bolt_url, other_app, SECRET)
    await slack_events.post_event(http, bolt_url, slack_events.direct_message("hey"), SECRET)
    api.assert_received_count("chat.postMessage", 3)


async def test_bad_signature_is_refused(
    api: FakeSlackAPI, bolt_url: str, http: httpx.AsyncClient
) -> None:
    payload = slack_events.app_mention("ping", channel=CHANNEL)
    response = await slack_events.post_event(http, bolt_url, payload, SECRET, bad_signature=True)
    assert response.status_code == 401
    assert api.calls == []


async def test_url_verification_is_answered(bolt_url: str, http: httpx.AsyncClient) -> None:
    payload = slack_events.url_verification("the-challenge")
    response = await slack_events.post_event(http, bolt_url, payload, SECRET)
    assert response.json() == {"challenge": "the-challenge"}


async def test_slash_command_responds_through_response_url(
    api: FakeSlackAPI, bolt_url: str, http: httpx.AsyncClient
) -> None:
    form = slack_events.slash_command("/ask", "2+2", response_url=api.response_url("cmd1"))
    response = await slack_events.post_command(http, bolt_url, form, SECRET)
    assert response.status_code == 200
    assert await api.wait_for_responses("cmd1") == [{"text": "answer to 2+2"}]
