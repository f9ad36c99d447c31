"""Malformed and oversized requests against a running ``quotabot serve``: never a 5xx (Slack
retries those three times), at most one short log line each, no ERROR and no traceback.

1. Numeric headers that are not numbers, or too big for a float (a Slack timestamp of 309
   digits overflowed into a 500), and broken HTTP (aiohttp's parser): 400 or 401.
2. Signed JSON nested 2,000 levels deep (a RecursionError in bolt's parser): 400.
3. Signed interactivity payloads of odd shapes (``actions`` not a list, ``view`` a string,
   no ``user``...), which crashed inside bolt's matchers and its own logging: acknowledged
   (200, quotabot listens to none of them) or 400. Hypothesis draws more of them (a fixed,
   derandomized number: about 15 s).

After each family a signed mention is still answered once, and nothing else reached the
provider or the usage store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes import slack_events as ev
from tests.attacks.serve import SECRET, SIGNER, Served, serving

Case = tuple[str, bytes, dict[str, str | bytes]]
"""Where (slack or discord), the body, the headers."""


def _slack(body: bytes, ctype: str = "application/json", **headers: str) -> Case:
    return "slack", body, {"Content-Type": ctype, **ev.signed_request(body, SECRET), **headers}


def _interactive(payload: Any) -> Case:
    form = urlencode({"payload": json.dumps(payload)}).encode()
    return _slack(form, "application/x-www-form-urlencoded")


def _discord(body: bytes) -> Case:
    return "discord", body, SIGNER.headers(body)


class Log:
    """The serve process's log, read as it grows."""

    def __init__(self, server: Served):
        self.server = server
        self.seen = 0

    def new(self) -> list[str]:
        text = self.server.logged()
        lines, self.seen = text[self.seen :].splitlines(), len(text)
        return lines


@contextmanager
def _one_line_at_most(log: Log, what: object) -> Iterator[None]:
    log.new()
    yield
    lines = log.new()
    assert len(lines) <= 1, (what, lines)
    assert not [x for x in lines if " ERROR " in x or "Traceback" in x], (what, lines)
    assert all(len(x) < 300 for x in lines), (what, lines)


async def _post(http: httpx.AsyncClient, server: Served, case: Case) -> int:
    where, body, headers = case
    url = server.slack_url if where == "slack" else server.discord_url
    return (await http.post(url, content=body, headers=headers)).status_code


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path) as server:
        await server.ask_slack("q warm up")
        before = server.rss()
        yield server
        await server.ask_slack("q still there?")
        assert await server.settled() == (2, 2)
        print(f"\nRSS {before:.0f} -> {server.rss():.0f} MB")
    assert "Traceback" not in server.logged()


_DIGITS = "9" * 309
NUMERIC_HEADERS: list[Case] = [
    *[
        ("slack", b"{}", {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + "0" * 64})
        for ts in (_DIGITS, "9" * 5000, "1e309", "inf", "nan", "-1", "0x10", "١٢٣".encode(), "1_0")
    ],
    *[
        ("discord", b"{}", {"X-Signature-Timestamp": ts, "X-Signature-Ed25519": "00" * 64})
        for ts in (_DIGITS, "9" * 5000, "1e309", "inf", "nan", "-1", "1.5")
    ],
    # Signed with the huge timestamp itself: the signature is right, the time is not.
    ("slack", b"{}", {**ev.signed_request(b"{}", SECRET), "X-Slack-Request-Timestamp": _DIGITS}),
]


async def test_oversized_and_non_numeric_numeric_headers_are_401(served: Served) -> None:
    log = Log(served)
    async with httpx.AsyncClient(timeout=10) as http:
        for case in NUMERIC_HEADERS:
            with _one_line_at_most(log, case):
                assert await _post(http, served, case) == 401, case


BROKEN_HTTP = [
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 309 + b"\r\n\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /discord/interactions HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 400,
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
    b"GARBAGE\r\n\r\n",
]


async def test_broken_http_is_400_and_one_info_line(served: Served) -> None:
    log = Log(served)
    for raw in BROKEN_HTTP:
        with _one_line_at_most(log, raw[:60]):
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(raw)
            line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            assert line.split(b" ")[1] == b"400", (raw[:60], line)
    # A gzip body is not inflated: passed on as it came, it fails its signature.
    body = b"\x1f\x8b not really gzip"
    async with httpx.AsyncClient(timeout=10) as http:
        with _one_line_at_most(log, "gzip"):
            headers = {**ev.signed_request(b"{}", SECRET), "Content-Encoding": "gzip"}
            response = await http.post(served.slack_url, content=body, headers=headers)
            assert response.status_code == 401


_DEEP_LIST = b"[" * 2000 + b"]" * 2000
_DEEP_OBJECT = b'{"a":' * 2000 + b"1" + b"}" * 2000
_DEEP_EVENT = {**ev.app_mention("q deep"), "x": json.loads(b"[" * 100 + b"]" * 100)}
DEEP: list[Case] = [
    _slack(_DEEP_LIST),
    _slack(_DEEP_OBJECT),
    _slack(urlencode({"payload": _DEEP_OBJECT.decode()}).encode(), "x-www-form-urlencoded"),
    _slack(ev.encode_event(_DEEP_EVENT)),  # parses, but deeper than anything Slack sends
    _discord(_DEEP_LIST),
    _discord(b'{"type":2,"data":' + _DEEP_OBJECT + b"}"),
    _discord(json.dumps({"type": 2, "x": json.loads(b"[" * 100 + b"]" * 100)}).encode()),
]


