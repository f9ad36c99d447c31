"""slack_events builds Slack's payloads and signs them so slack-sdk's verifier accepts them."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from fakes import slack_events
from fakes.slack_workspace import DEFAULT_WORKSPACE as WS

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    """A bare HTTP endpoint that keeps the raw requests it gets."""

    url: str
    requests: list[Received] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)
    received: list[Received] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(Received(await request.read(), dict(request.headers)))
        return web.Response(text="")

    app.router.add_post("/slack/events", handle)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Receiver(f"http://127.0.0.1:{port}/slack/events", received)
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


def test_signature_verifies_with_slack_sdk() -> None:
    body = slack_events.encode_event(slack_events.app_mention("hi"))
    headers = slack_events.signed_request(body, SECRET)
    assert headers["X-Slack-Signature"].startswith("v0=")
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, headers)
    assert (
        verifier.generate_signature(timestamp=headers["X-Slack-Request-Timestamp"], body=body)
        == (headers["X-Slack-Signature"])
    )
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b" ", headers)
    stale = slack_events.signed_request(body, SECRET, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)


async def test_post_event_sends_slacks_bytes(receiver: Receiver, http: httpx.AsyncClient) -> None:
    payload = slack_events.message("see https://example.com/x", channel="C0TESTCHAN")
    response = await slack_events.post_event(http, receiver.url, payload, SECRET)
    assert response.status_code == 200
    [got] = receiver.requests
    assert got.headers["Content-Type"] == "application/json"
    assert SignatureVerifier(SECRET).is_valid_request(got.body, got.headers)
    assert b"https:\\/\\/example.com\\/x" in got.body
    assert b": " not in got.body
    assert json.loads(got.body) == payload
    assert "X-Slack-Retry-Num" not in got.headers


async def test_retries_and_bad_signatures(receiver: Receiver, http: httpx.AsyncClient) -> None:
    payload = slack_events.app_mention("hi")
    await slack_events.post_event(http, receiver.url, payload, SECRET, retry_num=1)
    await slack_events.post_event(http, receiver.url, payload, SECRET, bad_signature=True)
    old = int(time.time()) - 3600
    await slack_events.post_event(http, receiver.url, payload, SECRET, timestamp=old)
    retried, forged, stale = receiver.requests
    verifier = SignatureVerifier(SECRET)
    assert retried.headers["X-Slack-Retry-Num"] == "1"
    assert retried.headers["X-Slack-Retry-Reason"] == "http_timeout"
    assert verifier.is_valid_request(retried.body, retried.headers)
    assert not verifier.is_valid_request(forged.body, forged.headers)
    assert stale.headers["X-Slack-Request-Timestamp"] == str(old)
    assert not verifier.is_valid_request(stale.body, stale.headers)


async def test_slash_command_is_form_encoded(receiver: Receiver, http: httpx.AsyncClient) -> None:
    form = slack_events.slash_command("/ask", "what is 2+2?", response_url="http://x/response/1")
    await slack_events.post_command(http, receiver.url, form, SECRET)
    [got] = receiver.requests
    assert got.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert b"command=%2Fask&text=what+is+2%2B2%3F" in got.body
    assert SignatureVerifier(SECRET).is_valid_request(got.body, got.headers)
    fields = {k: v[0] for k, v in parse_qs(got.body.decode()).items()}
    assert fields["response_url"] == "http://x/response/1"
    assert fields["team_id"] == WS.team_id
    assert fields["api_app_id"] == WS.api_app_id
    assert fields["trigger_id"].count(".") == 2


def test_envelope_matches_the_workspace() -> None:
    payload = slack_events.app_mention("what is 2+2?", user="U0ASKER", channel="C0TESTCHAN")
    assert payload["type"] == "event_callback"
    assert payload["event_id"].startswith("Ev")
    assert payload["authorizations"][0]["user_id"] == WS.bot_user_id
    assert (payload["team_id"], payload["api_app_id"]) == (WS.team_id, WS.api_app_id)
    event = payload["event"]
    assert event["type"] == "app_mention"
    assert event["text"] == f"<@{WS.bot_user_id}> what is 2+2?"
    assert event["ts"] == event["event_ts"]
    section = event["blocks"][0]["elements"][0]["elements"]
    assert section == [
        {"type": "user", "user_id": WS.bot_user_id},
        {"type": "text", "text": " what is 2+2?"},
    ]


def test_message_kinds() -> None:
    dm = slack_events.direct_message("hello")["event"]
    assert (dm["channel"][0], dm["channel_type"]) == ("D", "im")
    private = slack_events.message("x", channel="G0PRIVATE")["event"]
    assert private["channel_type"] == "group"

    reply = slack_events.thread_reply("and then?", thread_ts="1700000000.000100")["event"]
    assert reply["thread_ts"] == "1700000000.000100"
    assert reply["parent_user_id"] == WS.bot_user_id

    own = slack_events.bot_message("my own reply")["event"]
    assert (own["bot_id"], own["user"], own["app_id"]) == (WS.bot_id, WS.bot_user_id, WS.api_app_id)
    assert "subtype" not in own
    legacy = slack_events.bot_message("from a webhook", bot_id="B0OTHER", legacy=True)["event"]
    assert legacy["subtype"] == "bot_message" and "user" not in legacy

    changed = slack_events.message_changed(
        "new words", previous_text="old words", message_ts="1700000000.000200"
    )["event"]
    assert changed["subtype"] == "message_changed"
    assert changed["message"]["text"] == "new words"
    assert changed["message"]["ts"] == changed["previous_message"]["ts"] == "1700000000.000200"
    assert changed["ts"] != "1700000000.000200"


def test_url_verification() -> None:
    payload = slack_events.url_verification("abc")
    assert payload == {
        "token": WS.verification_token,
        "challenge": "abc",
        "type": "url_verification",
    }