async def test_signed_json_nested_too_deep_is_400(served: Served) -> None:
    log = Log(served)
    async with httpx.AsyncClient(timeout=10) as http:
        for case in DEEP:
            with _one_line_at_most(log, case[1][:40]):
                assert await _post(http, served, case) == 400, case[1][:40]


ODD_SHAPES = [
    {"type": "block_actions", "actions": "x"},
    {"type": "block_actions", "actions": [1], "user": "x"},
    {"type": "block_actions", "actions": []},
    {"type": "block_actions", "actions": [{"action_id": {}}]},
    {"type": "block_actions"},
    {"type": "view_submission", "view": "x"},
    {"type": "view_submission", "view": {"callback_id": []}},
    {"type": "view_submission"},
    {"type": "view_closed", "view": 3},
    {"type": "block_suggestion", "action_id": []},
    {"type": "shortcut", "callback_id": {}},
    {"type": "message_action", "callback_id": 1},
    {"type": "message_action", "callback_id": "transcribe"},  # no message, user, channel
    {"type": "message_action", "callback_id": "transcribe", "message": "x", "user": {}},
    {"type": "interactive_message", "callback_id": "x", "actions": 7},
    {"type": "dialog_submission", "callback_id": "x", "submission": {"secret": "typed"}},
    {"type": "workflow_step_edit", "callback_id": "x", "workflow_step": 1},
    {"type": ["block_actions"]},
    {"type": None, "view": "x"},
    {"type": "url_verification", "event": None},  # bolt's middleware: body.get("event", {})
    {"type": "event_callback", "event": {"type": 7}},
    {},
]


async def test_odd_interactivity_shapes_are_acknowledged_or_400(served: Served) -> None:
    log = Log(served)
    async with httpx.AsyncClient(timeout=10) as http:
        for payload in ODD_SHAPES:
            with _one_line_at_most(log, payload):
                assert await _post(http, served, _interactive(payload)) in (200, 400), payload
    assert "typed" not in served.logged()  # bolt's warning for unhandled requests wrote it


# -- Hypothesis, against the same running process --------------------------------------------

_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=20))
_value = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_TYPES = (
    "block_actions",
    "view_submission",
    "view_closed",
    "block_suggestion",
    "shortcut",
    "message_action",
    "interactive_message",
    "dialog_submission",
    "dialog_suggestion",
    "dialog_cancellation",
    "workflow_step_edit",
    "event_callback",
    "url_verification",
    "app_rate_limited",
)
_KEYS = (
    "actions",
    "view",
    "user",
    "team",
    "channel",
    "enterprise",
    "container",
    "message",
    "callback_id",
    "trigger_id",
    "response_url",
    "action_id",
    "block_id",
    "value",
    "submission",
    "state",
    "workflow_step",
    "event",
    "authorizations",
    "is_enterprise_install",
    "api_app_id",
    "team_id",
    "enterprise_id",
    "is_ext_shared_channel",
)
_shaped = st.one_of(
    _value,
    st.lists(st.dictionaries(st.sampled_from(["action_id", "block_id", "type", "value"]), _value)),
    st.fixed_dictionaries(
        {}, optional={k: _value for k in ("type", "callback_id", "id", "team_id", "state")}
    ),
)


@st.composite
def _odd_payload(draw: st.DrawFn) -> Case:
    payload: dict[str, Any] = {"type": draw(st.one_of(st.sampled_from(_TYPES), _value))}
    for key in draw(st.lists(st.sampled_from(_KEYS), max_size=6, unique=True)):
        payload[key] = draw(_shaped)
    if payload.get("callback_id") == "transcribe" and isinstance(payload.get("message"), dict):
        payload["callback_id"] = "not-transcribe"  # a real shortcut: it would be answered
    if draw(st.booleans()):
        return _interactive(payload)
    return _slack(json.dumps(payload).encode())


EXAMPLES = 200


def test_hypothesis_finds_no_shape_that_bolt_fails_on(tmp_path: Path) -> None:
    with asyncio.Runner() as loop:
        stack = AsyncExitStack()
        server = loop.run(stack.enter_async_context(serving(tmp_path)))
        http = loop.run(stack.enter_async_context(httpx.AsyncClient(timeout=10)))
        log = Log(server)
        try:

            @given(_odd_payload())
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            def one(case: Case) -> None:
                with _one_line_at_most(log, case[1][:300]):
                    status = loop.run(_post(http, server, case))
                    assert status in (200, 400), (status, case[1][:300])

            before = server.rss()
            one()
            print(f"\n{EXAMPLES} odd payloads: RSS {before:.0f} -> {server.rss():.0f} MB")
            loop.run(server.ask_slack("q still there?"))
            assert loop.run(server.settled()) == (1, 1)
            assert server.slack.calls_to("chat.postEphemeral") == []
        finally:
            loop.run(stack.aclose())
